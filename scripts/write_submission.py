from pathlib import Path

from curate.reporting.submission import write_submission
from curate.workflow.job import job

with job(snakemake) as log:
    paths = write_submission(
        Path(snakemake.output.info).parent,
        snakemake.input.evaluation,
        snakemake.input.subset,
        snakemake.params.info,
        snakemake.params.groups,
    )
    log.info("submission files (not uploaded): %s", ", ".join(str(p) for p in paths.values()))
