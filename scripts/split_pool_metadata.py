import json
from pathlib import Path

from curate.data.download import split_metadata
from curate.workflow.job import job

with job(snakemake) as log:
    pool = snakemake.params.pool
    source = Path(snakemake.input[0])
    if source.name == "fetch.json":  # DataComp's parquet folder as fetched
        source = source.parent
    out = Path(snakemake.output[0]).parent
    paths = split_metadata(source, out, pool["samples_per_shard"], pool["shards_per_chunk"])
    split = json.loads((out / "split.json").read_text())
    if split["n_shards"] != pool["n_shards"]:
        raise ValueError(
            f"pools.{snakemake.wildcards.pool}.n_shards is {pool['n_shards']}, but its metadata has "
            f"{split['n_rows']} rows, i.e. {split['n_shards']} shards of {pool['samples_per_shard']}: "
            "set n_shards to that"
        )
    log.info("split %d rows into %d chunk files", split["n_rows"], len(paths))
