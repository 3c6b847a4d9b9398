"""What the real BLIP trainer (``trainer: blip``, ``library: lavis``) hands salesforce-lavis.

Pure Python (no LAVIS import), so it is tested in the project's env; `curate.training.lavis_blip` runs in
envs/lavis.yaml and reads what this module writes:

- `run_config`: LAVIS's run config (``Config`` yaml: ``model``, ``datasets``, ``run``) for BLIP
  pretraining with the recipe's numbers: the registered ``weighted_blip_pretrain`` model (LAVIS's
  ``blip_pretrain`` with per-sample loss weights) of ``model_type`` from scratch (ViT from
  ImageNet, BERT-base text, as BLIP pretraining starts), the ``weighted_reshard`` dataset (the
  subset's reshard, with each sample's weight), task ``image_text_pretrain``, schedule
  ``linear_warmup_step_lr`` (lr ``max(min_lr, init_lr * lr_decay_rate ** epoch)`` after a linear
  warm-up), AdamW weight decay ``wd``, the global batch split over ``world_size`` GPUs.
- `reshard_index`: where each sample's image sits in the reshard's tars, with its caption and
  weight, so LAVIS reads the subset as a map-style dataset (epochs, DistributedSampler).
- `torchrun_command`: LAVIS's training launched with torchrun over the recipe's GPUs (on several
  nodes, one torchrun per node under ``srun``: `curate.training.launch`).
- `latest_checkpoint`: the checkpoint a failed or requeued attempt left, which the next resumes.
"""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

from curate.training.trainers import complete_recipe

MODEL_ARCH = "weighted_blip_pretrain"
DATASET_NAME = "weighted_reshard"
IMAGE_EXTS = ("jpg", "jpeg", "png", "webp")


def per_gpu_batch(recipe: dict) -> int:
    recipe = complete_recipe(recipe)
    batch, world = int(recipe["batch_size"]), int(recipe["world_size"])
    if batch % world:
        raise ValueError(f"batch_size {batch} does not split over world_size {world} GPUs")
    return batch // world


def run_config(recipe: dict, shard_dir, out_dir, seed: int, resume=None) -> dict:
    """LAVIS's run config of BLIP pretraining on the reshard in `shard_dir` (outputs in `out_dir`),
    going on from the LAVIS checkpoint `resume` (``checkpoint_<epoch>.pth``: model, optimiser,
    scaler and epoch) when one is given."""
    recipe = complete_recipe(recipe)
    batch = int(recipe["batch_size"])
    queue = int(recipe["queue_size"])
    if queue % batch:
        # LAVIS's _dequeue_and_enqueue asserts queue_size % (global batch) == 0
        raise ValueError(f"queue_size {queue} is not a multiple of the global batch {batch}")
    image_size = int(recipe["image_size"])
    return {
        "model": {
            "arch": MODEL_ARCH,
            "model_type": str(recipe["model_type"]),
            "load_pretrained": False,
            "image_size": image_size,
            "queue_size": queue,
            "alpha": float(recipe["alpha"]),
        },
        "datasets": {
            DATASET_NAME: {
                "data_type": "images",
                "build_info": {"storage": str(Path(shard_dir).resolve())},
                "vis_processor": {"train": {"name": "blip_image_train", "image_size": image_size}},
                "text_processor": {"train": {"name": "blip_caption"}},
            }
        },
        "run": {
            "task": "image_text_pretrain",
            "lr_sched": "linear_warmup_step_lr",
            "init_lr": float(recipe["lr"]),
            "min_lr": float(recipe["min_lr"]),
            "warmup_lr": float(recipe["warmup_lr"]),
            "lr_decay_rate": float(recipe["lr_decay_rate"]),
            "warmup_steps": int(recipe["warmup"]),
            "weight_decay": float(recipe["wd"]),
            "max_epoch": int(recipe["epochs"]),
            "batch_size_train": per_gpu_batch(recipe),
            "batch_size_eval": per_gpu_batch(recipe),
            "num_workers": int(recipe["workers"]),
            "seed": int(seed),
            "output_dir": str(Path(out_dir).resolve()),
            "amp": recipe["precision"] == "amp",
            "resume_ckpt_path": None if resume is None else str(Path(resume).resolve()),
            "evaluate": False,
            "train_splits": ["train"],
            "device": str(recipe["device"]),
            "world_size": int(recipe["world_size"]),
            "dist_url": "env://",
            "distributed": True,
        },
    }


def latest_checkpoint(folder) -> Path | None:
    """The LAVIS checkpoint of the latest epoch under `folder` (LAVIS writes
    ``<output_dir>/<job id>/checkpoint_<epoch>.pth`` after every epoch), or None."""
    found = []
    for path in Path(folder).glob("*/checkpoint_*.pth"):
        epoch = path.stem.removeprefix("checkpoint_")
        if epoch.isdigit():
            found.append((int(epoch), path.stat().st_mtime, path))
    return max(found)[2] if found else None


def dataset_defaults() -> dict:
    """The default config of the ``weighted_reshard`` builder (LAVIS reads one per builder)."""
    return {"datasets": {DATASET_NAME: {"data_type": "images", "build_info": {"storage": None}}}}


def torchrun_command(recipe: dict, cfg_path, rdzv_endpoint: str | None = None) -> list[str]:
    """``torchrun`` of `curate.training.lavis_blip` over ``world_size`` GPUs on ``nodes`` nodes (default 1,
    standalone; more nodes need the job started on each, e.g. under ``srun``, and a rendezvous
    endpoint ``host:port``)."""
    recipe = complete_recipe(recipe)
    world, nodes = int(recipe["world_size"]), int(recipe["nodes"])
    if world % nodes:
        raise ValueError(f"world_size {world} does not split over {nodes} nodes")
    cmd = ["torchrun", f"--nnodes={nodes}", f"--nproc_per_node={world // nodes}"]
    if nodes == 1:
        cmd.append("--standalone")
    else:
        if not rdzv_endpoint:
            raise ValueError(f"{nodes} nodes need a rendezvous endpoint (host:port)")
        cmd += ["--rdzv-backend=c10d", f"--rdzv-endpoint={rdzv_endpoint}"]
    return cmd + ["-m", "curate.training.lavis_blip", "--cfg-path", str(cfg_path)]


def reshard_index(shard_dir) -> list[dict]:
    """Every sample of a reshard that has an image that decodes and a caption (what open_clip's
    loader would train on; a reshard copies every pool sample of the subset as it is):
    ``{"shard", "offset", "size"}`` of its image member, its ``caption`` (the ``.txt``) and
    ``weight`` (the ``.json``'s, 1 where absent)."""
    from curate.data.reshard import WEIGHT_KEY, reshard_contents
    from curate.training.loop import decode_rgb

    shards, _ = reshard_contents(shard_dir)
    index = []
    for shard in shards:
        pending: dict[str, dict] = {}
        with tarfile.open(shard) as tar:
            for member in tar:
                if not member.isfile() or "." not in member.name:
                    continue
                key, ext = member.name.rsplit("/", 1)[-1].split(".", 1)
                entry = pending.setdefault(key, {})
                if ext.lower() in IMAGE_EXTS and "image" not in entry:
                    if decode_rgb(tar.extractfile(member).read()) is not None:
                        entry["image"] = (member.offset_data, member.size)
                elif ext == "txt":
                    entry["caption"] = tar.extractfile(member).read().decode("utf-8")
                elif ext == "json":
                    entry["weight"] = float(json.loads(tar.extractfile(member).read()).get(WEIGHT_KEY, 1.0))
        for key in sorted(pending):
            entry = pending[key]
            if "image" in entry and "caption" in entry:
                offset, size = entry["image"]
                index.append(
                    {
                        "shard": str(shard),
                        "offset": int(offset),
                        "size": int(size),
                        "caption": entry["caption"],
                        "weight": entry.get("weight", 1.0),
                    }
                )
    return index


def read_image_bytes(entry: dict) -> bytes:
    with open(entry["shard"], "rb") as f:
        f.seek(entry["offset"])
        return f.read(entry["size"])
