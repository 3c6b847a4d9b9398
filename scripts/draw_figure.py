from curate.reporting.figures import draw
from curate.workflow.job import job

with job(snakemake) as log:
    plan = snakemake.params.plan
    inputs = {role: list(snakemake.input[role]) for role in snakemake.input.keys()}
    draw(plan["type"], inputs, plan["params"], snakemake.output[0])
    log.info("figure %s (%s) written to %s", snakemake.wildcards.figure, plan["type"], snakemake.output[0])
