"""Several models over one chunk of pool shards in ONE pass: each image read and decoded once (by
the loader's workers, `curate.data.loader`), then each model's own preprocessing and tokenisation
(shared where two models' are the same), each model run on every batch on the job's device.

A model of a pass (`PassModel`) says what it needs (`curate.data.loader.PoolInputs`, keyed so
that equal transforms share a key: `transform_key`) and how it turns a batch into per-sample
outputs (``run``: field -> array or list, one entry per sample). `run_pass` returns every
model's outputs over the kept samples, in reading order, with the chunk's `SkipReport`.
"""

from __future__ import annotations

import contextlib
from typing import Protocol

import numpy as np

from curate.data.loader import PoolBatch, PoolInputs, iter_pool_input_batches
from curate.data.shards import SkipReport


class PassModel(Protocol):
    name: str
    inputs: PoolInputs

    def run(self, batch: PoolBatch) -> dict: ...


def transform_key(prefix: str, transform) -> str:
    """A key that two equal transforms share: their ``repr`` (torchvision's Compose lists every
    step with its size, interpolation, mean and std) or, for a tokenizer, its class and plain
    settings."""
    if hasattr(transform, "transforms"):
        return f"{prefix}:{transform!r}"
    settings = {k: v for k, v in sorted(vars(transform).items()) if isinstance(v, (int, float, str, bool, type(None)))}
    return f"{prefix}:{type(transform).__module__}.{type(transform).__qualname__}:{settings}"


def merge_inputs(models) -> PoolInputs:
    merged = PoolInputs()
    for model in models:
        merged.images.update(model.inputs.images)
        merged.texts.update(model.inputs.texts)
        merged.collate.update(model.inputs.collate)
    return merged


def run_pass(
    models: list,
    shard_paths,
    batch_size: int,
    workers: int = 0,
    device="cpu",
    autocast=None,
    desc: str = "one pass",
) -> tuple[list[str], list[str], dict, SkipReport]:
    """Every model's outputs over the kept samples of ``shard_paths``: ``(uids, texts, {model name:
    {field: array or list}}, report)``. ``autocast``: a function returning the context each model
    runs in (`curate.devices.inference_autocast`), default none."""
    import torch

    report = SkipReport()
    uids: list[str] = []
    texts: list[str] = []
    outputs: dict = {m.name: {} for m in models}
    context = autocast or contextlib.nullcontext
    batches = iter_pool_input_batches(
        shard_paths, report, merge_inputs(models), batch_size, workers=workers, device=device, desc=desc
    )
    with torch.inference_mode():
        for batch in batches:
            uids.extend(batch.uids)
            texts.extend(batch.texts)
            for model in models:
                with context():
                    result = model.run(batch)
                for field, value in result.items():
                    outputs[model.name].setdefault(field, []).append(value)
    joined = {}
    for name, fields in outputs.items():
        joined[name] = {f: _join(parts) for f, parts in fields.items()}
    return uids, texts, joined, report


def _join(parts: list):
    if parts and isinstance(parts[0], np.ndarray):
        return np.concatenate(parts)
    return [x for part in parts for x in part]
