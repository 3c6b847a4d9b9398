import numpy as np

from curate.data.scorefiles import load_embeddings
from curate.scoring.embedding_scores import train_pool_classifier
from curate.workflow.job import job

with job(snakemake) as log:
    scorer = snakemake.params.scorer
    chunks = [load_embeddings(path) for path in snakemake.input.embeddings]
    pool = (np.concatenate([image for _, image, _ in chunks]), np.concatenate([text for _, _, text in chunks]))
    with np.load(snakemake.input.positives) as z:
        positives = (z["image"].astype(np.float32), z["text"].astype(np.float32) if "text" in z else None)
    w, b = train_pool_classifier(scorer["method"], pool, positives, scorer)
    np.savez(snakemake.output[0], w=w, b=np.float32(b))
    log.info(
        "%s: %d positives against %d pool samples; |w| = %.4f, b = %.4f",
        snakemake.wildcards.scorer,
        len(positives[0]),
        len(pool[0]),
        float(np.linalg.norm(w)),
        b,
    )
