from curate.figures import draw
from curate.logs import log_to

with log_to(snakemake.log[0]) as log:
    plan = snakemake.params.plan
    inputs = {role: list(snakemake.input[role]) for role in snakemake.input.keys()}
    draw(plan["type"], inputs, plan["params"], snakemake.output[0])
    log.info("figure %s (%s) written to %s", snakemake.wildcards.figure, plan["type"], snakemake.output[0])
