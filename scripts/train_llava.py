from curate.llava import train_projector
from curate.logs import log_to

with log_to(snakemake.log[0]) as log:
    summary = train_projector(
        snakemake.params.recipe,
        snakemake.input.reshard,
        snakemake.input.base,
        snakemake.output[0],
        seed=snakemake.params.seed,
        threads=snakemake.threads,
    )
    log.info("trained: %s", summary)
