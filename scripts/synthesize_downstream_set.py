from curate.data.synthetic.curated import write_downstream_set
from curate.workflow.job import job

with job(snakemake) as log:
    suite = snakemake.params.suite
    summary = write_downstream_set(
        path=snakemake.output[0],
        n_per_class=suite["downstream_per_class"],
        seed=suite["seed"] + 1,
    )
    log.info("downstream set: %s", summary)
