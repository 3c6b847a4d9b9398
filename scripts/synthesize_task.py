from curate.data.synthetic.tasks import write_suite_task
from curate.workflow.job import job

with job(snakemake) as log:
    suite = snakemake.params.suite
    task = snakemake.wildcards.task
    summary = write_suite_task(
        out_dir=snakemake.output[0],
        key=task,
        spec=suite["tasks"][task],
        n_samples=suite["n_samples"],
        seed=suite["seed"],
        n_train_samples=suite.get("n_train_samples"),
    )
    log.info("task %s: %s", task, summary)
