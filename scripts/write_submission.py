from pathlib import Path

from curate.logs import log_to
from curate.submission import write_submission

with log_to(snakemake.log[0]) as log:
    paths = write_submission(
        Path(snakemake.output.info).parent,
        snakemake.input.evaluation,
        snakemake.input.subset,
        snakemake.params.info,
        snakemake.params.groups,
    )
    log.info("submission files (not uploaded): %s", ", ".join(str(p) for p in paths.values()))
