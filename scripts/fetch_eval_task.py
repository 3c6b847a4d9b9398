from curate.data.evalsets import fetch_eval_task
from curate.workflow.job import job

with job(snakemake) as log:
    origin = fetch_eval_task(
        snakemake.wildcards.task,
        snakemake.params.task,
        snakemake.output[0],
        root=snakemake.params.root,
    )
    log.info("task %s from %s", snakemake.wildcards.task, origin)
