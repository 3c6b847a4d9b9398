"""HYPE's hyperbolic CLIP as its authors release it, and HYPE's scores of pool chunks
(docs/algorithms.md §6.7; the geometry is `curate.scoring.hyperbolic`).

**The release** (naver-ai/hype's README; FLYT App. B item 3): two files on Google Drive,

- the weights, loaded by the authors as ``ckpt.pt``: ``torch.save`` of a plain state dict of
  their ``model.CLIP`` (an OpenCLIP-style ViT-L/14: OpenAI CLIP's parameter names, nn.GELU, 64-wide
  attention heads) plus three scalars of MERU's hyperbolic head, each the *log* of its value:
  ``curvature`` (the hyperboloid's curvature is ``-exp(curvature)``), ``alpha_img`` and
  ``alpha_txt`` (the encoders' outputs are scaled by ``exp(alpha)`` into the tangent space);
- the reference set, loaded as ``reference.pt``: ``{"img": Tensor[R, D], "txt": Tensor[R, D]}``,
  tangent vectors of reference images and texts (what ``encode_image`` / ``encode_text`` return).

`read_release` reads the weights as the authors' ``model_init`` does, with the architecture read
off the tensors' shapes (OpenAI's rule: heads = width / 64), into open_clip's ``CLIP`` (whose
parameter names are OpenAI's, so the state dict loads as it is; every CLIP weight must be
present, extra entries are listed in the record); preprocessing is the authors': resize the
shorter side to the image size (bicubic), centre crop, OpenAI's mean and std; tokens are OpenAI
CLIP's BPE, truncated with the end token kept. The workflow's own tiny hyperbolic CLIP
(`curate.training.hyperbolic_clip`) is saved in the same two files, so one loader reads both.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from curate.scoring.hyperbolic import hype_scores
from curate.scoring.kinds import HYPE_COLUMNS

log = logging.getLogger(__name__)

#: The release's file names (the authors' code loads ``ckpt.pt`` and ``reference.pt``).
CHECKPOINT_NAME = "ckpt.pt"
REFERENCE_NAME = "reference.pt"
#: The hyperbolic head's scalars in the weights file, each the log of its value.
HYPERBOLIC_KEYS = ("curvature", "alpha_img", "alpha_txt")


class HyperbolicCLIP(torch.nn.Module):
    """An open_clip ``CLIP`` with MERU's hyperbolic head: ``encode_image`` / ``encode_text``
    return tangent vectors (the towers' outputs times ``exp(alpha)``), ``curvature`` the ``c``
    of the hyperboloid. The three scalars are stored as logs, as MERU and HYPE store them."""

    def __init__(self, model_cfg: dict, curvature: float = 0.0, alpha_img: float | None = None, alpha_txt=None):
        super().__init__()
        from open_clip.model import CLIP

        self.model_cfg = dict(model_cfg)
        self.clip = CLIP(**self.model_cfg)
        alpha0 = float(np.log(1.0 / np.sqrt(self.model_cfg["embed_dim"])))
        self.curvature = torch.nn.Parameter(torch.tensor(float(curvature)))
        self.alpha_img = torch.nn.Parameter(torch.tensor(alpha0 if alpha_img is None else float(alpha_img)))
        self.alpha_txt = torch.nn.Parameter(torch.tensor(alpha0 if alpha_txt is None else float(alpha_txt)))

    @property
    def c(self) -> torch.Tensor:
        return self.curvature.exp()

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        return self.alpha_img.exp() * self.clip.encode_image(images, normalize=False)

    def encode_text(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.alpha_txt.exp() * self.clip.encode_text(tokens, normalize=False)

    def release_state_dict(self) -> dict:
        """The weights in the release's layout: OpenAI CLIP's names plus the three log scalars."""
        state = {k: v.detach().cpu().clone() for k, v in self.clip.state_dict().items()}
        for key in HYPERBOLIC_KEYS:
            state[key] = getattr(self, key).detach().cpu().clone()
        return state

    def preprocess(self):
        """The authors' evaluation transform (``model.image_transform``) at the model's image size."""
        from open_clip.transform import image_transform

        return image_transform(self.model_cfg["vision_cfg"]["image_size"], is_train=False)

    def tokenizer(self):
        """OpenAI CLIP's BPE tokenizer at the model's context length (truncates, keeps the end token)."""
        from open_clip.tokenizer import SimpleTokenizer

        return SimpleTokenizer(context_length=self.model_cfg["text_cfg"]["context_length"])


def _not_html(path: Path) -> None:
    with open(path, "rb") as f:
        head = f.read(256).lstrip().lower()
    if head.startswith((b"<!doctype html", b"<html")):
        raise ValueError(
            f"{path} is an HTML page, not a torch file: Google Drive answered with a page (a quota, a "
            "sign-in or a virus-scan notice) instead of the file; fetch it again later or put the file there by hand"
        )


def _load_torch(path) -> object:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"not found: {path}")
    _not_html(path)
    try:
        return torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - pickle and zip errors of many kinds
        raise ValueError(f"{path}: not a torch file of tensors ({type(e).__name__}: {e})") from e


def release_model_cfg(state: dict) -> dict:
    """open_clip's ``model_cfg`` of a release state dict, read off the shapes as OpenAI's loader
    reads them, with nn.GELU (the authors' ``model.CLIP`` uses it, not OpenAI's QuickGELU)."""
    from curate.scoring.clip import openai_model_cfg

    cfg = openai_model_cfg(state)
    if not isinstance(cfg["vision_cfg"]["layers"], int):
        raise ValueError("a HYPE checkpoint has a ViT image tower, this one a ResNet")
    cfg["quick_gelu"] = False
    return cfg


def read_release(path) -> tuple[HyperbolicCLIP, dict]:
    """The hyperbolic CLIP of a release weights file (``ckpt.pt``), in eval mode, and a record of
    what was read (``model_cfg``, the three scalars' values, ``ignored`` entries)."""
    state = _load_torch(path)
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not state:
        raise ValueError(f"{path}: not a state dict")
    if next(iter(state)).startswith("module."):
        state = {k[len("module.") :]: v for k, v in state.items()}
    missing = [k for k in HYPERBOLIC_KEYS if k not in state]
    if missing:
        raise ValueError(f"{path}: no {', '.join(missing)}: not a hyperbolic (MERU-style) CLIP checkpoint")
    try:
        model_cfg = release_model_cfg(state)
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from e
    model = HyperbolicCLIP(model_cfg, *(float(state[k]) for k in HYPERBOLIC_KEYS))
    own = model.clip.state_dict()
    absent = [k for k in own if k not in state]
    if absent:
        raise ValueError(f"{path}: the CLIP weights lack {len(absent)} entries, e.g. {absent[:3]}")
    ignored = sorted(k for k in state if k not in own and k not in HYPERBOLIC_KEYS)
    try:
        model.clip.load_state_dict({k: state[k] for k in own}, strict=True)
    except RuntimeError as e:
        raise ValueError(f"{path}: the weights do not fit the architecture read off them: {e}") from e
    if ignored:
        log.warning("%s: %d entries are not CLIP weights and are ignored: %s", path, len(ignored), ignored[:5])
    model.eval()
    record = {
        "model_cfg": model_cfg,
        "curvature": float(model.c.detach()),
        "alpha_img": float(model.alpha_img.detach().exp()),
        "alpha_txt": float(model.alpha_txt.detach().exp()),
        "ignored": ignored,
    }
    return model, record


def save_release(model: HyperbolicCLIP, path) -> Path:
    """Write ``model`` as a release weights file (`read_release` reads it back)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(model.release_state_dict(), tmp)
    tmp.replace(path)
    return path


def read_reference(path, dim: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The reference set of a ``reference.pt``: ``(images [R, D], texts [R', D])`` tangent vectors,
    float32; ``dim`` (the model's embedding width), when given, must be ``D``."""
    ref = _load_torch(path)
    if not isinstance(ref, dict) or "img" not in ref or "txt" not in ref:
        raise ValueError(f"{path}: not a HYPE reference set (a dict with 'img' and 'txt')")
    img = np.asarray(torch.as_tensor(ref["img"]).float().numpy(), dtype=np.float32)
    txt = np.asarray(torch.as_tensor(ref["txt"]).float().numpy(), dtype=np.float32)
    if img.ndim != 2 or txt.ndim != 2 or img.shape[1] != txt.shape[1] or 0 in (img.shape[0], txt.shape[0]):
        raise ValueError(f"{path}: reference 'img' {img.shape} and 'txt' {txt.shape} are not two non-empty [R, D]")
    if dim is not None and img.shape[1] != dim:
        raise ValueError(f"{path}: reference vectors have {img.shape[1]} dimensions, the model {dim}")
    return img, txt


def save_reference(images, texts, path) -> Path:
    """Write a reference set in the release's format (``{"img", "txt"}`` float32 tensors)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    ref = {
        "img": torch.as_tensor(np.asarray(images, np.float32)),
        "txt": torch.as_tensor(np.asarray(texts, np.float32)),
    }
    torch.save(ref, tmp)
    tmp.replace(path)
    return path


@torch.inference_mode()
def encode(model: HyperbolicCLIP, images, texts, batch_size: int = 256, preprocess=None, tokenizer=None):
    """Tangent vectors ``(image [len(images), D], text [len(texts), D])`` (numpy float32) of PIL
    ``images`` and ``texts`` (either may be empty)."""
    preprocess = preprocess or model.preprocess()
    tokenizer = tokenizer or model.tokenizer()
    device = model.curvature.device
    dim = int(model.model_cfg["embed_dim"])
    out_i, out_t = [], []
    for a in range(0, len(images), batch_size):
        batch = torch.stack([preprocess(im) for im in images[a : a + batch_size]]).to(device)
        out_i.append(model.encode_image(batch).float().cpu().numpy())
    for a in range(0, len(texts), batch_size):
        out_t.append(model.encode_text(tokenizer(list(texts[a : a + batch_size])).to(device)).float().cpu().numpy())
    img = np.concatenate(out_i) if out_i else np.zeros((0, dim), np.float32)
    txt = np.concatenate(out_t) if out_t else np.zeros((0, dim), np.float32)
    return img.astype(np.float32, copy=False), txt.astype(np.float32, copy=False)


def model_files(folder) -> tuple[Path, Path]:
    """The weights and reference files of a trained hyperbolic CLIP's folder (release layout)."""
    folder = Path(folder)
    return folder / CHECKPOINT_NAME, folder / REFERENCE_NAME


def score_chunk(checkpoint, reference, shard_paths: list, batch_size: int = 256, device: str = "cpu"):
    """HYPE's three scores of every kept sample of the pool shards ``shard_paths``, by the
    hyperbolic CLIP of ``checkpoint`` against the reference set ``reference``.

    Returns ``(DataFrame[uid, neg_lorentzian_distance, image_specificity, text_specificity
    (float32)], report)``: one row per kept sample in reading order; ``report`` is the
    `SkipReport` as a dict plus ``model`` (what `read_release` read)."""
    from curate.data.shards import SkipReport, iter_pool_batches

    model, record = read_release(checkpoint)
    model.to(device)
    ref_img, ref_txt = read_reference(reference, dim=int(model.model_cfg["embed_dim"]))
    ref_img_t = torch.as_tensor(ref_img, device=device)
    ref_txt_t = torch.as_tensor(ref_txt, device=device)
    preprocess, tokenizer = model.preprocess(), model.tokenizer()
    report = SkipReport()
    uids: list[str] = []
    columns: dict[str, list[np.ndarray]] = {name: [] for name in HYPE_COLUMNS}
    with torch.inference_mode():
        c = model.c.detach()
        for batch in iter_pool_batches(shard_paths, report, batch_size, desc="hype"):
            img, txt = encode(
                model, [s.image for s in batch], [s.text for s in batch], batch_size, preprocess, tokenizer
            )
            scores = hype_scores(
                torch.as_tensor(img, device=device), torch.as_tensor(txt, device=device), ref_img_t, ref_txt_t, c
            )
            for name in HYPE_COLUMNS:
                columns[name].append(scores[name].cpu().numpy().astype(np.float32))
            uids.extend(s.uid for s in batch)
    frame = pd.DataFrame({"uid": pd.Series(uids, dtype=object)})
    for name in HYPE_COLUMNS:
        frame[name] = np.concatenate(columns[name]) if columns[name] else np.zeros(0, np.float32)
    result = report.as_dict()
    result["model"] = {
        **record,
        "checkpoint": str(checkpoint),
        "reference": str(reference),
        "reference_size": len(ref_img),
    }
    return frame, result
