import numpy as np
import torch

from curate.data.evalsets import load_downstream_npz
from curate.devices import job_device
from curate.scoring.embedding_scores import embed_downstream_images
from curate.workflow.job import job

with job(snakemake) as log:
    torch.set_num_threads(snakemake.threads)
    images, labels, classnames = load_downstream_npz(snakemake.input.downstream)
    image = embed_downstream_images(
        f"local-dir:{snakemake.input.model}",
        images,
        snakemake.params.batch_size,
        device=job_device(snakemake),
        precision=snakemake.config["cuda_precision"],
    )
    np.savez(snakemake.output[0], image=image.astype(np.float16), labels=labels)
    log.info("embedded %d downstream images with %s", len(image), snakemake.wildcards.scorer)
