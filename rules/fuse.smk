rule fusion_stats:
    input:
        unpack(get_fusion_stats_inputs),
    output:
        f"{DATA}/fused/{{pool}}/{{fusion}}/stats.json",
    log:
        f"{DATA}/logs/fusion_stats/{{pool}}/{{fusion}}.log",
    conda:
        "../envs/fuse.yaml"
    params:
        fusion=lambda wildcards: config["fusions"][wildcards.fusion],
        columns=lambda wildcards: fusion_columns(wildcards.fusion),
    script:
        "../scripts/fusion_stats.py"


rule train_mixer:
    input:
        unpack(get_mixer_inputs),
    output:
        mixer=f"{DATA}/fused/{{pool}}/{{fusion}}/mixer.pt",
        summary=f"{DATA}/fused/{{pool}}/{{fusion}}/mixer.json",
    log:
        f"{DATA}/logs/train_mixer/{{pool}}/{{fusion}}.log",
    conda:
        "../envs/train.yaml"
    threads: config["threads"]
    params:
        fusion=lambda wildcards: config["fusions"][wildcards.fusion],
        hparams=lambda wildcards: config["fusions"][wildcards.fusion]["hparams"],
        columns=lambda wildcards: fusion_columns(wildcards.fusion),
    script:
        "../scripts/train_mixer.py"


rule fuse_chunk:
    input:
        unpack(get_fuse_chunk_inputs),
    output:
        f"{DATA}/fused/{{pool}}/{{fusion}}/{{chunk}}.parquet",
    log:
        f"{DATA}/logs/fuse_chunk/{{pool}}/{{fusion}}/{{chunk}}.log",
    conda:
        "../envs/fuse.yaml"
    params:
        fusion=lambda wildcards: config["fusions"][wildcards.fusion],
        columns=lambda wildcards: fusion_columns(wildcards.fusion),
    script:
        "../scripts/fuse_chunk.py"
