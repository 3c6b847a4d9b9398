import json

import torch

from curate.scoring.sentence import build_tiny_sentence_encoder, scene_paraphrase_pairs
from curate.workflow.job import job

with job(snakemake) as log:
    torch.set_num_threads(snakemake.threads)
    encoder = snakemake.params.sentence_encoder
    summary = build_tiny_sentence_encoder(
        snakemake.output[0],
        scene_paraphrase_pairs(encoder["n_pairs"], seed=encoder["seed"]),
        seed=encoder["seed"],
        steps=encoder["steps"],
    )
    log.info("sentence encoder %s: %s", snakemake.wildcards.sentence_encoder, json.dumps(summary))
