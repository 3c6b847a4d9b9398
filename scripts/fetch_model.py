from curate.logs import log_to
from curate.models import fetch_model

with log_to(snakemake.log[0]) as log:
    record = fetch_model(
        snakemake.wildcards.model,
        snakemake.params.entry,
        snakemake.output[0],
        cache_dir=snakemake.params.cache_dir,
    )
    log.info("fetched %s from %s, sha256 %s", record["name"], record["origin"], record["sha256"])
