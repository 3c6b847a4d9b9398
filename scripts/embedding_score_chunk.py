import numpy as np

from curate.data.chunks import chunk_seed
from curate.data.scorefiles import finite_scores, load_embeddings, save_scores
from curate.scoring.embedding_scores import embedding_score_frame, load_flyt_scoring_head, load_linear_classifier
from curate.scoring.pretrained import fetched_file
from curate.workflow.job import job

with job(snakemake) as log:
    scorer = snakemake.params.scorer
    uids, image, text = load_embeddings(snakemake.input.embeddings)
    target = classifier = head = None
    if "target" in snakemake.input.keys():
        with np.load(snakemake.input.target) as z:
            target = z["image"].astype(np.float32)
    if "classifier" in snakemake.input.keys():
        with np.load(snakemake.input.classifier) as z:
            classifier = (z["w"], float(z["b"]))
    if scorer["method"] == "linear_probe":  # a released classifier (FLYT's IN1K / CC2M ones)
        classifier = load_linear_classifier(fetched_file(snakemake.input.model))
    if scorer["method"] == "flyt_head":  # FLYT's released E-FLYT scoring model
        head = load_flyt_scoring_head(fetched_file(snakemake.input.model))
    frame = embedding_score_frame(
        scorer["method"],
        uids,
        image,
        text,
        scorer,
        target,
        seed=chunk_seed(scorer["seed"], snakemake.wildcards.chunk),
        classifier=classifier,
        head=head,
    )
    frame, skipped = finite_scores(frame, [scorer["method"]], snakemake.output.scores)
    save_scores(frame, snakemake.output.scores, contract=snakemake.params.contract)
    log.info(
        "%s of %d samples of chunk %s; skipped (not finite): %s",
        scorer["method"],
        len(frame),
        snakemake.wildcards.chunk,
        skipped,
    )
