"""CLIP training with per-sample loss weights (MoS sample weighting, docs/algorithms.md §5), the
``trainer: weighted_clip`` recipes (``mos-clip`` and its tiny analogue).

open_clip_train has no per-sample weights, so this is a small seeded training loop around
open_clip's own model, transforms and tokenizer and `curate.selection.flyt.weighted_clip_loss`:

- data: the reshard's webdataset tars (``.jpg``, ``.txt``, ``.json``); a sample's ``.json`` field
  ``weight`` (`curate.data.reshard.WEIGHT_KEY`) is its loss weight, 1 where absent (filtering and
  re-captioning subsets train unweighted). Each epoch is one pass over the subset: the shards in
  a seeded order, dealt to the DataLoader workers, each through a seeded shuffle buffer, cut into
  full ``batch_size`` batches (`ReshardBatches`; partial batches are dropped, as open_clip_train
  does). Steps are ``epochs * (samples // batch_size)``.
- loss: per batch the weights are normalised to sum to 1 and given to `weighted_clip_loss`;
  uniform weights give open_clip's CLIP loss exactly, a zero weight removes the sample from the
  batch (its terms and its place in every denominator). A batch whose weights are all zero is
  skipped (no step). The MoS supplement gives only "loss weight = normalised score"; this is the
  weighted CLIP loss that keeps both properties.
- optimiser: AdamW (beta1, beta2, eps, weight decay ``wd`` on matrices only, as open_clip_train:
  no decay on gains, biases, embeddings' 1-d params and ``logit_scale``); learning rate linear
  warm-up over ``warmup_epochs`` epochs of steps, then cosine to 0; ``logit_scale`` clamped to
  [0, ln 100] after each step (open_clip_train).
- deterministic: torch seeded from ``seed`` (model init, augmentation), the data order from
  (seed, epoch); the result is exported as an open_clip model folder (`curate.scoring.clip`).
- resumable: with a ``scratch`` folder (the workflow's ``train_scratch``) the loop saves a
  checkpoint at the end of every epoch and every ``checkpoint_every`` steps (model, optimiser,
  counters, losses so far, the random state; `curate.training.resume`); started again, it loads
  the latest, replays that epoch's data order up to the batch it stopped after, restores the
  random state and goes on: the same weights as an uninterrupted run.
"""

from __future__ import annotations

import json
import logging
import math
import random
from pathlib import Path

import numpy as np
import torch

from curate.training.loop import decode_rgb, lr_at, read_samples
from curate.training.losses import weighted_clip_loss
from curate.training.resume import (
    Checkpoints,
    finish_scratch,
    prepare_scratch,
    reshard_fingerprint,
    rng_state,
    set_rng_state,
)
from curate.training.trainers import complete_recipe

log = logging.getLogger(__name__)


def batch_loss(model, images: torch.Tensor, texts: torch.Tensor, weights: torch.Tensor) -> torch.Tensor | None:
    """The weighted CLIP loss of one batch (weights normalised to sum 1); None if all are 0."""
    total = weights.sum()
    if not total > 0:
        return None
    out = model(images, texts)
    if not isinstance(out, dict):
        out = dict(zip(("image_features", "text_features", "logit_scale"), out))
    image_features, text_features, logit_scale = out["image_features"], out["text_features"], out["logit_scale"]
    # open_clip returns exp(logit_scale); weighted_clip_loss takes the log parameter
    return weighted_clip_loss(image_features, text_features, torch.log(logit_scale), weights / total)


def _param_groups(model, wd: float) -> list[dict]:
    def exclude(name, p):
        return p.ndim < 2 or "bn" in name or "ln" in name or "bias" in name or "logit_scale" in name

    named = list(model.named_parameters())
    return [
        {"params": [p for n, p in named if exclude(n, p) and p.requires_grad], "weight_decay": 0.0},
        {"params": [p for n, p in named if not exclude(n, p) and p.requires_grad], "weight_decay": wd},
    ]


class ReshardBatches(torch.utils.data.IterableDataset):
    """One epoch of training batches ``(images, tokens, weights)`` from reshard tars.

    The shards are put in a seeded order and dealt to the DataLoader's workers round-robin
    (worker ``i`` of ``W`` reads shards ``i, i + W, ...`` through its own seeded shuffle buffer);
    each worker yields only full batches. The DataLoader takes batches from the workers in turn,
    so the epoch's batches depend on (seed, epoch, number of workers) only.
    """

    def __init__(
        self, shards, seed: int, epoch: int, batch_size: int, preprocess, tokenizer, shuffle_buffer: int = 1000
    ):
        super().__init__()
        self.shards, self.seed, self.epoch = list(shards), int(seed), int(epoch)
        self.batch_size, self.preprocess, self.tokenizer = int(batch_size), preprocess, tokenizer
        self.shuffle_buffer = int(shuffle_buffer)

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        order = list(self.shards)
        random.Random(f"weighted-clip-shards-{self.seed}-{self.epoch}").shuffle(order)
        mine = order[worker::workers]
        batch = []
        for data, text, weight in read_samples(
            mine, order_seed=(self.seed * 100_003 + self.epoch) * 1009 + worker, shuffle_buffer=self.shuffle_buffer
        ):
            image = decode_rgb(data)
            if image is None:  # an image that does not decode is skipped, as open_clip's loader does
                continue
            batch.append((image, text, weight))
            if len(batch) == self.batch_size:
                images = torch.stack([self.preprocess(im) for im, _, _ in batch])
                tokens = self.tokenizer([t for _, t, _ in batch])
                weights = torch.tensor([w for _, _, w in batch], dtype=torch.float32)
                yield images, tokens, weights
                batch = []


def train_weighted_clip(
    recipe: dict, shard_dir, out_dir, seed: int, threads: int = 1, workers: int | None = None, scratch=None
) -> dict:
    """Train `recipe["model"]` from scratch on the reshard in `shard_dir`, export it to `out_dir`
    (an open_clip model folder that `curate.scoring.clip.load_model` reads). Returns a summary.
    With `scratch`, checkpoints go there and a rerun resumes from the latest (module doc).

    Optional recipe keys: ``device`` (cpu), ``precision`` (``fp32``, or ``amp_bf16``: autocast to
    bfloat16 on CUDA), ``workers`` (DataLoader workers decoding images, default 0),
    ``shuffle_buffer`` (1000)."""
    import open_clip

    from curate.data.reshard import reshard_contents
    from curate.scoring.clip import _register_archs, export_local_dir

    recipe = complete_recipe(recipe)
    shards, meta = reshard_contents(shard_dir)
    n_samples = int(meta["written"])
    batch_size = int(recipe["batch_size"])
    steps_per_epoch = n_samples // batch_size
    if steps_per_epoch < 1:
        raise ValueError(f"{n_samples} samples do not fill one batch of {batch_size}")
    epochs = int(recipe["epochs"])
    total_steps = steps_per_epoch * epochs
    warmup_steps = int(round(float(recipe["warmup_epochs"]) * steps_per_epoch))
    device = torch.device(recipe["device"])
    precision = recipe["precision"]
    if precision not in ("fp32", "amp_bf16"):
        raise ValueError(f"weighted_clip precision must be fp32 or amp_bf16, got {precision!r}")
    workers = int(recipe["workers"] if workers is None else workers)
    torch.set_num_threads(int(threads))
    torch.manual_seed(int(seed))
    np.random.seed(int(seed) % 2**32)
    _register_archs()
    model, preprocess, _ = open_clip.create_model_and_transforms(str(recipe["model"]), device=device, output_dict=True)
    tokenizer = open_clip.get_tokenizer(str(recipe["model"]))
    model.train()
    opt = torch.optim.AdamW(
        _param_groups(model, float(recipe["wd"])),
        lr=float(recipe["lr"]),
        betas=(float(recipe["beta1"]), float(recipe["beta2"])),
        eps=float(recipe["eps"]),
    )
    step, skipped, losses = 0, 0, []
    if scratch is not None:
        scratch, _ = prepare_scratch(
            scratch, {"recipe": recipe, "seed": int(seed), "workers": workers, "data": reshard_fingerprint(shard_dir)}
        )
    checkpoints = Checkpoints(scratch, recipe["checkpoint_every"])
    start_epoch, skip, rng = 0, 0, None
    state = checkpoints.load()
    if state is not None:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        step, skipped, losses = state["step"], state["skipped"], state["losses"]
        start_epoch, skip, rng = state["epoch"], state["batches_done"], state["rng"]

    def save(epoch, batches_done):
        checkpoints.save(
            {
                "model": model.state_dict(),
                "optimizer": opt.state_dict(),
                "step": step,
                "skipped": skipped,
                "losses": losses,
                "epoch": epoch,
                "batches_done": batches_done,
                "rng": rng_state(),
            }
        )

    for epoch in range(start_epoch, epochs):
        dataset = ReshardBatches(
            shards, seed, epoch, batch_size, preprocess, tokenizer, shuffle_buffer=int(recipe["shuffle_buffer"])
        )
        loader = torch.utils.data.DataLoader(
            dataset,
            batch_size=None,
            num_workers=workers,
            generator=torch.Generator().manual_seed(int(seed) * 1_000 + epoch),
            persistent_workers=False,
            pin_memory=device.type == "cuda",
        )
        batches = iter(loader)
        batches_done = 0
        for _ in range(skip):  # a resumed epoch: its data order up to where the checkpoint was taken
            next(batches, None)
            batches_done += 1
        if rng is not None:  # and the random state it was taken with
            set_rng_state(rng)
            rng, skip = None, 0
        for images, texts, weights in batches:
            if step >= total_steps:
                break
            images, texts, weights = images.to(device), texts.to(device), weights.to(device)
            for group in opt.param_groups:
                group["lr"] = lr_at(step, total_steps, warmup_steps, float(recipe["lr"]))
            with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=precision == "amp_bf16"):
                loss = batch_loss(model, images, texts, weights)
            step += 1
            batches_done += 1
            if loss is None:
                skipped += 1
            else:
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                with torch.no_grad():
                    model.logit_scale.clamp_(0, math.log(100))
                losses.append(float(loss.detach()))
                if step % 50 == 0 or step == total_steps:
                    log.info(
                        "epoch %d step %d/%d loss %.4f lr %.2e",
                        epoch,
                        step,
                        total_steps,
                        losses[-1],
                        opt.param_groups[0]["lr"],
                    )
            if checkpoints.due(step, end_of_epoch=False) and step < total_steps:
                save(epoch, batches_done)
        if checkpoints.due(step, end_of_epoch=True) and epoch + 1 < epochs:
            save(epoch + 1, 0)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    checkpoint = out_dir / "_checkpoint.pt"
    torch.save({"state_dict": model.state_dict()}, checkpoint)
    export_local_dir(checkpoint, str(recipe["model"]), out_dir)
    checkpoint.unlink()
    summary = {
        "samples": n_samples,
        "steps": step,
        "skipped_steps": skipped,
        "epochs": epochs,
        "workers": workers,
        "first_loss": losses[0] if losses else None,
        "final_loss": losses[-1] if losses else None,
    }
    (out_dir / "train_summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    finish_scratch(scratch)
    return summary
