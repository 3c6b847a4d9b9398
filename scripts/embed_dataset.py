import numpy as np
import torch

from curate.data.datasets import iter_labelled
from curate.devices import job_device
from curate.scoring.embedding_scores import embed_labelled_images
from curate.workflow.job import job

with job(snakemake) as log:
    torch.set_num_threads(snakemake.threads)
    entry = snakemake.params.entry
    image, labels = embed_labelled_images(
        f"local-dir:{snakemake.input.model}",
        iter_labelled(entry, snakemake.input.dataset[0]),
        snakemake.params.batch_size,
        device=job_device(snakemake),
        precision=snakemake.config["cuda_precision"],
    )
    np.savez(snakemake.output[0], image=image.astype(np.float16), labels=labels)
    log.info("embedded %d images of %s with %s", len(image), snakemake.wildcards.dataset, snakemake.wildcards.scorer)
