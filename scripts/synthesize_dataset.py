from pathlib import Path

from curate.data.datasets import SYNTHETIC_FILE
from curate.data.synthetic.curated import write_labelled_set
from curate.workflow.job import job

with job(snakemake) as log:
    entry = snakemake.params.entry
    summary = write_labelled_set(
        Path(snakemake.output[0]) / SYNTHETIC_FILE,
        task=entry["task"],
        n_per_class=entry["n_per_class"],
        seed=entry["seed"],
        image_size=entry["image_size"],
    )
    log.info("dataset %s: %s", snakemake.wildcards.dataset, summary)
