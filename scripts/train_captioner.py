import json

import torch

from curate.captioning import build_tiny_captioner, iter_webdataset_pairs
from curate.logs import log_to
from curate.shards import shard_paths

with log_to(snakemake.log[0]) as log:
    torch.set_num_threads(snakemake.threads)
    captioner = snakemake.params.captioner
    summary = build_tiny_captioner(
        snakemake.output[0],
        iter_webdataset_pairs(shard_paths(snakemake.input.curated_set)),
        seed=captioner["seed"],
        steps=captioner["steps"],
        batch_size=captioner.get("batch_size", 32),
        lr=captioner.get("lr", 3e-3),
    )
    log.info("captioner %s: %s", snakemake.wildcards.captioner, json.dumps(summary))
