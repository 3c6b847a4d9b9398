from curate.data.datasets import fetch_dataset
from curate.workflow.job import job

with job(snakemake) as log:
    record = fetch_dataset(snakemake.wildcards.dataset, snakemake.params.entry, snakemake.output[0])
    log.info("dataset %s from %s", snakemake.wildcards.dataset, record["origin"])
