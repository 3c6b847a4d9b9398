"""DataComp's fixed training recipes per scale (docs/algorithms.md §3), as DataComp's
``scale_configs.py`` holds them: one dict, read by the workflow's config and the trainers.

Sources, all in the DataComp repository (github.com/mlfoundations/datacomp):

- ``scale_configs.py``: model, global batch, lr, warmup, samples seen (= pool size) and beta2
  (``None``, i.e. open_clip's default, except 0.95 at xlarge) per scale.
- ``train.py``: what it hands to open_clip's ``main``. It never passes ``--wd``, ``--beta1``,
  ``--eps`` or ``--lr-scheduler``, so open_clip's defaults apply; for ViT models they are wd 0.2,
  beta1 0.9, beta2 0.98, eps 1e-6, cosine schedule (``open_clip_train.params``: the CLIP paper's
  values, checked against open_clip_train 3.3.0). It always passes ``--dataset-resampled``,
  ``--grad-checkpointing``, ``--local-loss``, ``--gather-with-grad`` and ``--ddp-static-graph``
  (at every scale, not only large/xlarge), ``--precision amp`` by default, ``--epochs
  num_checkpoints`` with ``--train-num-samples samples_seen // num_checkpoints``, and a per-GPU
  batch of ``global batch // (world_size * accum_freq)`` (``accum_freq`` 1 by default).
"""

from __future__ import annotations

DATACOMP_SCALES = ("small", "medium", "large", "xlarge")

#: scale -> (samples seen = pool size, model, global batch, lr, warmup steps, beta2);
#: DataComp's scale_configs.py (beta2 None there means open_clip's ViT default 0.98).
_SCALE_CONFIGS = {
    "small": (12_800_000, "ViT-B-32", 4096, 5e-4, 500, 0.98),
    "medium": (128_000_000, "ViT-B-32", 4096, 5e-4, 500, 0.98),
    "large": (1_280_000_000, "ViT-B-16", 8192, 5e-4, 500, 0.98),
    "xlarge": (12_800_000_000, "ViT-L-14", 90112, 1e-3, 10000, 0.95),
}

#: open_clip_train's defaults for ViT models, which DataComp's train.py relies on.
OPEN_CLIP_VIT_DEFAULTS = {"wd": 0.2, "beta1": 0.9, "eps": 1e-6, "lr_scheduler": "cosine"}

#: Epochs ("checkpoints"): DataComp's train.py default ``--num_checkpoints 5`` (what the README's
#: ``torchrun train.py --scale ...`` runs; its example slurm_train.sh sets 8). The cosine schedule
#: spans all epochs, so the count changes only the checkpoint cadence and the step rounding: with
#: 5, samples_seen / 5 is a whole number of global batches at small, medium and large (625, 6250
#: and 31250 steps an epoch), so the run takes exactly samples_seen / batch steps (xlarge rounds
#: up by under one batch an epoch whatever the count).
DEFAULT_EPOCHS = 5

#: Processes (GPUs) the global batch is split over. DataComp fixes only the global batch (its
#: train.py reads the world size from torchrun/srun, and the paper leaves the GPU count to the
#: participant); 8 = one 8-GPU node is this workflow's assumption. It divides every global batch
#: (per-GPU 512, 512, 1024, 11264). Pass the cluster's own count to `datacomp_recipe`; the
#: optimisation is the same whatever it is (``--local-loss --gather-with-grad`` computes the full
#: global contrastive loss).
DEFAULT_WORLD_SIZE = 8

#: DataComp's train.py precision default (fp16 autocast); its slurm_train.sh notes
#: ``amp_bfloat16`` "if supported by your hardware".
DEFAULT_PRECISION = "amp"

#: open_clip_train flags DataComp's train.py passes at every scale that clip_train_argv has no
#: recipe key for. None changes the optimisation: gradient checkpointing trades compute for memory,
#: local loss + gather with grad is the memory-lean form of the same global loss, the static graph
#: is a DDP speed-up. (``--save-most-recent --resume latest`` are passed to every open_clip recipe
#: by `curate.training.clip.train_clip`, as DataComp's train.py passes them: a rerun resumes.)
DATACOMP_EXTRA_ARGS = ("--grad-checkpointing", "--local-loss", "--gather-with-grad", "--ddp-static-graph")


def datacomp_recipe(
    scale: str,
    world_size: int = DEFAULT_WORLD_SIZE,
    epochs: int = DEFAULT_EPOCHS,
    precision: str = DEFAULT_PRECISION,
    device: str = "cuda",
    grad_checkpointing: bool = True,
) -> dict:
    """The DataComp training recipe of `scale` as a `curate.training.clip.clip_train_argv` recipe.

    `world_size` splits the fixed global batch (it must divide it); `epochs` is DataComp's
    ``num_checkpoints``; `precision` is passed to open_clip (``amp`` as DataComp, ``amp_bf16`` on
    hardware with bf16); `grad_checkpointing` False drops only ``--grad-checkpointing`` (memory,
    not results). Samples are resampled with replacement, so every subset of the pool is trained
    for the same ``samples_seen`` samples.
    """
    if scale not in _SCALE_CONFIGS:
        raise ValueError(f"unknown DataComp scale {scale!r}; expected one of {DATACOMP_SCALES}")
    seen, model, batch, lr, warmup, beta2 = _SCALE_CONFIGS[scale]
    world_size, epochs = int(world_size), int(epochs)
    if world_size < 1 or batch % world_size:
        raise ValueError(f"DataComp {scale}: world_size {world_size} does not divide the global batch {batch}")
    if epochs < 1:
        raise ValueError(f"DataComp {scale}: epochs must be >= 1, got {epochs}")
    extra = [a for a in DATACOMP_EXTRA_ARGS if grad_checkpointing or a != "--grad-checkpointing"]
    return {
        "model": model,
        "samples_seen": seen,
        "epochs": epochs,
        "batch_size": batch,  # global; clip_train_argv passes batch_size // world_size per GPU
        "world_size": world_size,
        "lr": lr,
        "warmup": warmup,
        "wd": OPEN_CLIP_VIT_DEFAULTS["wd"],
        "beta1": OPEN_CLIP_VIT_DEFAULTS["beta1"],
        "beta2": beta2,
        "eps": OPEN_CLIP_VIT_DEFAULTS["eps"],
        "lr_scheduler": OPEN_CLIP_VIT_DEFAULTS["lr_scheduler"],
        "resampled": True,
        "precision": str(precision),
        "device": str(device),
        "accum_freq": 1,
        "log_every_n_steps": 100,
        "extra_args": extra,
    }


#: scale -> recipe with the defaults above (8 processes, 5 epochs, amp, cuda).
DATACOMP_RECIPES = {scale: datacomp_recipe(scale) for scale in DATACOMP_SCALES}
