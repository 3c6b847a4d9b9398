import json

import torch

from curate.data.chunks import chunk_seed
from curate.data.shards import shard_paths
from curate.devices import job_device
from curate.scoring.captioning import caption_pool_chunk
from curate.workflow.job import job

with job(snakemake) as log:
    torch.set_num_threads(snakemake.threads)
    captioner = snakemake.params.captioner
    captions, report = caption_pool_chunk(
        snakemake.input.model,
        shard_paths(snakemake.input.shards),
        seed=chunk_seed(captioner["seed"], snakemake.wildcards.chunk),
        batch_size=snakemake.params.batch_size,
        image_size=captioner["image_size"],
        device=job_device(snakemake),
    )
    captions.to_parquet(snakemake.output.captions, index=False)
    with open(snakemake.output.report, "w") as stream:
        json.dump(report, stream, indent=2)
    log.info("captioned %d samples; skipped: %s", len(captions), report.get("skipped"))
