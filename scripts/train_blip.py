from pathlib import Path

from curate.blip import train_blip
from curate.captioning import iter_webdataset_pairs
from curate.logs import log_to

with log_to(snakemake.log[0]) as log:
    recipe = snakemake.params.recipe
    shards = sorted(Path(snakemake.input.curated_set).glob("*.tar"))
    captions = [text for _, text in iter_webdataset_pairs(shards)]
    summary = train_blip(
        dict(recipe, arch={"vocab_size": recipe["tokenizer"].get("vocab_size", 400)}),
        snakemake.input.reshard,
        snakemake.output[0],
        seed=snakemake.params.seed,
        tokenizer_texts=captions,
        threads=snakemake.threads,
    )
    log.info("trained: %s", summary)
