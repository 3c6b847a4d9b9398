import json

import torch

from curate.data.integrity import read_json
from curate.data.scorefiles import check_score_files
from curate.data.shards import shard_paths
from curate.selection.flyt import FlytHParams, mixing_weights, read_templates, save_head, train_pool_mixer
from curate.selection.fusion import FUSIONS
from curate.selection.pool_fusion import head_inputs, split_chunk_files
from curate.workflow.job import job

with job(snakemake) as log:
    torch.set_num_threads(snakemake.threads)
    fusion = snakemake.params.fusion
    method = FUSIONS.of(fusion)
    stats = read_json(snakemake.input.stats, "fusion statistics (json)")
    check_score_files(snakemake.input.scores, snakemake.params.contracts)  # one contract per scorer
    uids, inputs = head_inputs(
        fusion,
        stats,
        split_chunk_files(snakemake.input.scores, len(fusion["scorers"])),
        snakemake.params.columns,
        list(snakemake.input.embeddings) if "embeddings" in snakemake.input.keys() else None,
    )
    tars = [path for chunk_dir in snakemake.input.pool for path in shard_paths(chunk_dir)]
    hparams = FlytHParams(**fusion["hparams"])
    result = train_pool_mixer(
        f"local-dir:{snakemake.input.reference}",
        tars,
        uids,
        inputs,
        snakemake.input.downstream,
        read_templates(snakemake.input.templates),
        hparams,
        seed=fusion["seed"],
        head=method.head,
        **{key: fusion[key] for key in ("zero_init", "hidden") if key in fusion},
        extractor=f"local-dir:{snakemake.input.extractor}" if "extractor" in snakemake.input.keys() else None,
        log=lambda step, info: log.info("step %d: %s", step, {k: v for k, v in info.items() if k != "step"}),
    )
    summary = {"tau_ds": result.tau_ds, "hparams": hparams.to_dict(), "history": result.history}
    meta = {"scorers": fusion["scorers"]}
    if method.head == "mixing":
        summary["weights"] = meta["weights"] = dict(zip(fusion["scorers"], mixing_weights(result.head).tolist()))
        log.info("M-FLYT weights: %s", summary["weights"])
    save_head(snakemake.output.mixer, result.head, meta)
    with open(snakemake.output.summary, "w") as stream:
        json.dump(summary, stream, indent=2, default=float)
