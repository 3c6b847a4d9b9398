"""Resuming a training where it stopped: its scratch folder, its checkpoints, its random state.

A training job's scratch folder (``scratch/train/{pool}/{selection}/{recipe}``, the path template
``train_scratch``) lies outside the model folder the rule declares, so neither a failed attempt,
nor Snakemake's retries, nor SLURM's requeue of a preempted job deletes it (Snakemake removes a
job's declared outputs before it runs and after it fails). It holds what the trainer needs to go
on: open_clip_train's ``epoch_latest.pt`` (``--save-most-recent --resume latest``, as DataComp's
``train.py``), or curate's own loops' ``checkpoint.pt``.

- `prepare_scratch` keeps a scratch folder only for the same training: its ``inputs.json`` records
  a fingerprint of what the training reads (the recipe, the reshard's shards and ``meta.json``);
  a folder made for other inputs (the subset was selected again, the recipe changed) is emptied
  first, so a checkpoint is never resumed into another training.
- `Checkpoints` saves a loop's state atomically (a temporary file, then a rename: a kill during a
  save leaves the previous checkpoint) at the end of every epoch and every ``every`` steps, and
  loads the latest. The state holds the model, the optimiser, the counters and the random state
  of torch, numpy and Python (`rng_state`): a loop that resumes at a batch boundary with the same
  data order gives the weights an uninterrupted run gives.
- `finish_scratch` removes the folder once the model is exported.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import shutil
from pathlib import Path

log = logging.getLogger(__name__)

INPUTS_RECORD = "inputs.json"
CHECKPOINT = "checkpoint.pt"

__all__ = [
    "INPUTS_RECORD",
    "CHECKPOINT",
    "reshard_fingerprint",
    "prepare_scratch",
    "finish_scratch",
    "rng_state",
    "set_rng_state",
    "Checkpoints",
]


def reshard_fingerprint(shard_dir) -> dict:
    """What a training reads from a reshard: each tar's name and size, and ``meta.json``'s sha256
    (it counts every sample written; the reshard is rewritten whole when its subset changes)."""
    shard_dir = Path(shard_dir)
    meta = shard_dir / "meta.json"
    return {
        "shards": [[p.name, p.stat().st_size] for p in sorted(shard_dir.glob("*.tar"))],
        "meta": hashlib.sha256(meta.read_bytes()).hexdigest() if meta.is_file() else None,
    }


def _canonical(fingerprint: dict) -> str:
    return json.dumps(fingerprint, sort_keys=True, default=str)


def prepare_scratch(scratch, fingerprint: dict) -> tuple[Path, bool]:
    """The scratch folder of one training, made if absent; emptied when it was made for another
    fingerprint. Returns ``(folder, kept)``: ``kept`` is True when an earlier attempt of the same
    training left it (its checkpoints are then resumed)."""
    scratch = Path(scratch)
    record = scratch / INPUTS_RECORD
    kept = False
    if scratch.exists():
        previous = record.read_text() if record.is_file() else None
        if previous is not None and previous == _canonical(fingerprint):
            kept = True
        else:
            why = "it has no inputs record" if previous is None else "it was made for other inputs"
            log.info("scratch folder %s: emptied, %s", scratch, why)
            shutil.rmtree(scratch)
    if not kept:
        scratch.mkdir(parents=True, exist_ok=True)
        tmp = record.with_name(f".{record.name}.tmp")
        tmp.write_text(_canonical(fingerprint))
        os.replace(tmp, record)
    return scratch, kept


def finish_scratch(scratch) -> None:
    """Remove a training's scratch folder once its model is exported."""
    if scratch is not None and Path(scratch).exists():
        shutil.rmtree(scratch)


def rng_state() -> dict:
    """The random state of torch (CPU and CUDA), numpy's global generator and Python's ``random``,
    as tensors, lists and numbers only (so ``torch.load(..., weights_only=True)`` reads a
    checkpoint that holds it)."""
    import numpy as np
    import torch

    name, keys, pos, has_gauss, gauss = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {"name": str(name), "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos)}
        | {"has_gauss": int(has_gauss), "gauss": float(gauss)},
        "python": [int(version), [int(x) for x in internal], gauss_next],
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = list(torch.cuda.get_rng_state_all())
    return state


def set_rng_state(state: dict) -> None:
    """Restore what `rng_state` saved."""
    import numpy as np
    import torch

    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state((n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class Checkpoints:
    """A loop's checkpoints in its scratch folder (none without one): `due` says when to save (the
    end of every epoch, and every ``every`` steps when ``every`` > 0), `save` writes atomically,
    `load` returns the latest state or None."""

    def __init__(self, scratch, every: int = 0):
        self.path = Path(scratch) / CHECKPOINT if scratch is not None else None
        self.every = int(every or 0)

    def due(self, step: int, end_of_epoch: bool) -> bool:
        if self.path is None:
            return False
        return end_of_epoch or (self.every > 0 and step % self.every == 0)

    def save(self, state: dict) -> None:
        import torch

        if self.path is None:
            return
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        torch.save(state, tmp)
        os.replace(tmp, self.path)
        log.info("checkpoint: epoch %s, step %s (%s)", state.get("epoch"), state.get("step"), self.path)

    def load(self) -> dict | None:
        import torch

        if self.path is None or not self.path.is_file():
            return None
        state = torch.load(self.path, map_location="cpu", weights_only=False)
        log.info(
            "resuming from checkpoint %s: epoch %s, %s batches of it done, step %s",
            self.path,
            state.get("epoch"),
            state.get("batches_done"),
            state.get("step"),
        )
        return state
