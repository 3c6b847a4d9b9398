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
