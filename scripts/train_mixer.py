import json

import torch

from curate.flyt import FlytHParams, mixing_weights, read_templates, save_head, train_pool_mixer
from curate.logs import log_to
from curate.selection import eflyt_inputs, standardised_pool_scores
from curate.shards import shard_paths
from curate.workflow import chunk_files

with log_to(snakemake.log[0]) as log:
    torch.set_num_threads(snakemake.threads)
    fusion = snakemake.params.fusion
    if fusion["method"] == "eflyt":
        uids, head_inputs = eflyt_inputs(list(snakemake.input.embeddings))
    else:
        with open(snakemake.input.stats) as stream:
            stats = json.load(stream)
        files = chunk_files(snakemake.input.scores, len(fusion["scorers"]))
        uids, head_inputs = standardised_pool_scores(files, stats, snakemake.params.columns)
    tars = [path for chunk_dir in snakemake.input.pool for path in shard_paths(chunk_dir)]
    hparams = FlytHParams(**snakemake.params.hparams)
    result = train_pool_mixer(
        f"local-dir:{snakemake.input.reference}",
        tars,
        uids,
        head_inputs,
        snakemake.input.downstream,
        read_templates(snakemake.input.templates),
        hparams,
        seed=fusion.get("seed", 0),
        zero_init=fusion.get("zero_init", False),
        head="glu" if fusion["method"] == "eflyt" else "mixing",
        hidden=fusion.get("hidden", 1024),
        log=lambda step, info: log.info("step %d: %s", step, {k: v for k, v in info.items() if k != "step"}),
    )
    summary = {"tau_ds": result.tau_ds, "hparams": hparams.to_dict(), "history": result.history}
    meta = {"scorers": fusion["scorers"]}
    if fusion["method"] == "mflyt":
        summary["weights"] = meta["weights"] = dict(zip(fusion["scorers"], mixing_weights(result.head).tolist()))
        log.info("M-FLYT weights: %s", summary["weights"])
    save_head(snakemake.output.mixer, result.head, meta)
    with open(snakemake.output.summary, "w") as stream:
        json.dump(summary, stream, indent=2, default=float)
