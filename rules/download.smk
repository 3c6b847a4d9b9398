# Real pools, pretrained models and evaluation sets: everything that comes from the network is
# fetched here, once, by a rule of its own (none of them is in the default tiny run's DAG).


rule fetch_pool_metadata:
    output:
        f"{DATA}/pools/{{pool}}/metadata/source/fetch.json",
    log:
        f"{DATA}/logs/fetch_pool_metadata/{{pool}}.log",
    conda:
        "../envs/download.yaml"
    params:
        metadata=lambda wildcards: config["pools"][wildcards.pool]["metadata"],
    script:
        "../scripts/fetch_pool_metadata.py"


rule prepare_pool_metadata:
    input:
        f"{DATA}/pools/{{pool}}/metadata/source/fetch.json",
    output:
        f"{DATA}/pools/{{pool}}/metadata/prepared.parquet",
    log:
        f"{DATA}/logs/prepare_pool_metadata/{{pool}}.log",
    conda:
        "../envs/download.yaml"
    params:
        metadata=lambda wildcards: config["pools"][wildcards.pool]["metadata"],
    script:
        "../scripts/prepare_pool_metadata.py"


rule split_pool_metadata:
    input:
        get_pool_metadata,
    output:
        f"{DATA}/pools/{{pool}}/metadata/chunks/split.json",
    log:
        f"{DATA}/logs/split_pool_metadata/{{pool}}.log",
    conda:
        "../envs/download.yaml"
    params:
        pool=lambda wildcards: config["pools"][wildcards.pool],
    script:
        "../scripts/split_pool_metadata.py"


# Output: the chunk's download report, written once every shard is complete; the shards go into
# shards/{chunk}/ beside it, undeclared, so a failed job keeps its finished shards and the rerun
# resumes (curate.download).
rule download_pool_chunk:
    input:
        f"{DATA}/pools/{{pool}}/metadata/chunks/split.json",
    output:
        f"{DATA}/pools/{{pool}}/shards/{{chunk}}.download.json",
    log:
        f"{DATA}/logs/download_pool_chunk/{{pool}}/{{chunk}}.log",
    conda:
        "../envs/download.yaml"
    threads:
        lambda wildcards: config["pools"][wildcards.pool]
        .get("download", {})
        .get("processes", 1)
    params:
        pool=lambda wildcards: config["pools"][wildcards.pool],
        shard_ids=get_chunk_shard_ids,
    script:
        "../scripts/download_pool_chunk.py"


rule fetch_model:
    output:
        directory(f"{DATA}/models/pretrained/{{model}}"),
    log:
        f"{DATA}/logs/fetch_model/{{model}}.log",
    wildcard_constraints:
        # only configured models are fetched; other folders there are put in place by hand
        model=names_pattern(config.get("models", {})),
    conda:
        "../envs/fetch.yaml"
    params:
        entry=lambda wildcards: config["models"][wildcards.model],
        cache_dir=f"{DATA}/models/cache",
    script:
        "../scripts/fetch_model.py"


# An original checkpoint (models.<name>.convert) in transformers' layout, beside the fetched file.
rule convert_model:
    input:
        unpack(get_conversion_inputs),
    output:
        directory(f"{DATA}/models/converted/{{model}}"),
    log:
        f"{DATA}/logs/convert_model/{{model}}.log",
    wildcard_constraints:
        model=names_pattern(
            name
            for name, entry in config.get("models", {}).items()
            if "convert" in entry
        ),
    conda:
        "../envs/caption.yaml"
    params:
        entry=lambda wildcards: config["models"][wildcards.model],
    script:
        "../scripts/convert_model.py"


rule fetch_eval_task:
    output:
        directory(f"{DATA}/evalsets/{{suite}}/{{task_key}}"),
    log:
        f"{DATA}/logs/fetch_eval_task/{{suite}}/{{task_key}}.log",
    wildcard_constraints:
        task_key=r"[^/]+(/[^/]+)?",
    conda:
        "../envs/download.yaml"
    params:
        root=lambda wildcards: config["suites"][wildcards.suite].get("root"),
        task=lambda wildcards: config["suites"][wildcards.suite]["tasks"][
            wildcards.task_key
        ],
    script:
        "../scripts/fetch_eval_task.py"
