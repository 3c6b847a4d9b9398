import json

import torch

from curate.captioning import caption_pool_chunk, chunk_seed
from curate.logs import log_to
from curate.shards import shard_paths

with log_to(snakemake.log[0]) as log:
    torch.set_num_threads(snakemake.threads)
    captioner = snakemake.params.captioner
    captions, report = caption_pool_chunk(
        snakemake.input.model,
        shard_paths(snakemake.input.shards),
        seed=chunk_seed(captioner["seed"], snakemake.wildcards.chunk),
        batch_size=snakemake.params.batch_size,
    )
    captions.to_parquet(snakemake.output.captions, index=False)
    with open(snakemake.output.report, "w") as stream:
        json.dump(report, stream, indent=2)
    log.info("captioned %d samples; skipped: %s", len(captions), report.get("skipped"))
