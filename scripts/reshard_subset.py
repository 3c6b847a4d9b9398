from curate.data.integrity import subset_coverage, writing
from curate.data.reshard import reshard
from curate.data.shards import shard_paths
from curate.data.subset import load_subset
from curate.selection.strategies import CAPTION_COLUMN, WEIGHT_COLUMN, read_uid_column
from curate.workflow.job import job

with job(snakemake) as log:
    settings = snakemake.params.reshard
    weights = read_uid_column(snakemake.input.weights, WEIGHT_COLUMN) if "weights" in snakemake.input.keys() else None
    captions = (
        read_uid_column(snakemake.input.captions, CAPTION_COLUMN) if "captions" in snakemake.input.keys() else None
    )
    with writing(snakemake.output[0], "reshard (webdataset tars and meta.json)"):
        meta = reshard(
            load_subset(snakemake.input.subset),
            [path for chunk in snakemake.input.pool for path in shard_paths(chunk)],
            snakemake.output[0],
            samples_per_shard=settings["samples_per_shard"],
            shuffle_buffer=settings["shuffle_buffer"],
            seed=settings["seed"],
            weights=weights,
            captions=captions,
        )
    log.info("resharded: %s", {k: v for k, v in meta.items() if k != "shard_sizes"})
    # the subset's uids the pool did not give: counted here and in the tables; too many stop the job
    coverage = subset_coverage(
        f"{snakemake.wildcards.selection} ({snakemake.input.subset})",
        meta["unique_uids"],
        meta["missing_uids"],
        meta["missing_examples"],
    )
    log.info(
        "subset %s: %d of %d uids absent from the pool (%.2f%%)",
        snakemake.wildcards.selection,
        coverage["absent_uids"],
        coverage["unique_uids"],
        100 * coverage["absent_share"],
    )
