from curate.data.published import fetch_published_uids
from curate.workflow.job import job

with job(snakemake) as log:
    record = fetch_published_uids(
        snakemake.wildcards.published,
        snakemake.params.entry,
        snakemake.output.uids,
        snakemake.output.record,
        mirrors=snakemake.params.mirrors,
    )
    log.info("published uids %s: %s", snakemake.wildcards.published, record)
