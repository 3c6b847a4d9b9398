from curate.logs import log_to
from curate.selection import select
from curate.shards import shard_paths
from curate.subset import save_subset

with log_to(snakemake.log[0]) as log:
    entry = snakemake.params.selection
    # a role given one file (a model, a target set) stays a path; the others are lists
    inputs = {
        role: files if isinstance(files, str) else list(files)
        for role, files in ((role, snakemake.input[role]) for role in snakemake.input.keys())
    }
    if "metadata" in inputs:
        inputs["metadata"] = [p.with_suffix(".parquet") for d in inputs["metadata"] for p in shard_paths(d)]
    subset = select(entry["method"], entry, inputs)
    save_subset(snakemake.output.subset, subset)
    log.info("selection %s kept %d uids", snakemake.wildcards.selection, len(subset))
