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
        selection=lambda wildcards: config["selections"][wildcards.selection],
    script:
        "../scripts/select_subset.py"


rule reshard_subset:
    input:
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
