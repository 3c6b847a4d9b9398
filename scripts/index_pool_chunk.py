from pathlib import Path

from curate.data.chunks import chunk_folder
from curate.data.inplace import index_chunk, retry_first_shard, retry_in_place, shard_source
from curate.data.integrity import write_json
from curate.data.metadata import read_layout
from curate.workflow.job import job


def main(snakemake):
    with job(snakemake) as log:
        pool = snakemake.params.pool
        shard_ids = snakemake.params.shard_ids
        chunk_dir = chunk_folder(snakemake.output[0])
        report = index_chunk(shard_source(pool), chunk_dir, shard_ids, pool_shards=pool["n_shards"])
        log.info(
            "indexed %d shards of %s in place (missing %s); %d of %d samples downloaded",
            report["complete_shards"],
            report["source"],
            report["missing_shards"] or "none",
            report["successes"],
            report["count"],
        )
        if pool["retry_failed"]:
            layout = read_layout(snakemake.input.layout) if "layout" in snakemake.input.keys() else None
            settings = {k: v for k, v in pool["download"].items() if k != "retry_failed"}
            retry = retry_in_place(
                chunk_dir,
                shard_ids,
                retry_first_shard(pool, snakemake.wildcards.chunk),
                pool["samples_per_shard"],
                layout=layout,
                **settings,
            )
            log.info("retry of failed urls: %d attempted, %d recovered", retry["attempted"], retry["recovered"])
            report["retry"] = retry
        write_json(Path(snakemake.output[0]), report, "chunk index")


# img2dataset starts its workers with multiprocessing's "spawn", which imports this script again
# in every worker (as __mp_main__): only the main process may index and download.
if __name__ == "__main__":
    main(snakemake)
