import numpy as np

from curate.captioning import chunk_seed
from curate.embedding_scores import embedding_score_frame
from curate.logs import log_to
from curate.score import load_embeddings, save_scores

with log_to(snakemake.log[0]) as log:
    scorer = snakemake.params.scorer
    uids, image, text = load_embeddings(snakemake.input.embeddings)
    target = classifier = None
    if "target" in snakemake.input.keys():
        with np.load(snakemake.input.target) as z:
            target = z["image"].astype(np.float32)
    if "classifier" in snakemake.input.keys():
        with np.load(snakemake.input.classifier) as z:
            classifier = (z["w"], float(z["b"]))
    frame = embedding_score_frame(
        scorer["method"],
        uids,
        image,
        text,
        scorer,
        target,
        seed=chunk_seed(scorer.get("seed", 0), snakemake.wildcards.chunk),
        classifier=classifier,
    )
    save_scores(frame, snakemake.output.scores, [scorer["method"]])
    log.info("%s of %d samples of chunk %s", scorer["method"], len(frame), snakemake.wildcards.chunk)
