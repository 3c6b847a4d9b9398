import json
import tempfile
from pathlib import Path

import torch

from curate.data.shards import iter_webdataset_pairs
from curate.training.llava import assemble_llava, build_tiny_parts
from curate.workflow.job import job

with job(snakemake) as log:
    torch.set_num_threads(snakemake.threads)
    base = snakemake.params.base
    if base["source"] == "train":
        captions = [text for _, text in iter_webdataset_pairs(sorted(Path(snakemake.input.curated_set).glob("*.tar")))]
        with tempfile.TemporaryDirectory(prefix="llava-parts-") as parts:
            info = build_tiny_parts(parts, captions, seed=base["seed"], lm_steps=base["lm_steps"])
            log.info("tiny parts: %s", json.dumps(info))
            assemble_llava(
                Path(parts) / "vision", Path(parts) / "language_model", snakemake.output[0], seed=base["seed"]
            )
    else:
        assemble_llava(
            snakemake.input.vision_tower, snakemake.input.language_model, snakemake.output[0], seed=base["seed"]
        )
    log.info("LLaVA base saved to %s", snakemake.output[0])
