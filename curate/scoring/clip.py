"""CLIP models through open_clip: tiny architectures, loading, exporting, encoding.

Every CLIP model in the workflow goes through `load_model`, whatever its origin:

- ``local-dir:/path`` (or a plain path to such a folder): an open_clip model folder holding
  ``open_clip_config.json`` = ``{"model_cfg": ..., "preprocess_cfg": ...}`` and, for a trained
  model, ``open_clip_model.safetensors``. The workflow's own tiny models are exported this way
  (`export_local_dir`); a folder holding only the config gives a randomly initialised model, which
  is how `curate.training.clip` trains tiny models from scratch (`write_arch_dir`).
- ``hf-hub:org/repo``: a model published on the Hugging Face Hub in open_clip's layout.
- an architecture name (open_clip's own, e.g. ``ViT-B-32``, or one in `curate/model_configs/`)
  with ``pretrained`` = a tag open_clip knows or a path to a weights file.

Nothing here downloads at import time.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

log = logging.getLogger(__name__)

MODEL_CONFIG_DIR = Path(__file__).resolve().parents[1] / "model_configs"
CONFIG_NAME = "open_clip_config.json"
WEIGHTS_NAME = "open_clip_model.safetensors"
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pth")


def available_archs() -> list[str]:
    """Names of the architectures defined in `curate/model_configs/`."""
    return sorted(p.stem for p in MODEL_CONFIG_DIR.glob("*.json"))


def arch_config_path(arch: str) -> Path:
    """Path of the open_clip model config of `arch` in `curate/model_configs/`."""
    path = MODEL_CONFIG_DIR / f"{arch}.json"
    if not path.is_file():
        raise ValueError(f"unknown CLIP architecture {arch!r}: no {path}; available: {available_archs()}")
    return path


def _register_archs() -> None:
    """Make the architectures of `curate/model_configs/` known to open_clip by name."""
    import open_clip

    if not all(a in open_clip.list_models() for a in available_archs()):
        open_clip.add_model_config(MODEL_CONFIG_DIR)


def arch_open_clip_config(arch: str) -> dict:
    """``{"model_cfg", "preprocess_cfg"}`` of `arch`: a curate arch name, an open_clip arch name
    or a model folder (``local-dir:`` prefix optional) whose config is reused."""
    from open_clip.transform import PreprocessCfg

    folder = _local_dir(arch)
    if folder is not None:
        with open(folder / CONFIG_NAME, encoding="utf-8") as f:
            config = json.load(f)
        if "model_cfg" not in config:
            raise ValueError(f"{folder / CONFIG_NAME}: no 'model_cfg'")
        return {"model_cfg": config["model_cfg"], "preprocess_cfg": config.get("preprocess_cfg", {})}
    if (MODEL_CONFIG_DIR / f"{arch}.json").is_file():
        with open(arch_config_path(arch), encoding="utf-8") as f:
            model_cfg = json.load(f)
    else:
        import open_clip

        model_cfg = open_clip.get_model_config(arch)
        if model_cfg is None:
            raise ValueError(f"unknown CLIP architecture {arch!r} (neither in {MODEL_CONFIG_DIR} nor in open_clip)")
    preprocess_cfg = asdict(PreprocessCfg())
    image_size = model_cfg["vision_cfg"].get("image_size")
    if image_size is not None:
        preprocess_cfg["size"] = image_size
    return {"model_cfg": model_cfg, "preprocess_cfg": preprocess_cfg}


def _local_dir(source: str) -> Path | None:
    """The folder of a ``local-dir:`` source or of a plain path to a model folder, else None."""
    if source.startswith("local-dir:"):
        return Path(source[len("local-dir:") :])
    if source.startswith("hf-hub:"):
        return None
    path = Path(source)
    if path.is_dir() and (path / CONFIG_NAME).is_file():
        return path
    return None


def write_arch_dir(arch: str, out_dir) -> Path:
    """Write a model folder holding only ``open_clip_config.json`` for `arch` (no weights):
    ``load_model("local-dir:<out_dir>")`` and ``open_clip_train --model local-dir:<out_dir>`` build
    a randomly initialised model from it. Returns the folder."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stale = [p.name for p in out_dir.iterdir() if p.suffix in _WEIGHT_SUFFIXES]
    if stale:
        raise ValueError(f"{out_dir}: holds weights {stale}; an architecture folder must hold none")
    config = arch_open_clip_config(arch)
    _write_json(out_dir / CONFIG_NAME, config)
    return out_dir


def _write_json(path: Path, obj) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=2, sort_keys=True)
        f.write("\n")
    os.replace(tmp, path)


def load_model(source: str, device: str = "cpu", pretrained: str | None = None, train_preprocess: bool = False):
    """Load a CLIP model through open_clip.

    `source`: ``local-dir:/folder``, a plain path to such a folder, ``hf-hub:org/repo``, or an
    architecture name (open_clip's or `curate/model_configs/`'s) together with `pretrained`
    (an open_clip tag or a weights file). Returns ``(model in eval mode, preprocess_val,
    tokenizer)``; with `train_preprocess`, open_clip's training preprocessing (a random resized
    crop, drawn from torch's global generator) in place of ``preprocess_val``.
    """
    import open_clip

    folder = _local_dir(source)
    if folder is not None:
        if not folder.is_dir():
            raise FileNotFoundError(f"model folder not found: {folder}")
        name = f"local-dir:{folder}"
    else:
        name = source
    if (folder is not None or source.startswith("hf-hub:")) and pretrained:
        raise ValueError(f"pretrained={pretrained!r} given with model source {source!r}, which names its own weights")
    if folder is None and not source.startswith("hf-hub:"):
        _register_archs()
    model, preprocess_train, preprocess = open_clip.create_model_and_transforms(
        name, pretrained=pretrained, device=device
    )
    tokenizer = open_clip.get_tokenizer(name)
    model.eval()
    return model, preprocess_train if train_preprocess else preprocess, tokenizer


def export_local_dir(checkpoint_path, arch: str, out_dir) -> Path:
    """Turn an open_clip_train checkpoint (``epoch_N.pt`` with ``state_dict``, ``module.``
    prefixes allowed) or a bare state dict into a model folder `out_dir` (config +
    ``open_clip_model.safetensors``) that `load_model` reads. `arch` as in
    `arch_open_clip_config`. The weights go through open_clip's own checkpoint loader into a
    model of that architecture (strict), so a mismatch fails here, naming the checkpoint."""
    import tempfile

    import open_clip
    from safetensors.torch import save_file

    checkpoint_path = Path(checkpoint_path)
    if not checkpoint_path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {checkpoint_path}")
    config = arch_open_clip_config(arch)
    with tempfile.TemporaryDirectory(prefix="arch-") as tmp_dir:
        _write_json(Path(tmp_dir) / CONFIG_NAME, config)
        model = open_clip.create_model(f"local-dir:{tmp_dir}", device="cpu")
    try:
        open_clip.load_checkpoint(model, str(checkpoint_path), strict=True, weights_only=True)
    except Exception as e:  # noqa: BLE001 - open_clip raises RuntimeError, AssertionError, KeyError
        raise ValueError(f"{checkpoint_path}: weights do not fit architecture {arch!r}: {e}") from e
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().contiguous().clone() for k, v in model.state_dict().items()}
    tmp = out_dir / (WEIGHTS_NAME + ".tmp")
    save_file(tensors, str(tmp), metadata={"format": "pt"})
    os.replace(tmp, out_dir / WEIGHTS_NAME)
    _write_json(out_dir / CONFIG_NAME, config)
    return out_dir


@torch.inference_mode()
def encode(model, preprocess, tokenizer, images: Sequence, texts: Sequence[str], batch_size: int = 256):
    """Encode PIL `images` and `texts` (either may be empty, lengths independent).

    Returns ``(image_features [len(images), D], text_features [len(texts), D])``, L2-normalised,
    numpy float32.
    """
    device = next(model.parameters()).device
    dim = _embed_dim(model)
    image_out, text_out = [], []
    for i in range(0, len(images), batch_size):
        batch = torch.stack([preprocess(im) for im in images[i : i + batch_size]]).to(device)
        feats = model.encode_image(batch)
        image_out.append(torch.nn.functional.normalize(feats.float(), dim=-1).cpu().numpy())
    for i in range(0, len(texts), batch_size):
        tokens = tokenizer(list(texts[i : i + batch_size])).to(device)
        feats = model.encode_text(tokens)
        text_out.append(torch.nn.functional.normalize(feats.float(), dim=-1).cpu().numpy())
    image_features = np.concatenate(image_out) if image_out else np.zeros((0, dim), np.float32)
    text_features = np.concatenate(text_out) if text_out else np.zeros((0, dim), np.float32)
    return image_features.astype(np.float32, copy=False), text_features.astype(np.float32, copy=False)


def _embed_dim(model) -> int:
    proj = getattr(model, "text_projection", None)
    if isinstance(proj, torch.Tensor):
        return int(proj.shape[-1])
    if isinstance(proj, torch.nn.Linear):
        return int(proj.out_features)
    return int(getattr(model, "embed_dim", 0) or 0)
