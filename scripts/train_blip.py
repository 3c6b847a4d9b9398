from pathlib import Path

from curate.data.shards import iter_webdataset_pairs
from curate.training.blip import train_blip
from curate.workflow.job import job

with job(snakemake) as log:
    recipe = snakemake.params.recipe
    shards = sorted(Path(snakemake.input.curated_set).glob("*.tar"))
    captions = [text for _, text in iter_webdataset_pairs(shards)]
    summary = train_blip(
        recipe,
        snakemake.input.reshard,
        snakemake.output[0],
        seed=recipe["seed"],
        tokenizer_texts=captions,
        threads=snakemake.threads,
        scratch=snakemake.params.scratch,
    )
    log.info("trained: %s", summary)
