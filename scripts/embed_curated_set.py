import numpy as np
import torch

from curate.data.shards import iter_webdataset_pairs, shard_paths
from curate.devices import job_device
from curate.scoring.embedding_scores import embed_pairs
from curate.workflow.job import job

with job(snakemake) as log:
    torch.set_num_threads(snakemake.threads)
    image, text = embed_pairs(
        f"local-dir:{snakemake.input.model}",
        iter_webdataset_pairs(shard_paths(snakemake.input.curated_set)),
        snakemake.params.batch_size,
        device=job_device(snakemake),
        precision=snakemake.config["cuda_precision"],
    )
    np.savez(snakemake.output[0], image=image.astype(np.float16), text=text.astype(np.float16))
    log.info("embedded %d pairs of %s with %s", len(image), snakemake.wildcards.curated_set, snakemake.wildcards.scorer)
