rule select_subset:
    input:
        unpack(get_selection_inputs),
    output:
        subset=f"{DATA}/subsets/{{pool}}/{{selection}}.npy",
    log:
        f"{DATA}/logs/select_subset/{{pool}}/{{selection}}.log",
    conda:
        "../envs/fuse.yaml"
    params:
        selection=lambda wildcards: selection_params(wildcards.selection),
    script:
        "../scripts/select_subset.py"


rule reshard_subset:
    input:
        unpack(get_reshard_extras),
        subset=f"{DATA}/subsets/{{pool}}/{{selection}}.npy",
        pool=get_pool_chunk_dirs,
    output:
        directory(f"{DATA}/reshards/{{pool}}/{{selection}}"),
    log:
        f"{DATA}/logs/reshard_subset/{{pool}}/{{selection}}.log",
    conda:
        "../envs/download.yaml"
    params:
        reshard=config["reshard"],
    script:
        "../scripts/reshard_subset.py"


rule sample_weights:
    input:
        scores=get_strategy_scores,
    output:
        f"{DATA}/subsets/{{pool}}/{{selection}}.weights.parquet",
    log:
        f"{DATA}/logs/sample_weights/{{pool}}/{{selection}}.log",
    conda:
        "../envs/fuse.yaml"
    params:
        selection=lambda wildcards: selection_params(wildcards.selection),
    script:
        "../scripts/sample_weights.py"


rule recaption_texts:
    input:
        scores=get_strategy_scores,
        captions=get_recaption_captions,
    output:
        f"{DATA}/subsets/{{pool}}/{{selection}}.captions.parquet",
    log:
        f"{DATA}/logs/recaption_texts/{{pool}}/{{selection}}.log",
    conda:
        "../envs/fuse.yaml"
    params:
        selection=lambda wildcards: selection_params(wildcards.selection),
    script:
        "../scripts/recaption_texts.py"
