import pandas as pd
import torch

from curate.data.scorefiles import save_scores
from curate.scoring.sentence import load_sentence_encoder
from curate.scoring.sieve import sieve_score_frame
from curate.workflow.job import job

with job(snakemake) as log:
    torch.set_num_threads(snakemake.threads)
    encoder = load_sentence_encoder(snakemake.input.sentence_encoder, snakemake.params.sentence_encoder["library"])
    scores = sieve_score_frame(
        encoder,
        pd.read_parquet(snakemake.input.captions),
        snakemake.params.batch_size,
        num_captions=snakemake.params.scorer["num_captions"],
    )
    save_scores(scores, snakemake.output.scores, ["sieve_score", "sieve_mean"], text_columns=("best_caption",))
    log.info("Sieve-scored %d samples of chunk %s", len(scores), snakemake.wildcards.chunk)
