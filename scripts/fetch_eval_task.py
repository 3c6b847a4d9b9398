from curate.evalsets import fetch_eval_task
from curate.logs import log_to

with log_to(snakemake.log[0]) as log:
    origin = fetch_eval_task(
        snakemake.wildcards.task_key,
        snakemake.params.task,
        snakemake.output[0],
        root=snakemake.params.root,
    )
    log.info("task %s from %s", snakemake.wildcards.task_key, origin)
