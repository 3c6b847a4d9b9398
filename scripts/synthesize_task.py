from curate.logs import log_to
from curate.synthetic.tasks import write_task

with log_to(snakemake.log[0]) as log:
    suite = snakemake.params.suite
    summary = write_task(
        out_dir=snakemake.output[0],
        task=snakemake.wildcards.task,
        n_samples=suite["n_samples"],
        seed=suite["seed"],
    )
    log.info("task %s: %s", snakemake.wildcards.task, summary)
