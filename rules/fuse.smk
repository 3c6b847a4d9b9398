# A fusion (curate.selection.fusion.FUSIONS): pool statistics in one job, a trained head where the
# method has one, then every chunk fused alone from them.


rule fusion_stats:
    input:
        unpack(get_fusion_stats_inputs),
    output:
        P("fusion_stats"),
    log:
        P.log("fusion_stats", "pool", "fusion"),
    conda:
        "../envs/fuse.yaml"
    params:
        fusion=lambda wildcards: config["fusions"][wildcards.fusion],
        columns=get_fusion_columns,
        contracts=get_fusion_contracts,
    script:
        "../scripts/fusion_stats.py"


rule train_mixer:
    input:
        unpack(get_mixer_inputs),
    output:
        mixer=P("mixer"),
        summary=P("mixer_summary"),
    log:
        P.log("train_mixer", "pool", "fusion"),
    wildcard_constraints:
        fusion=WS.trained_fusions(),
    conda:
        "../envs/train.yaml"
    threads: config["threads"]
    params:
        fusion=lambda wildcards: config["fusions"][wildcards.fusion],
        columns=get_fusion_columns,
        contracts=get_fusion_contracts,
        downstream=get_mixer_downstream,
    script:
        "../scripts/train_mixer.py"


rule fuse_chunk:
    input:
        unpack(get_fuse_chunk_inputs),
    output:
        P("fused"),
    log:
        P.log("fuse_chunk", "pool", "fusion", "chunk"),
    conda:
        "../envs/fuse.yaml"
    params:
        fusion=lambda wildcards: config["fusions"][wildcards.fusion],
        columns=get_fusion_columns,
        contracts=get_fusion_contracts,
        contract=WS.fused_contract(),
    script:
        "../scripts/fuse_chunk.py"
