import json

import torch

from curate.data.scorefiles import contract_columns, finite_scores, save_scores
from curate.data.shards import shard_paths
from curate.devices import job_device
from curate.scoring.hype import model_files, score_chunk
from curate.scoring.pretrained import fetched_file
from curate.workflow.job import job

with job(snakemake) as log:
    torch.set_num_threads(snakemake.threads)
    if "reference" in snakemake.input.keys():  # the release: two fetched files
        checkpoint, reference = fetched_file(snakemake.input.model), fetched_file(snakemake.input.reference)
    else:  # a hyperbolic CLIP trained here, saved in the release's two files
        checkpoint, reference = model_files(snakemake.input.model)
    scores, report = score_chunk(
        checkpoint,
        reference,
        shard_paths(snakemake.input.shards),
        batch_size=snakemake.params.batch_size,
        device=job_device(snakemake),
    )
    scores, skipped = finite_scores(scores, contract_columns(snakemake.params.contract)[0], snakemake.output.scores)
    for reason, n in skipped.items():
        report["skipped"][reason] = report["skipped"].get(reason, 0) + n
    save_scores(scores, snakemake.output.scores, contract=snakemake.params.contract)
    with open(snakemake.output.report, "w") as stream:
        json.dump(report, stream, indent=2)
    log.info("HYPE scores of %d samples; skipped: %s", len(scores), report.get("skipped"))
