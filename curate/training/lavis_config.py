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
- `torchrun_command`: LAVIS's training launched with torchrun (``python -m torch.distributed.run``
  of LAVIS's interpreter) over the recipe's ``world_size`` processes: GPUs with nccl on a
  cluster, CPU processes with gloo in the rehearsal (`curate.training.trainers.dist_backend`).
- `vit_arch`, `med_config`: the architecture of the model to build, read off its initialisation
  (``vision_init``: a DeiT-layout ViT checkpoint; ``text_init``: a BERT folder's config.json),
  so the same code builds LAVIS's ViT-B/16 + BERT-base from DeiT-B and bert-base-uncased and a
  tiny one from tiny files in the same layouts (the rehearsal). Nothing is downloaded at run time.
"""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
import tarfile
from pathlib import Path

from curate.training.trainers import complete_recipe, dist_backend

MODEL_ARCH = "weighted_blip_pretrain"
DATASET_NAME = "weighted_reshard"
IMAGE_EXTS = ("jpg", "jpeg", "png", "webp")
#: Attention head width of LAVIS's ViTs (B/16: 12 heads of 768, L/16: 16 of 1024); a checkpoint
#: does not record its heads. A ViT narrower than this has one head.
VIT_HEAD_DIM = 64
#: What `curate.training.lavis_blip` writes beside LAVIS's checkpoints (rank 0, before training):
#: the architecture it built and the tokenizer it trained with, which the conversion reads.
ARCH_FILE = "arch.json"
TOKENIZER_DIR = "tokenizer"
CHECKPOINT_DIR = "train"  # LAVIS's output_dir/<job id>: checkpoint_<epoch>.pth, log.txt
#: The fields of a BERT config.json that size LAVIS's text encoder/decoder (its med config keeps
#: its own others: no token type embeddings, cross-attention to the ViT).
TEXT_SIZE_KEYS = (
    "vocab_size",
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "intermediate_size",
    "max_position_embeddings",
    "layer_norm_eps",
    "hidden_act",
    "pad_token_id",
)


def per_gpu_batch(recipe: dict) -> int:
    recipe = complete_recipe(recipe)
    batch, world = int(recipe["batch_size"]), int(recipe["world_size"])
    if batch % world:
        raise ValueError(f"batch_size {batch} does not split over world_size {world} GPUs")
    return batch // world


def run_config(recipe: dict, shard_dir, out_dir, seed: int, vision_init, text_init) -> dict:
    """LAVIS's run config of BLIP pretraining on the reshard in `shard_dir` (outputs in `out_dir`),
    the ViT initialised from the checkpoint file `vision_init` and the text encoder/decoder and
    tokenizer from the BERT folder `text_init`."""
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
            "vision_init": str(Path(vision_init).resolve()),
            "text_init": str(Path(text_init).resolve()),
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
            "resume_ckpt_path": None,
            "evaluate": False,
            "train_splits": ["train"],
            "device": str(recipe["device"]),
            "world_size": int(recipe["world_size"]),
            "dist_backend": dist_backend(recipe),
            "dist_url": "env://",
            "distributed": True,
        },
    }


def dataset_defaults() -> dict:
    """The default config of the ``weighted_reshard`` builder (LAVIS reads one per builder)."""
    return {"datasets": {DATASET_NAME: {"data_type": "images", "build_info": {"storage": None}}}}


def torchrun_command(recipe: dict, cfg_path, python: str = "python", rdzv_endpoint: str | None = None) -> list[str]:
    """torchrun (``<python> -m torch.distributed.run``, `python` being LAVIS's interpreter) of
    `curate.training.lavis_blip` over ``world_size`` processes on ``nodes`` nodes (default 1,
    standalone; more nodes need the job started on each, e.g. under ``srun``, and a rendezvous
    endpoint ``host:port``)."""
    recipe = complete_recipe(recipe)
    world, nodes = int(recipe["world_size"]), int(recipe["nodes"])
    if world % nodes:
        raise ValueError(f"world_size {world} does not split over {nodes} nodes")
    cmd = [str(python), "-m", "torch.distributed.run", f"--nnodes={nodes}", f"--nproc_per_node={world // nodes}"]
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


def vit_arch(shapes: dict) -> dict:
    """The ViT of a DeiT-layout checkpoint (``cls_token``, ``pos_embed``, ``patch_embed.proj``,
    ``blocks.<i>.*``), from ``{key: shape}``: width, depth, heads (`VIT_HEAD_DIM` each), patch
    size and MLP ratio, as LAVIS's ``VisionTransformer`` takes them."""
    for key in ("cls_token", "patch_embed.proj.weight", "blocks.0.mlp.fc1.weight"):
        if key not in shapes:
            raise ValueError(f"not a DeiT/ViT checkpoint: no {key!r}")
    width = int(shapes["cls_token"][-1])
    blocks = {int(m.group(1)) for k in shapes if (m := re.match(r"blocks\.(\d+)\.", k))}
    if blocks != set(range(len(blocks))):
        raise ValueError(f"ViT checkpoint blocks {sorted(blocks)} are not 0..n-1")
    heads = max(1, width // VIT_HEAD_DIM)
    if width % heads:
        raise ValueError(f"ViT width {width} does not split into {heads} heads")
    return {
        "width": width,
        "depth": len(blocks),
        "heads": heads,
        "patch_size": int(shapes["patch_embed.proj.weight"][-1]),
        "mlp_ratio": int(shapes["blocks.0.mlp.fc1.weight"][0]) / width,
    }


def med_config(lavis_med: dict, text_config: dict, vision_width: int) -> dict:
    """LAVIS's med (BERT with cross-attention) config: LAVIS's own ``bert_config.json``
    (`lavis_med`) with the sizes of the text init's config.json (`TEXT_SIZE_KEYS`) and
    cross-attention to a ViT of `vision_width`. For bert-base-uncased and ViT-B/16 this is LAVIS's
    config unchanged."""
    med = dict(lavis_med)
    med.update({k: text_config[k] for k in TEXT_SIZE_KEYS if k in text_config})
    med["encoder_width"] = int(vision_width)
    med["add_cross_attention"] = True
    return med


def last_checkpoint(run_dir) -> Path:
    """The last epoch's ``checkpoint_<epoch>.pth`` of a LAVIS run folder (``<run>/train/``)."""
    found = sorted(
        (int(m.group(1)), p)
        for p in (Path(run_dir) / CHECKPOINT_DIR).glob("checkpoint_*.pth")
        if (m := re.fullmatch(r"checkpoint_(\d+)\.pth", p.name))
    )
    if not found:
        raise FileNotFoundError(f"{Path(run_dir) / CHECKPOINT_DIR}: no LAVIS checkpoint_<epoch>.pth")
    return found[-1][1]


REPO = Path(__file__).resolve().parents[2]
#: The virtualenv setup-lavis.sh builds (envs/lavis.lock) when the job's own env has no LAVIS.
LAVIS_VENV = REPO / ".venv-lavis"


def lavis_interpreter(configured: str | None = None, log=None) -> str:
    """The Python that runs LAVIS (torchrun and its processes), by the config's ``lavis_python``:

    - a path: that interpreter (relative paths from the repository's root);
    - null: the job's own interpreter when it imports LAVIS (the conda env envs/lavis.yaml under
      ``--software-deployment-method conda``, as on the cluster), else ``.venv-lavis/bin/python``,
      which ``setup-lavis.sh`` builds or brings up to date first (idempotent; output to `log`).
    """
    if configured:
        path = Path(configured)
        path = path if path.is_absolute() else REPO / path
        if not path.is_file():
            raise FileNotFoundError(f"lavis_python: {path} does not exist")
        return str(path)
    if importlib.util.find_spec("lavis") is not None:
        return sys.executable
    subprocess.run(["bash", str(REPO / "setup-lavis.sh")], check=True, stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
    return str(LAVIS_VENV / "bin" / "python")


def threads_per_process(recipe: dict, threads: int) -> int:
    """Torch threads of each of the node's torchrun processes: the job's threads shared out."""
    recipe = complete_recipe(recipe)
    per_node = int(recipe["world_size"]) // int(recipe["nodes"])
    return max(1, int(threads) // per_node)
