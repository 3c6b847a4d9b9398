import json

import numpy as np
import torch

from curate.data.scorefiles import save_embeddings
from curate.data.shards import shard_paths
from curate.devices import job_device
from curate.scoring.image_encoder import embed_chunk
from curate.workflow.job import job

with job(snakemake) as log:
    torch.set_num_threads(snakemake.threads)
    uids, image, report = embed_chunk(
        snakemake.input.model,
        shard_paths(snakemake.input.shards),
        batch_size=snakemake.params.batch_size,
        device=job_device(snakemake),
    )
    # an image encoder has no text tower: the file's text embeddings are empty rows
    save_embeddings(snakemake.output.embeddings, uids, image, np.zeros((len(uids), 0), np.float32))
    with open(snakemake.output.report, "w") as stream:
        json.dump(report, stream, indent=2)
    log.info("embedded %d images; skipped: %s", len(uids), report.get("skipped"))
