from curate.logs import log_to
from curate.tables import comparison_table, write_table

with log_to(snakemake.log[0]) as log:
    truth = list(snakemake.input.ground_truth) if "ground_truth" in snakemake.input.keys() else None
    table = comparison_table(snakemake.params.rows, snakemake.params.pending, truth, snakemake.params.groups)
    write_table(table, snakemake.output[0])
    log.info("table2:\n%s", table.to_string())
