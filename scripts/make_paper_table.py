from curate.logs import log_to
from curate.paper_tables import make_paper_table

with log_to(snakemake.log[0]) as log:
    table = make_paper_table(
        snakemake.params.table, snakemake.params.rows, snakemake.params.suites, snakemake.output[0]
    )
    log.info("%s/%s:\n%s", snakemake.wildcards.paper, snakemake.wildcards.table, table.to_string())
