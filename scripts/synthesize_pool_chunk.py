from curate.data.synthetic.pool import write_pool_chunk
from curate.workflow.job import job

with job(snakemake) as log:
    pool = snakemake.params.pool
    summary = write_pool_chunk(
        out_dir=snakemake.output.shards,
        ground_truth_path=snakemake.output.ground_truth,
        chunk_index=int(snakemake.wildcards.chunk),
        shard_ids=snakemake.params.shard_ids,
        samples_per_shard=pool["samples_per_shard"],
        noise_rates=pool["noise_rates"],
        seed=pool["seed"],
        image_size=pool["image_size"],
        sign_rate=pool["sign_rate"],
    )
    log.info("chunk %s written: %s", snakemake.wildcards.chunk, summary)
