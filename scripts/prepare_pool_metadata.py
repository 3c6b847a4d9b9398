from pathlib import Path

from curate.logs import log_to
from curate.pools import prepare_metadata

with log_to(snakemake.log[0]) as log:
    metadata = snakemake.params.metadata
    summary = prepare_metadata(
        Path(snakemake.input[0]).parent,
        snakemake.output[0],
        columns=metadata.get("columns"),
        uid_from=metadata.get("uid_from"),
        sample=metadata.get("sample"),
    )
    log.info("prepared metadata: %s", {k: v for k, v in summary.items() if k != "sources"})
