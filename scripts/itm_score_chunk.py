import torch

from curate.data.scorefiles import write_scored_chunk
from curate.data.shards import shard_paths
from curate.devices import job_device
from curate.scoring.itm import score_chunk_itm
from curate.workflow.job import job, loader_workers, model_threads

with job(snakemake) as log:
    torch.set_num_threads(model_threads(snakemake))
    head = snakemake.params.head
    scores, report = score_chunk_itm(
        snakemake.input.model,
        shard_paths(snakemake.input.shards),
        head=head,
        batch_size=snakemake.params.batch_size,
        device=job_device(snakemake),
        workers=loader_workers(snakemake),
        precision=snakemake.config["cuda_precision"],
    )
    scores = write_scored_chunk(
        scores, report, snakemake.output.scores, snakemake.output.report, snakemake.params.contract
    )
    log.info("scored %d samples (%s head); skipped: %s", len(scores), head, report.get("skipped"))
