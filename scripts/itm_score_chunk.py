import json

import torch

from curate.data.scorefiles import contract_columns, finite_scores, save_scores
from curate.data.shards import shard_paths
from curate.scoring.itm import score_chunk_itm
from curate.workflow.job import job

with job(snakemake) as log:
    torch.set_num_threads(snakemake.threads)
    head = snakemake.params.head
    scores, report = score_chunk_itm(
        snakemake.input.model,
        shard_paths(snakemake.input.shards),
        head=head,
        batch_size=snakemake.params.batch_size,
        device="cuda" if torch.cuda.is_available() else "cpu",
    )
    scores, skipped = finite_scores(scores, contract_columns(snakemake.params.contract)[0], snakemake.output.scores)
    for reason, n in skipped.items():  # NaN ones are already dropped (and counted) by score_chunk_itm
        report["skipped"][reason] = report["skipped"].get(reason, 0) + n
    save_scores(scores, snakemake.output.scores, contract=snakemake.params.contract)
    with open(snakemake.output.report, "w") as stream:
        json.dump(report, stream, indent=2)
    log.info("scored %d samples (%s head); skipped: %s", len(scores), head, report.get("skipped"))
