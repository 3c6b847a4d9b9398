import json

import torch

from curate.itm import score_chunk_itm, score_column_of
from curate.logs import log_to
from curate.score import save_scores
from curate.shards import shard_paths

with log_to(snakemake.log[0]) as log:
    torch.set_num_threads(snakemake.threads)
    head = snakemake.params.head
    scores, report = score_chunk_itm(
        snakemake.input.model,
        shard_paths(snakemake.input.shards),
        head=head,
        batch_size=snakemake.params.batch_size,
        device="cuda" if torch.cuda.is_available() else "cpu",
    )
    save_scores(scores, snakemake.output.scores, score_columns=[score_column_of(head)])
    with open(snakemake.output.report, "w") as stream:
        json.dump(report, stream, indent=2)
    log.info("scored %d samples (%s head); skipped: %s", len(scores), head, report.get("skipped"))
