from curate.data.integrity import subset_coverage, writing
from curate.data.reshard import reshard
from curate.data.shards import failed_downloads, shard_paths
from curate.data.subset import load_subset
from curate.selection.strategies import CAPTION_COLUMN, WEIGHT_COLUMN, read_uid_column
from curate.workflow.job import job

with job(snakemake) as log:
    settings = snakemake.params.reshard
    weights = read_uid_column(snakemake.input.weights, WEIGHT_COLUMN) if "weights" in snakemake.input.keys() else None
    captions = (
        read_uid_column(snakemake.input.captions, CAPTION_COLUMN) if "captions" in snakemake.input.keys() else None
    )
    tars = [path for chunk in snakemake.input.pool for path in shard_paths(chunk)]
    missing = []
    with writing(snakemake.output[0], "reshard (webdataset tars and meta.json)"):
        meta = reshard(
            load_subset(snakemake.input.subset),
            tars,
            snakemake.output[0],
            samples_per_shard=settings["samples_per_shard"],
            shuffle_buffer=settings["shuffle_buffer"],
            seed=settings["seed"],
            weights=weights,
            captions=captions,
            missing_out=missing,
        )
    log.info("resharded: %s", {k: v for k, v in meta.items() if k != "shard_sizes"})
    # the subset's uids the pool did not give: those its shards list as failed downloads (links rot;
    # a subset selected on the metadata, or published, meets them) are counted; the others (not in
    # the pool at all, or lost from its shards) beyond the tolerance stop the job
    failed = failed_downloads(tars) if missing else set()
    not_downloaded = [uid for uid in missing if uid in failed]
    absent = [uid for uid in missing if uid not in failed]
    if not_downloaded:
        log.info(
            "subset %s: %d of its %d uids are listed by the pool as failed downloads (not in its tars), e.g. %s",
            snakemake.wildcards.selection,
            len(not_downloaded),
            meta["unique_uids"],
            ", ".join(not_downloaded[:3]),
        )
    coverage = subset_coverage(
        f"{snakemake.wildcards.selection} ({snakemake.input.subset})",
        meta["unique_uids"],
        len(absent),
        absent[:5],
        max_share=snakemake.params.max_missing,  # a subset made elsewhere may set its own
    )
    log.info(
        "subset %s: %d of %d uids absent from the pool (%.2f%%), %d more not downloaded",
        snakemake.wildcards.selection,
        coverage["absent_uids"],
        coverage["unique_uids"],
        100 * coverage["absent_share"],
        len(not_downloaded),
    )
