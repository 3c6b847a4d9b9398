from curate.data.metadata import chunk_metadata, read_layout
from curate.data.scorefiles import save_embeddings
from curate.data.shards import shard_paths
from curate.workflow.job import job

with job(snakemake) as log:
    scorer = snakemake.params.scorer
    uids, _, (image, text), report = chunk_metadata(
        shard_paths(snakemake.input.chunk),
        read_layout(snakemake.input.layout),
        scorer["column"],
        features=scorer["features"],
        pool_shards=snakemake.params.pool_shards,
    )
    save_embeddings(snakemake.output[0], uids, image, text)
    log.info("read %s features of %d downloaded samples; skipped: %s", scorer["features"], len(uids), report["skipped"])
