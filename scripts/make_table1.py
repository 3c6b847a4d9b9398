from curate.reporting.tables import leaderboard, write_table
from curate.workflow.job import job

with job(snakemake) as log:
    truth = list(snakemake.input.ground_truth) if "ground_truth" in snakemake.input.keys() else None
    table = leaderboard(snakemake.params.rows, truth, snakemake.params.groups)
    write_table(table, snakemake.output[0])
    log.info("table1:\n%s", table.to_string())
