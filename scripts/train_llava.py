from curate.training.llava import train_projector
from curate.workflow.job import job

with job(snakemake) as log:
    summary = train_projector(
        snakemake.params.recipe,
        snakemake.input.reshard,
        snakemake.input.base,
        snakemake.output[0],
        seed=snakemake.params.recipe["seed"],
        threads=snakemake.threads,
        scratch=snakemake.params.scratch,
    )
    log.info("trained: %s", summary)
