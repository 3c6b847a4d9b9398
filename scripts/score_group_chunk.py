import torch

from curate.data.scorefiles import write_scored_chunk
from curate.data.shards import shard_paths
from curate.devices import job_device
from curate.workflow.job import job, loader_workers, model_threads

with job(snakemake) as log:
    torch.set_num_threads(model_threads(snakemake))
    device = job_device(snakemake)
    kind, scorers = snakemake.params.kind, snakemake.params.scorers
    shards = shard_paths(snakemake.input.shards)
    settings = dict(
        batch_size=snakemake.params.batch_size,
        device=device,
        workers=loader_workers(snakemake),
        precision=snakemake.config["cuda_precision"],
    )
    per_scorer = len(snakemake.output) // len(scorers)  # scores, report (, embeddings) of each
    files = {s: snakemake.output[i * per_scorer : (i + 1) * per_scorer] for i, s in enumerate(scorers)}
    if kind == "open_clip":
        from curate.scoring.clip_score import score_chunk_group

        models = {s: f"local-dir:{model}" for s, model in zip(scorers, snakemake.input.models)}
        results = score_chunk_group(models, shards, embeddings_paths={s: files[s][2] for s in scorers}, **settings)
    else:
        from curate.scoring.itm import score_chunk_itm_group

        models = {s: (model, head) for s, model, head in zip(scorers, snakemake.input.models, snakemake.params.heads)}
        results = score_chunk_itm_group(models, shards, **settings)
    for scorer, contract in zip(scorers, snakemake.params.contracts):
        scores, report = results[scorer]
        written = write_scored_chunk(scores, report, files[scorer][0], files[scorer][1], contract)
        log.info("%s: scored %d samples; skipped: %s", scorer, len(written), report.get("skipped"))
