from curate.training.weighted_clip import train_weighted_clip
from curate.workflow.job import job

with job(snakemake) as log:
    summary = train_weighted_clip(
        snakemake.params.recipe,
        snakemake.input[0],
        snakemake.output[0],
        seed=snakemake.params.recipe["seed"],
        threads=snakemake.threads,
        scratch=snakemake.params.scratch,
    )
    log.info("trained: %s", summary)
