from curate.logs import log_to
from curate.synthetic.pool import write_pool_chunk

with log_to(snakemake.log[0]) as log:
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
        sign_rate=pool.get("sign_rate", 0.1),
    )
    log.info("chunk %s written: %s", snakemake.wildcards.chunk, summary)
