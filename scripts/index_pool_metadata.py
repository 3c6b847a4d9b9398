from pathlib import Path

from curate.data.metadata import build_layout, write_layout
from curate.workflow.job import job

with job(snakemake) as log:
    settings = snakemake.params.layout
    source = Path(snakemake.input.metadata)
    if source.name == "fetch.json":  # DataComp's parquet folder as fetched
        source = source.parent
    layout = build_layout(source, settings["samples_per_shard"], settings["sharding"])
    if layout["n_shards"] != settings["n_shards"]:
        raise ValueError(
            f"pools.{snakemake.wildcards.pool}.n_shards is {settings['n_shards']}, but its metadata ({source}, "
            f"{layout['n_rows']} rows in {len(layout['files'])} files, {layout['sharding']} sharding) makes "
            f"{layout['n_shards']} shards of {settings['samples_per_shard']}: set n_shards to that"
        )
    write_layout(layout, snakemake.output[0])
    log.info(
        "metadata of %s: %d rows in %d files, %d shards (%s); columns %s; features %s",
        snakemake.wildcards.pool,
        layout["n_rows"],
        len(layout["files"]),
        layout["n_shards"],
        layout["sharding"],
        layout["columns"],
        layout["npz_keys"] or "none",
    )
