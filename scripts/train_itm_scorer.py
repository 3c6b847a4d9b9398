import json
import shutil
from pathlib import Path

from curate.data.shards import iter_webdataset_pairs, shard_paths
from curate.training.blip import load_blip, train_blip
from curate.workflow.job import job

with job(snakemake) as log:
    scorer, recipe = snakemake.params.scorer, snakemake.params.recipe
    out = Path(snakemake.output[0])
    scratch = out / "_train"
    if scratch.exists():
        shutil.rmtree(scratch)
    # the curated set as the trainer reads a reshard: its tars and how many samples they hold
    shards = shard_paths(snakemake.input.curated_set)
    captions = [text for _, text in iter_webdataset_pairs(shards)]
    view = scratch / "data"
    view.mkdir(parents=True)
    for shard in shards:
        (view / Path(shard).name).symlink_to(Path(shard).resolve())
    (view / "meta.json").write_text(json.dumps({"written": len(captions)}) + "\n")
    summary = train_blip(
        recipe, view, scratch / "blip", seed=scorer["seed"], tokenizer_texts=captions, threads=snakemake.threads
    )
    # the ITM scorer loads a transformers BLIP retrieval folder with its processor (curate.scoring.itm)
    model, processor = load_blip(scratch / "blip")
    model.retrieval.save_pretrained(out)
    processor.save_pretrained(out)
    (out / "train_summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    shutil.rmtree(scratch)
    log.info("ITM scorer %s: %s", snakemake.wildcards.scorer, summary)
