# Real pools, pretrained models and evaluation sets: everything that comes from the network is
# fetched here, once, by a rule of its own (none of them is in the default tiny run's DAG).


rule fetch_pool_metadata:
    output:
        P("metadata_fetched"),
    log:
        P.log("fetch_pool_metadata", "pool"),
    conda:
        "../envs/download.yaml"
    params:
        metadata=lambda wildcards: config["pools"][wildcards.pool]["metadata"],
    script:
        "../scripts/fetch_pool_metadata.py"


rule prepare_pool_metadata:
    input:
        P("metadata_fetched"),
    output:
        P("metadata_prepared"),
    log:
        P.log("prepare_pool_metadata", "pool"),
    conda:
        "../envs/download.yaml"
    params:
        metadata=lambda wildcards: config["pools"][wildcards.pool]["metadata"],
    script:
        "../scripts/prepare_pool_metadata.py"


rule split_pool_metadata:
    input:
        get_metadata_source,
    output:
        P("metadata_split"),
    log:
        P.log("split_pool_metadata", "pool"),
    conda:
        "../envs/download.yaml"
    params:
        pool=lambda wildcards: config["pools"][wildcards.pool],
    script:
        "../scripts/split_pool_metadata.py"


# Output: the chunk's download report, written once every shard is complete; the shards go into
# shards/{chunk}/ beside it, undeclared, so a failed job keeps its finished shards and the rerun
# resumes (curate.data.download).
rule download_pool_chunk:
    input:
        P("metadata_split"),
    output:
        P("download_report"),
    log:
        P.log("download_pool_chunk", "pool", "chunk"),
    conda:
        "../envs/download.yaml"
    threads: lambda wildcards: config["pools"][wildcards.pool]["download"]["processes"]
    params:
        pool=lambda wildcards: config["pools"][wildcards.pool],
        shard_ids=get_chunk_shard_ids,
        metadata=lambda wildcards: P(
            "metadata_chunk", pool=wildcards.pool, chunk=wildcards.chunk
        ),
    script:
        "../scripts/download_pool_chunk.py"


# Which metadata rows each shard holds (curate.data.metadata): read by the metadata scorers. For
# a download read in place its input is the download's own metadata folder, outside data_root.
rule index_pool_metadata:
    input:
        unpack(get_metadata_layout_inputs),
    output:
        P("metadata_layout"),
    log:
        P.log("index_pool_metadata", "pool"),
    wildcard_constraints:
        pool=WS.pools_with_metadata(),
    conda:
        "../envs/download.yaml"
    params:
        layout=get_metadata_layout_params,
    script:
        "../scripts/index_pool_metadata.py"


# A download read in place (a pool's `layout` and `root`): the chunk's shards linked into
# shards/{chunk}/ (never copied, root never written), each read against its record, its checksums
# recorded; with the pool's retry_failed, failed urls downloaded again into new shards beside them.
rule index_pool_chunk:
    input:
        unpack(get_index_inputs),
    output:
        P("pool_index"),
    log:
        P.log("index_pool_chunk", "pool", "chunk"),
    wildcard_constraints:
        pool=WS.pools_in_place(),
    conda:
        "../envs/download.yaml"
    threads: get_index_threads
    params:
        pool=lambda wildcards: config["pools"][wildcards.pool],
        shard_ids=get_chunk_shard_ids,
    script:
        "../scripts/index_pool_chunk.py"


rule fetch_model:
    output:
        directory(P("pretrained_model")),
    log:
        P.log("fetch_model", "model"),
    wildcard_constraints:
        # only configured models are fetched; other folders there are put in place by hand
        model=WS.models_of("open_clip", "huggingface", "url"),
    conda:
        "../envs/fetch.yaml"
    params:
        entry=lambda wildcards: config["models"][wildcards.model],
        cache_dir=P("model_cache"),
    script:
        "../scripts/fetch_model.py"


# An original checkpoint (models.<name>.convert) in transformers' layout, beside the fetched file.
rule convert_model:
    input:
        unpack(get_conversion_inputs),
    output:
        directory(P("converted_model")),
    log:
        P.log("convert_model", "model"),
    wildcard_constraints:
        model=names_pattern(
            n for n, e in config.get("models", {}).items() if e.get("convert")
        ),
    conda:
        "../envs/caption.yaml"
    params:
        entry=lambda wildcards: config["models"][wildcards.model],
    script:
        "../scripts/convert_model.py"


rule fetch_eval_task:
    output:
        directory(P("local_task")),
    log:
        P.log("fetch_eval_task", "suite", "task"),
    wildcard_constraints:
        suite=WS.suites_from("local"),
        task=r"[^/]+(/[^/]+)?",
    conda:
        "../envs/download.yaml"
    params:
        root=lambda wildcards: config["suites"][wildcards.suite]["root"],
        task=lambda wildcards: config["suites"][wildcards.suite]["tasks"][
            wildcards.task
        ],
    script:
        "../scripts/fetch_eval_task.py"


# A subset published elsewhere (config `published_uids`: url through url_mirrors, or a local
# path; sha256 checked), written as a DataComp .npy in file order with its record beside it.
rule fetch_published_uids:
    output:
        uids=P("published_uids"),
        record=P("published_uids_record"),
    log:
        P.log("fetch_published_uids", "published"),
    wildcard_constraints:
        published=names_pattern(config["published_uids"]),
    conda:
        "../envs/download.yaml"
    params:
        entry=lambda wildcards: config["published_uids"][wildcards.published],
        mirrors=config["url_mirrors"],
    script:
        "../scripts/fetch_published_uids.py"


# A dataset from the Hub (a gated one with the token of its `token_env`) or a local folder, linked
rule fetch_dataset:
    output:
        directory(P("dataset")),
    log:
        P.log("fetch_dataset", "dataset"),
    wildcard_constraints:
        dataset=WS.datasets_made_by("fetch_dataset"),
    conda:
        "../envs/download.yaml"
    params:
        entry=lambda wildcards: config["datasets"][wildcards.dataset],
    script:
        "../scripts/fetch_dataset.py"
