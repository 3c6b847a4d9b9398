from curate.scoring.clip import write_random_model
from curate.workflow.job import job

with job(snakemake) as log:
    entry = snakemake.params.entry
    write_random_model(entry["arch"], entry["seed"], snakemake.output[0])
    log.info("model %s: %s initialised randomly with seed %d", snakemake.wildcards.model, entry["arch"], entry["seed"])
