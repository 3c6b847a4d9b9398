rule synthesize_pool_chunk:
    output:
        shards=directory(f"{DATA}/pools/{{pool}}/shards/{{chunk}}"),
        ground_truth=f"{DATA}/ground_truth/{{pool}}/{{chunk}}.parquet",
    log:
        f"{DATA}/logs/synthesize_pool_chunk/{{pool}}/{{chunk}}.log",
    conda:
        "../envs/download.yaml"
    params:
        pool=lambda wildcards: config["pools"][wildcards.pool],
        shard_ids=get_chunk_shard_ids,
    script:
        "../scripts/synthesize_pool_chunk.py"
