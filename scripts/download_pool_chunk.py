import json
from pathlib import Path

from curate.data.chunks import chunk_folder
from curate.data.download import download_chunk, download_report, retry_failed
from curate.workflow.job import job


def main(snakemake):
    with job(snakemake) as log:
        pool = snakemake.params.pool
        settings = dict(pool["download"])
        retry = settings.pop("retry_failed")
        shard_ids = snakemake.params.shard_ids
        chunk_dir = chunk_folder(snakemake.output[0])
        metadata = Path(snakemake.params.metadata)
        result = download_chunk(
            metadata,
            chunk_dir,
            first_shard_id=shard_ids[0],
            n_shards=len(shard_ids),
            samples_per_shard=pool["samples_per_shard"],
            **settings,
        )
        log.info("shards downloaded %s, already complete %s", result["downloaded"], result["skipped"])
        for shard, why in result["refetched"].items():
            log.warning("shard %s was damaged and is downloaded again: %s", shard, why)
        if retry:
            retried = retry_failed(
                chunk_dir,
                **{k: v for k, v in settings.items() if k in ("processes", "threads", "retries", "timeout")},
            )
            log.info("retry: %d attempted, %d recovered", retried["attempted"], retried["recovered"])
        report = download_report(chunk_dir, shard_ids)
        log.info("success rate %s; failures %s", report["success_rate"], report["failures_by_category"])
        tmp = Path(snakemake.output[0] + ".tmp")
        tmp.write_text(json.dumps(report, indent=2) + "\n")
        tmp.replace(snakemake.output[0])


# img2dataset starts its workers with multiprocessing's "spawn", which imports this script again
# in every worker (as __mp_main__): only the main process may download.
if __name__ == "__main__":
    main(snakemake)
