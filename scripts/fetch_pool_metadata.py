from pathlib import Path

from curate.logs import log_to
from curate.pools import fetch_metadata

with log_to(snakemake.log[0]) as log:
    metadata = snakemake.params.metadata
    record = fetch_metadata(
        metadata["hf_dataset"],
        Path(snakemake.output[0]).parent,
        allow_patterns=metadata.get("allow_patterns", ["*.parquet"]),
        revision=metadata.get("revision"),
    )
    log.info("fetched %d files, %d rows of %s", len(record["files"]), record["n_rows"], record["hf_dataset"])
