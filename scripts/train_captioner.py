import json

import torch

from curate.data.shards import iter_webdataset_pairs, shard_paths
from curate.scoring.captioning import build_tiny_captioner
from curate.workflow.job import job

with job(snakemake) as log:
    torch.set_num_threads(snakemake.threads)
    captioner = snakemake.params.captioner
    summary = build_tiny_captioner(
        snakemake.output[0],
        iter_webdataset_pairs(shard_paths(snakemake.input.curated_set)),
        seed=captioner["seed"],
        steps=captioner["steps"],
        batch_size=captioner["batch_size"],
        lr=captioner["lr"],
    )
    log.info("captioner %s: %s", snakemake.wildcards.captioner, json.dumps(summary))
