rule synthesize_pool_chunk:
    output:
        shards=directory(P("pool_chunk")),
        ground_truth=P("ground_truth"),
    log:
        P.log("synthesize_pool_chunk", "pool", "chunk"),
    wildcard_constraints:
        pool=names_pattern(
            n for n, e in config["pools"].items() if e["source"] == "synthetic"
        ),
    conda:
        "../envs/download.yaml"
    params:
        pool=lambda wildcards: config["pools"][wildcards.pool],
        shard_ids=get_chunk_shard_ids,
    script:
        "../scripts/synthesize_pool_chunk.py"
