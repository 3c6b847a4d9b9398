"""Tiny CLIPs as their sources deliver them: OpenAI's ``.pt`` files and open_clip's Hub repos.

- OpenAI (``openaipublic.azureedge.net/clip/models/<sha256>/<name>.pt``): a TorchScript archive of
  the whole CLIP, weights in float16 and OpenAI's three non-weight entries (``input_resolution``,
  ``context_length``, ``vocab_size``) in its state dict, no attention-mask buffer: what OpenAI's
  ``clip.load`` and open_clip's ``load_openai_model`` read, which infer the architecture from the
  tensors' shapes (ViT or ModifiedResNet, 64-wide heads). The tiny one keeps the named
  architecture's family (ResNet or ViT and its patch size), open_clip's tokenizer (49408 tokens,
  77 positions) and shrinks everything else.
- open_clip Hub repos (``timm/eva02_base_patch16_clip_224.merged2b_s8b_b131k`` ...):
  ``open_clip_config.json`` (``model_cfg`` + ``preprocess_cfg``), ``open_clip_pytorch_model.bin``
  (a state dict) and ``open_clip_model.safetensors``. The real EVA-CLIPs' vision towers are timm's
  EVA trunks, whose smallest (``eva02_tiny_patch14_224``, 5.5M parameters at 224 px) is not tiny;
  open_clip builds a timm tower from a timm model name only, without size arguments, so the tiny
  repos' configs keep EVA-CLIP's model class (open_clip's ``CustomTextCLIP``, ``custom_text``) and
  text tower with a tiny open_clip ViT as vision tower.
"""

from __future__ import annotations

from pathlib import Path

from curate.rehearsal.model_common import seeded, write_json, write_model_card

#: the tiny towers' widths: 64 = one of open_clip's (and OpenAI's) 64-wide attention heads
WIDTH = 64
EMBED_DIM = 32
RESNET_WIDTH = 8  # a ModifiedResNet's stem; its output is 32x wider, its attention pool 64-wide heads


def tiny_text_cfg(real: dict) -> dict:
    """A one-layer text tower with the real one's tokenizer (vocabulary and context length)."""
    return {
        "context_length": int(real.get("context_length", 77)),
        "vocab_size": int(real.get("vocab_size", 49408)),
        "width": WIDTH,
        "heads": 1,
        "layers": 1,
    }


def _grid(image_size: int) -> int:
    """2 patches a side for a 224-px model, 3 for 336 px: the real model's ratio, kept."""
    return max(2, round(2 * int(image_size) / 224))


def tiny_openai_cfg(real: dict) -> dict:
    """The tiny ``model_cfg`` of an OpenAI CLIP architecture (open_clip's config `real`)."""
    vision = real["vision_cfg"]
    if isinstance(vision["layers"], (list, tuple)):  # ModifiedResNet: output stride 32
        layers = [1, 1, 2 if vision["layers"][2] > 6 else 1, 1]
        tiny_vision = {"image_size": 32 * _grid(vision["image_size"]), "layers": layers, "width": RESNET_WIDTH}
    else:
        patch = int(vision["patch_size"])
        tiny_vision = {
            "image_size": patch * _grid(vision["image_size"]),
            "layers": 2 if vision["layers"] > 12 else 1,
            "width": WIDTH,
            "patch_size": patch,
        }
    return {
        "embed_dim": EMBED_DIM,
        "quick_gelu": True,
        "vision_cfg": tiny_vision,
        "text_cfg": tiny_text_cfg(real["text_cfg"]),
    }


def build_openai_clip(path, arch: str, seed: int) -> dict:
    """Write the tiny OpenAI-format checkpoint of open_clip architecture `arch` (e.g.
    ``ViT-B-32-quickgelu``) to `path`; returns its model config."""
    import open_clip
    import torch
    from open_clip.model import CLIP

    cfg = tiny_openai_cfg(open_clip.get_model_config(arch))
    with seeded(seed):
        model = CLIP(**cfg).eval()
    with torch.no_grad():
        for p in model.parameters():  # open_clip starts some projections at zero: spread them
            if p.ndim >= 2 and float(p.abs().max()) == 0.0:
                p.normal_(0, p.shape[-1] ** -0.5)
    model = model.half()
    # OpenAI's state dict: three non-weight entries, the causal mask not among its tensors
    mask = model._buffers.pop("attn_mask")
    model.attn_mask = mask
    vision = cfg["vision_cfg"]
    values = {
        "input_resolution": vision["image_size"],
        **{k: cfg["text_cfg"][k] for k in ("context_length", "vocab_size")},
    }
    for key, value in values.items():
        if key in model.__dict__:
            delattr(model, key)
        model.register_buffer(key, torch.tensor(int(value)))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.jit.save(torch.jit.script(model), str(tmp))
    _fix_serialization_id(tmp, seed)
    tmp.replace(path)
    return cfg


def build_openai_clips(jobs: list[tuple], timeout: float = 600) -> None:
    """`build_openai_clip` for each ``(path, arch, seed)`` of `jobs`, byte-stable: TorchScript writes
    a module's constants in the order of a Python set of their names (string hashing, random per
    process), so the archives are scripted in a child process with ``PYTHONHASHSEED=0``; the
    archive's random ``serialization_id`` is replaced by one made from the seed."""
    import json
    import os
    import subprocess
    import sys

    if not jobs:
        return
    spec = json.dumps([[str(p), a, int(s)] for p, a, s in jobs])
    code = (
        "import json, sys\n"
        "from curate.rehearsal.model_clip import build_openai_clip\n"
        "for path, arch, seed in json.loads(sys.argv[1]):\n"
        "    build_openai_clip(path, arch, seed)\n"
    )
    env = dict(os.environ, PYTHONHASHSEED="0")
    proc = subprocess.run([sys.executable, "-c", code, spec], env=env, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"building OpenAI CLIP checkpoints failed: {proc.stderr.strip()[-2000:]}")


def _fix_serialization_id(path, seed: int) -> None:
    """Replace the random half of a torch zip archive's ``.data/serialization_id`` (20 digits of
    the records' combined CRC, then 20 random ones) by digits of `seed`, in place: the record is
    stored uncompressed, so only its bytes and the CRC-32 in its local and central headers change."""
    import struct
    import zipfile
    import zlib

    with zipfile.ZipFile(path) as archive:
        info = next(i for i in archive.infolist() if i.filename.endswith(".data/serialization_id"))
        old = archive.read(info)
        start_dir = archive.start_dir
    if info.compress_type != zipfile.ZIP_STORED or len(old) != 40:
        raise ValueError(f"{path}: unexpected serialization_id record {info}")
    new = old[:20] + f"{int(seed) % 10**20:020d}".encode()
    crc = struct.pack("<I", zlib.crc32(new))
    with open(path, "r+b") as f:
        f.seek(info.header_offset)
        local = f.read(30)
        name_len, extra_len = struct.unpack("<HH", local[26:30])
        f.seek(info.header_offset + 14)
        f.write(crc)
        f.seek(info.header_offset + 30 + name_len + extra_len)
        f.write(new)
        f.seek(start_dir)
        while True:  # the central directory's entry of the record
            head = f.read(46)
            if head[:4] != b"PK\x01\x02":
                raise ValueError(f"{path}: no central directory entry for {info.filename}")
            n, m, k = struct.unpack("<HHH", head[28:34])
            name = f.read(n).decode()
            if name == info.filename:
                f.seek(-(46 + n), 1)
                f.seek(16, 1)
                f.write(crc)
                break
            f.seek(m + k, 1)


def tiny_hub_cfg(real: dict) -> dict:
    """The tiny ``model_cfg`` of an open_clip Hub architecture (e.g. EVA02-L-14's)."""
    vision = real["vision_cfg"]
    patch = int(vision.get("patch_size") or _patch_of(vision.get("timm_model_name", "")))
    tiny = {
        "embed_dim": EMBED_DIM,
        "vision_cfg": {
            "image_size": patch * _grid(vision["image_size"]),
            "layers": 1,
            "width": WIDTH,
            "patch_size": patch,
        },
        "text_cfg": tiny_text_cfg(real["text_cfg"]),
    }
    if real.get("custom_text"):
        tiny["custom_text"] = True
    return tiny


def _patch_of(timm_name: str) -> int:
    """The patch size in a timm model name (``eva02_large_patch14_clip_336`` -> 14)."""
    import re

    found = re.search(r"patch(\d+)", timm_name)
    if not found:
        raise ValueError(f"no patch size in timm model name {timm_name!r}")
    return int(found.group(1))


def build_open_clip_hub_repo(folder, arch: str, tag: str, seed: int) -> dict:
    """Write the tiny open_clip Hub repo of `arch` with pretrained tag `tag` into `folder`;
    returns ``{weights file: path}`` of what it holds."""
    import open_clip
    import torch
    from open_clip.model import CLIP, CustomTextCLIP
    from safetensors.torch import save_file

    real = open_clip.get_model_config(arch)
    tag_cfg = open_clip.get_pretrained_cfg(arch, tag)
    cfg = tiny_hub_cfg(real)
    with seeded(seed):
        model = (CustomTextCLIP if cfg.get("custom_text") else CLIP)(
            **{k: v for k, v in cfg.items() if k != "custom_text"}
        )
    with torch.no_grad():
        for p in model.parameters():
            if p.ndim >= 2 and float(p.abs().max()) == 0.0:
                p.normal_(0, p.shape[-1] ** -0.5)
    state = {k: v.detach().half().contiguous() for k, v in model.state_dict().items()}
    preprocess = {
        k: list(tag_cfg[k]) if isinstance(tag_cfg[k], tuple) else tag_cfg[k]
        for k in ("mean", "std", "interpolation", "resize_mode")
        if k in tag_cfg
    }
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    write_json(folder / "open_clip_config.json", {"model_cfg": cfg, "preprocess_cfg": preprocess})
    torch.save(state, folder / "open_clip_pytorch_model.bin")
    save_file(state, str(folder / "open_clip_model.safetensors"), metadata={"format": "pt"})
    write_model_card(
        folder,
        f"Tiny stand-in of open_clip {arch} ({tag})",
        f"open_clip's Hub layout (`open_clip_config.json`, `open_clip_pytorch_model.bin`, "
        f"`open_clip_model.safetensors`) of a tiny CLIP with {arch}'s model class and tokenizer; "
        "its vision tower is a tiny open_clip ViT, not timm's EVA trunk.",
    )
    return {"open_clip_model.safetensors": folder / "open_clip_model.safetensors"}


#: The tiny HYPE release's architecture: a ViT of one 64-wide head per layer (the release's format
#: carries no head counts; its reader takes OpenAI's width / 64), 32 px images.
HYPE_CFG = {
    "embed_dim": EMBED_DIM,
    "quick_gelu": False,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": WIDTH, "head_width": WIDTH, "patch_size": 16},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": WIDTH, "heads": 1, "layers": 1},
}


def build_hype_release_file(path, which: str, seed: int) -> None:
    """One of HYPE's two released files (naver-ai/hype's README) for a tiny hyperbolic CLIP:
    ``ckpt`` (its state dict in OpenAI CLIP's names with the log curvature and alphas) or
    ``reference`` (``{"img", "txt"}`` tangent vectors: the same tiny model's encodings of random
    images and a few captions). Both files derive the model from the one seed of the release, so
    the reference belongs to the checkpoint whichever is built first."""
    import math

    import numpy as np

    from curate.scoring.hype import HyperbolicCLIP, encode, save_reference, save_release

    del seed  # each file is built under its own URL's seed; the pair shares the release's
    release_seed = 7919
    with seeded(release_seed):
        model = HyperbolicCLIP(HYPE_CFG, curvature=math.log(0.5)).eval()
    if which == "ckpt":
        save_release(model, path)
        return
    from PIL import Image

    rng = np.random.default_rng(release_seed)
    images = [Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)) for _ in range(8)]
    texts = ["a photo of a dog", "a red car on a street", "two people", "a map", "text", "a cat", "sky", "food"]
    img, txt = encode(model, images, texts)
    save_reference(img, txt, path)
