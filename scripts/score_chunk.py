import json

import torch

from curate.logs import log_to
from curate.score import save_scores, score_chunk
from curate.shards import shard_paths

with log_to(snakemake.log[0]) as log:
    torch.set_num_threads(snakemake.threads)
    scores, report = score_chunk(
        f"local-dir:{snakemake.input.model}",
        shard_paths(snakemake.input.shards),
        batch_size=snakemake.params.batch_size,
        embeddings_path=snakemake.output.embeddings,
        device="cuda" if torch.cuda.is_available() else "cpu",
    )
    save_scores(scores, snakemake.output.scores)
    with open(snakemake.output.report, "w") as stream:
        json.dump(report, stream, indent=2)
    log.info("scored %d samples; skipped: %s", len(scores), report.get("skipped"))
