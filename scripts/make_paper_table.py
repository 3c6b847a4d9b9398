from curate.reporting.paper_tables import make_paper_table
from curate.workflow.job import job

with job(snakemake) as log:
    table = make_paper_table(
        snakemake.params.table, snakemake.params.rows, snakemake.params.suites, snakemake.output[0]
    )
    log.info("%s/%s:\n%s", snakemake.wildcards.paper, snakemake.wildcards.table, table.to_string())
