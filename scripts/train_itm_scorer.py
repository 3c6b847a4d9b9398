from curate.training.blip import train_itm_scorer
from curate.workflow.job import job

with job(snakemake) as log:
    summary = train_itm_scorer(
        snakemake.params.recipe,
        snakemake.input.curated_set,
        snakemake.output[0],
        seed=snakemake.params.scorer["seed"],
        threads=snakemake.threads,
    )
    log.info("ITM scorer %s: %s", snakemake.wildcards.scorer, summary)
