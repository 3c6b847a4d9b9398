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


def write_random_model(arch: str, seed: int, out_dir) -> Path:
    """Write a model folder holding `arch` initialised by open_clip under ``torch.manual_seed(seed)``
    (config + ``open_clip_model.safetensors``): every job that loads it gets the same random CLIP
    (FLYT Table 8 and 12's "random initialization"), where a weightless `write_arch_dir` folder
    would initialise anew at each load. Returns the folder."""
    import tempfile

    import open_clip
    from safetensors.torch import save_file

    config = arch_open_clip_config(arch)
    with tempfile.TemporaryDirectory(prefix="arch-") as tmp_dir:
        _write_json(Path(tmp_dir) / CONFIG_NAME, config)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(seed))
            model = open_clip.create_model(f"local-dir:{tmp_dir}", device="cpu")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().contiguous().clone() for k, v in model.state_dict().items()}
    tmp = out_dir / (WEIGHTS_NAME + ".tmp")
    save_file(tensors, str(tmp), metadata={"format": "pt"})
    os.replace(tmp, out_dir / WEIGHTS_NAME)
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


#: Entries of an OpenAI CLIP's state dict that are not weights (popped by OpenAI's and open_clip's loaders).
OPENAI_NON_WEIGHTS = ("input_resolution", "context_length", "vocab_size")


def is_torchscript(path) -> bool:
    """Whether `path` is a TorchScript archive (a zip holding ``constants.pkl``), as OpenAI's CLIP
    checkpoints are."""
    import zipfile

    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any(n == "constants.pkl" or n.endswith("/constants.pkl") for n in archive.namelist())


def openai_state_dict(path) -> dict:
    """The weights of an OpenAI CLIP checkpoint: a TorchScript archive (OpenAI's files, read with
    ``torch.jit.load`` as OpenAI's and open_clip's loaders do; ``torch.load(weights_only=True)``
    refuses them) or a plain state dict (optionally ``{"state_dict": ...}`` with ``module.``
    prefixes), without OpenAI's non-weight entries (`OPENAI_NON_WEIGHTS`)."""
    path = Path(path)
    if is_torchscript(path):
        state = torch.jit.load(str(path), map_location="cpu").state_dict()
    else:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
        if isinstance(state, dict) and "state_dict" in state:
            state = state["state_dict"]
    if not isinstance(state, dict) or not state:
        raise ValueError(f"{path}: not an OpenAI CLIP checkpoint")
    if next(iter(state)).startswith("module."):
        state = {k[len("module.") :]: v for k, v in state.items()}
    return {k: v for k, v in state.items() if k not in OPENAI_NON_WEIGHTS}


def openai_model_cfg(state: dict) -> dict:
    """The open_clip ``model_cfg`` of an OpenAI CLIP state dict, read off its tensors' shapes as
    open_clip's ``build_model_from_openai_state_dict`` reads them (OpenAI's checkpoints carry no
    config): ViT or ModifiedResNet vision tower, 64-wide attention heads, QuickGELU."""

    def count(prefix: str, position: int) -> int:
        return len({k.split(".")[position] for k in state if k.startswith(prefix)})

    try:
        if "visual.proj" in state:
            patch = state["visual.conv1.weight"]
            grid = round((state["visual.positional_embedding"].shape[0] - 1) ** 0.5)
            vision = {
                "image_size": int(patch.shape[-1] * grid),
                "layers": sum(1 for k in state if k.startswith("visual.") and k.endswith(".attn.in_proj_weight")),
                "width": int(patch.shape[0]),
                "patch_size": int(patch.shape[-1]),
            }
        else:
            positions = state["visual.attnpool.positional_embedding"].shape[0]
            grid = round((positions - 1) ** 0.5)
            if grid * grid + 1 != positions:
                raise ValueError(f"{positions} attention-pool positions are not a square grid plus one")
            vision = {
                "image_size": int(grid * 32),
                "layers": [count(f"visual.layer{b}.", 2) for b in (1, 2, 3, 4)],
                "width": int(state["visual.layer1.0.conv1.weight"].shape[0]),
            }
        width = int(state["ln_final.weight"].shape[0])
        text = {
            "context_length": int(state["positional_embedding"].shape[0]),
            "vocab_size": int(state["token_embedding.weight"].shape[0]),
            "width": width,
            "heads": width // 64,
            "layers": count("transformer.resblocks.", 2),
        }
        embed_dim = int(state["text_projection"].shape[1])
    except KeyError as e:
        raise ValueError(f"not an OpenAI CLIP state dict: no {e}") from e
    return {"embed_dim": embed_dim, "quick_gelu": True, "vision_cfg": vision, "text_cfg": text}


def same_architecture(found: dict, named: dict) -> bool:
    """Whether every setting of the model config `found` (read off weights) has the same value in
    `named` (an architecture's config); lists and tuples compare equal."""
    for key, value in found.items():
        other = named.get(key)
        if isinstance(value, dict):
            if not isinstance(other, dict) or not same_architecture(value, other):
                return False
        elif (list(value) if isinstance(value, tuple) else value) != (
            list(other) if isinstance(other, tuple) else other
        ):
            return False
    return True


def export_with_config(checkpoint_path, config: dict, out_dir) -> Path:
    """`export_local_dir` into the architecture ``config`` (``{"model_cfg", "preprocess_cfg"}``,
    e.g. a Hub repo's ``open_clip_config.json``) instead of a named one; ``preprocess_cfg["size"]``
    defaults to the vision tower's image size."""
    import tempfile

    from open_clip.transform import PreprocessCfg

    preprocess = {**asdict(PreprocessCfg()), **config.get("preprocess_cfg", {})}
    if "size" not in config.get("preprocess_cfg", {}) and config["model_cfg"]["vision_cfg"].get("image_size"):
        preprocess["size"] = config["model_cfg"]["vision_cfg"]["image_size"]
    with tempfile.TemporaryDirectory(prefix="arch-") as tmp_dir:
        _write_json(Path(tmp_dir) / CONFIG_NAME, {"model_cfg": config["model_cfg"], "preprocess_cfg": preprocess})
        return export_local_dir(checkpoint_path, f"local-dir:{tmp_dir}", out_dir)


def export_openai_checkpoint(checkpoint_path, out_dir) -> dict:
    """Turn an OpenAI CLIP checkpoint (`openai_state_dict`) into a model folder that `load_model`
    reads, its architecture read off the weights (`openai_model_cfg`), as open_clip's own OpenAI
    loader does; the weights go through `export_local_dir` (strict). Returns the model config."""
    import tempfile

    from safetensors.torch import save_file

    state = openai_state_dict(checkpoint_path)
    model_cfg = openai_model_cfg(state)
    with tempfile.TemporaryDirectory(prefix="openai-") as tmp_dir:
        weights = Path(tmp_dir) / "weights.safetensors"
        save_file({k: v.contiguous() for k, v in state.items()}, str(weights))
        export_with_config(weights, {"model_cfg": model_cfg}, out_dir)
    return model_cfg


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
