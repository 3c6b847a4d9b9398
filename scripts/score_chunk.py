import json

import torch

from curate.data.scorefiles import contract_columns, finite_scores, save_scores
from curate.data.shards import shard_paths
from curate.scoring.clip_score import score_chunk
from curate.workflow.job import job

with job(snakemake) as log:
    torch.set_num_threads(snakemake.threads)
    scores, report = score_chunk(
        f"local-dir:{snakemake.input.model}",
        shard_paths(snakemake.input.shards),
        batch_size=snakemake.params.batch_size,
        embeddings_path=snakemake.output.embeddings,
        device="cuda" if torch.cuda.is_available() else "cpu",
    )
    scores, skipped = finite_scores(scores, contract_columns(snakemake.params.contract)[0], snakemake.output.scores)
    for reason, n in skipped.items():  # NaN ones are already dropped (and counted) by score_chunk
        report["skipped"][reason] = report["skipped"].get(reason, 0) + n
    save_scores(scores, snakemake.output.scores, contract=snakemake.params.contract)
    with open(snakemake.output.report, "w") as stream:
        json.dump(report, stream, indent=2)
    log.info("scored %d samples; skipped: %s", len(scores), report.get("skipped"))
