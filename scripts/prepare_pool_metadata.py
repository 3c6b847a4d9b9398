from pathlib import Path

from curate.data.pools import prepare_metadata
from curate.workflow.job import job

with job(snakemake) as log:
    metadata = snakemake.params.metadata
    summary = prepare_metadata(
        Path(snakemake.input[0]).parent,
        snakemake.output[0],
        columns=metadata["columns"],
        uid_from=metadata["uid_from"],
        sample=metadata["sample"],
    )
    log.info("prepared metadata: %s", {k: v for k, v in summary.items() if k != "sources"})
