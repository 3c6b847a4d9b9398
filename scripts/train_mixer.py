import json
from pathlib import Path

import torch

from curate.data.datasets import labelled_size, read_classes
from curate.data.integrity import read_json
from curate.data.scorefiles import check_score_files, load_embeddings
from curate.data.shards import shard_paths
from curate.devices import job_device
from curate.scoring.clip import CONFIG_NAME
from curate.selection.flyt import (
    DownstreamSet,
    FlytHParams,
    UpstreamChunk,
    mixing_weights,
    save_head,
    train_pool_mixer,
)
from curate.selection.fusion import FUSIONS
from curate.selection.pool_fusion import head_inputs, split_chunk_files
from curate.workflow.job import job


def score_rows(fusion, stats, files, columns):
    return lambda: head_inputs(fusion, stats, [files], columns)


def embedded_uids(path):
    return lambda: (load_embeddings(path)[0], None)


with job(snakemake) as log:
    torch.set_num_threads(snakemake.threads)
    fusion = snakemake.params.fusion
    method = FUSIONS.of(fusion)
    stats = read_json(snakemake.input.stats, "fusion statistics (json)")
    check_score_files(snakemake.input.scores, snakemake.params.contracts)  # one contract per scorer
    chunk_files = split_chunk_files(snakemake.input.scores, len(fusion["scorers"]))
    if method.head_input == "embeddings":  # E-FLYT: the scored uids; features from each batch
        rows = [embedded_uids(path) for path in snakemake.input.embeddings]
    else:
        rows = [score_rows(fusion, stats, files, snakemake.params.columns) for files in chunk_files]
    upstream = [UpstreamChunk(shard_paths(chunk), r) for chunk, r in zip(snakemake.input.pool, rows)]
    members = snakemake.params.downstream
    downstream = []
    for member in members:
        classnames, templates = read_classes(member["classes"])
        size = labelled_size(member["entry"], member["folder"]) if len(members) > 1 else 0
        downstream.append(DownstreamSet(member["entry"], member["folder"], classnames, templates, size))
        log.info("downstream set %s: %d classes%s", member["name"], len(classnames), f", {size} samples" * bool(size))
    hparams = FlytHParams(**fusion["hparams"])
    extractor = f"local-dir:{snakemake.input.extractor}" if "extractor" in snakemake.input.keys() else None
    result = train_pool_mixer(
        f"local-dir:{snakemake.input.reference}",
        upstream,
        downstream,
        hparams,
        seed=fusion["seed"],
        head=method.head,
        balanced=fusion["downstream"]["balanced"],
        extractor=extractor,
        **{key: fusion[key] for key in ("zero_init", "hidden") if key in fusion},
        device=job_device(snakemake),
        log=lambda step, info: log.info("step %d: %s", step, {k: v for k, v in info.items() if k != "step"}),
    )
    summary = {"tau_ds": result.tau_ds, "hparams": hparams.to_dict(), "history": result.history}
    meta = {"scorers": fusion["scorers"]}
    if method.head == "mixing":
        summary["weights"] = meta["weights"] = dict(zip(fusion["scorers"], mixing_weights(result.head).tolist()))
        log.info("M-FLYT weights: %s", summary["weights"])
    trained_extractor = None
    if result.extractor is not None:  # E-FLYT's extractor, trained with the head: saved with it
        config = json.loads((Path(snakemake.input.extractor) / CONFIG_NAME).read_text())
        trained_extractor = (config, result.extractor)
    save_head(snakemake.output.mixer, result.head, meta, extractor=trained_extractor)
    with open(snakemake.output.summary, "w") as stream:
        json.dump(summary, stream, indent=2, default=float)
