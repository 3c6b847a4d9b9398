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
    script:
        "../scripts/fusion_stats.py"


rule fuse_chunk:
    input:
        scores=get_fuse_chunk_scores,
        stats=f"{DATA}/fused/{{pool}}/{{fusion}}/stats.json",
    output:
        f"{DATA}/fused/{{pool}}/{{fusion}}/{{chunk}}.parquet",
    log:
        f"{DATA}/logs/fuse_chunk/{{pool}}/{{fusion}}/{{chunk}}.log",
    conda:
        "../envs/fuse.yaml"
    params:
        fusion=lambda wildcards: config["fusions"][wildcards.fusion],
    script:
        "../scripts/fuse_chunk.py"
