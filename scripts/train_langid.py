from curate.scoring.langid import accuracy_english, synthetic_langid_corpus, train_langid
from curate.workflow.job import job

with job(snakemake) as log:
    entry = snakemake.params.langid
    model = train_langid(snakemake.output[0], seed=entry["seed"], n_per_language=entry["n_per_language"])
    held_out = synthetic_langid_corpus(entry["seed"], n_per_language=200, split=1)
    log.info(
        "language detector %s: English accuracy on held-out captions %.4f",
        snakemake.wildcards.langid,
        accuracy_english(model, held_out),
    )
