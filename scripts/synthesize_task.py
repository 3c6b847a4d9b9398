from curate.logs import log_to
from curate.synthetic.tasks import write_suite_task

with log_to(snakemake.log[0]) as log:
    suite = snakemake.params.suite
    task = snakemake.wildcards.task
    summary = write_suite_task(
        out_dir=snakemake.output[0],
        key=task,
        spec=suite["tasks"][task],
        n_samples=suite["n_samples"],
        seed=suite["seed"],
    )
    log.info("task %s: %s", task, summary)
