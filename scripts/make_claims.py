from curate.reporting.claims import claims_table, measure_comparison
from curate.reporting.tables import load_ground_truth, write_table
from curate.workflow.job import job

with job(snakemake) as log:
    comparisons = snakemake.params.comparisons
    truth = load_ground_truth(list(snakemake.input.ground_truth)) if "ground_truth" in snakemake.input.keys() else None
    measured = [measure_comparison(c, snakemake.params.groups, truth) for c in comparisons]
    table = claims_table(comparisons, measured)
    write_table(table, snakemake.output[0])
    log.info("claims:\n%s", table.to_string())
