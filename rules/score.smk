rule score_chunk:
    input:
        shards=get_chunk_shards,
        model=get_scorer_model,
    output:
        scores=f"{DATA}/scores/{{pool}}/{{scorer}}/{{chunk}}.parquet",
        report=f"{DATA}/scores/{{pool}}/{{scorer}}/{{chunk}}.report.json",
    log:
        f"{DATA}/logs/score_chunk/{{pool}}/{{scorer}}/{{chunk}}.log",
    conda:
        "../envs/score.yaml"
    threads: config["threads"]
    params:
        batch_size=config.get("score_batch_size", 256),
    script:
        "../scripts/score_chunk.py"
