import pandas as pd
import torch

from curate.data.scorefiles import contract_columns, finite_scores, save_scores
from curate.devices import job_device
from curate.scoring.sentence import load_sentence_encoder
from curate.scoring.sieve import sieve_score_frame
from curate.workflow.job import job

with job(snakemake) as log:
    torch.set_num_threads(snakemake.threads)
    encoder = load_sentence_encoder(
        snakemake.input.sentence_encoder, snakemake.params.sentence_encoder["library"], device=job_device(snakemake)
    )
    scores = sieve_score_frame(
        encoder,
        pd.read_parquet(snakemake.input.captions),
        snakemake.params.batch_size,
        num_captions=snakemake.params.scorer["num_captions"],
    )
    contract = snakemake.params.contract
    scores, skipped = finite_scores(scores, contract_columns(contract)[0], snakemake.output.scores)
    save_scores(scores, snakemake.output.scores, contract=contract)
    log.info(
        "Sieve-scored %d samples of chunk %s; skipped (not finite): %s", len(scores), snakemake.wildcards.chunk, skipped
    )
