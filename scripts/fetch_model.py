from curate.scoring.pretrained import fetch_model
from curate.workflow.job import job

with job(snakemake) as log:
    record = fetch_model(
        snakemake.wildcards.model,
        snakemake.params.entry,
        snakemake.output[0],
        cache_dir=snakemake.params.cache_dir,
        mirrors=snakemake.config["url_mirrors"],
    )
    log.info("fetched %s from %s, sha256 %s", record["name"], record["origin"], record["sha256"])
