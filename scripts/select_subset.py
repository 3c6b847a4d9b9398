from curate.data.scorefiles import check_score_files
from curate.data.shards import checked_metadata, shard_paths
from curate.data.subset import save_subset
from curate.selection.methods import select
from curate.workflow.job import job

with job(snakemake) as log:
    # a role given one file (a model, a target set) stays a path; the others are lists
    inputs = {
        role: files if isinstance(files, str) else list(files)
        for role, files in ((role, snakemake.input[role]) for role in snakemake.input.keys())
    }
    if "scores" in inputs:  # exactly the columns and dtypes their writer's registry entry lists
        check_score_files(inputs["scores"], snakemake.params.score_contract)
    if "metadata" in inputs:  # the pool's chunks: their shards' metadata parquets, as recorded
        inputs["metadata"] = [checked_metadata(p) for d in inputs["metadata"] for p in shard_paths(d)]
    subset = select(snakemake.params.selection, inputs)
    save_subset(snakemake.output.subset, subset)
    log.info("selection %s kept %d uids", snakemake.wildcards.selection, len(subset))
