rule train_captioner:
    input:
        curated_set=get_captioner_curated_set,
    output:
        directory(f"{DATA}/models/captioners/{{captioner}}"),
    log:
        f"{DATA}/logs/train_captioner/{{captioner}}.log",
    conda:
        "../envs/caption.yaml"
    threads: config["threads"]
    params:
        captioner=lambda wildcards: config["captioners"][wildcards.captioner],
    script:
        "../scripts/train_captioner.py"


rule caption_chunk:
    input:
        shards=f"{DATA}/pools/{{pool}}/shards/{{chunk}}",
        model=f"{DATA}/models/captioners/{{captioner}}",
    output:
        captions=f"{DATA}/captions/{{pool}}/{{captioner}}/{{chunk}}.parquet",
        report=f"{DATA}/captions/{{pool}}/{{captioner}}/{{chunk}}.report.json",
    log:
        f"{DATA}/logs/caption_chunk/{{pool}}/{{captioner}}/{{chunk}}.log",
    conda:
        "../envs/caption.yaml"
    threads: config["threads"]
    params:
        captioner=lambda wildcards: config["captioners"][wildcards.captioner],
        batch_size=config.get("caption_batch_size", 32),
    script:
        "../scripts/caption_chunk.py"
