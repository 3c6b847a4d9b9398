from curate.logs import log_to
from curate.weighted_clip import train_weighted_clip

with log_to(snakemake.log[0]) as log:
    summary = train_weighted_clip(
        snakemake.params.recipe,
        snakemake.input[0],
        snakemake.output[0],
        seed=snakemake.params.seed,
        threads=snakemake.threads,
    )
    log.info("trained: %s", summary)
