import torch

from curate.data.scorefiles import write_scored_chunk
from curate.data.shards import shard_paths
from curate.devices import job_device
from curate.scoring.clip_score import score_chunk
from curate.workflow.job import job, loader_workers, model_threads

with job(snakemake) as log:
    torch.set_num_threads(model_threads(snakemake))
    scores, report = score_chunk(
        f"local-dir:{snakemake.input.model}",
        shard_paths(snakemake.input.shards),
        batch_size=snakemake.params.batch_size,
        embeddings_path=snakemake.output.embeddings,
        device=job_device(snakemake),
        workers=loader_workers(snakemake),
        precision=snakemake.config["cuda_precision"],
    )
    scores = write_scored_chunk(
        scores, report, snakemake.output.scores, snakemake.output.report, snakemake.params.contract
    )
    log.info("scored %d samples; skipped: %s", len(scores), report.get("skipped"))
