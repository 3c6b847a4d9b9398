from pathlib import Path

from curate.data.pools import fetch_metadata
from curate.workflow.job import job

with job(snakemake) as log:
    metadata = snakemake.params.metadata
    record = fetch_metadata(
        metadata["hf_dataset"],
        Path(snakemake.output[0]).parent,
        allow_patterns=metadata["allow_patterns"],
        revision=metadata["revision"],
    )
    log.info("fetched %d files, %d rows of %s", len(record["files"]), record["n_rows"], record["hf_dataset"])
