import json

import torch

from curate.logs import log_to
from curate.sentence import build_tiny_sentence_encoder, scene_paraphrase_pairs

with log_to(snakemake.log[0]) as log:
    torch.set_num_threads(snakemake.threads)
    encoder = snakemake.params.sentence_encoder
    summary = build_tiny_sentence_encoder(
        snakemake.output[0],
        scene_paraphrase_pairs(encoder["n_pairs"], seed=encoder["seed"]),
        seed=encoder["seed"],
        steps=encoder["steps"],
    )
    log.info("sentence encoder %s: %s", snakemake.wildcards.sentence_encoder, json.dumps(summary))
