"""Embedding-based M-FLYT input scores (docs/algorithms.md §6, "Further M-FLYT inputs").

All functions take numpy embeddings, rows L2-normalised (as `curate.scoring.clip.encode` returns them),
and return one float32 score per pool row:

- `s_clip_loss`: s-CLIPLoss / negCLIPLoss (Wang et al. 2024, "CLIPLoss and norm-based data
  selection methods for multimodal contrastive learning", FLYT's reference [49]);
- `normsim_inf`: NormSim_inf, the largest similarity of a pool image to a target set (ImageNet-1k
  train image embeddings in the paper);
- `train_linear_classifier` / `linear_classifier_score`: the linear binary classifiers of FLYT
  App. B.2 ("IN1K-Classifier": ImageNet-train vs pool image embeddings; "CC2M-Classifier":
  CC2M vs pool concatenated image+text embeddings, see `concat_embeddings`).

Everything is deterministic given its seed; work is chunked so memory stays bounded.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from curate.scoring.kinds import S_CLIP_LOSS_BATCH_SIZE, S_CLIP_LOSS_TEMPERATURE

__all__ = [
    "S_CLIP_LOSS_TEMPERATURE",
    "S_CLIP_LOSS_BATCH_SIZE",
    "s_clip_loss",
    "normsim_inf",
    "concat_embeddings",
    "train_linear_classifier",
    "linear_classifier_score",
    "load_linear_classifier",
    "load_flyt_scoring_head",
    "flyt_head_score",
]


_ROW_BLOCK = 2048  # rows of a similarity block held in memory at once


def _as_f32_2d(x, name: str) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim != 2:
        raise ValueError(f"{name} must be 2-D (rows x dim), got shape {x.shape}")
    return np.ascontiguousarray(x, dtype=np.float32)


def _logsumexp_rows(A: np.ndarray, B: np.ndarray, inv_t: float) -> np.ndarray:
    """``log sum_j exp(<A_i, B_j> * inv_t)`` per row i of A, in float64, blocked over A's rows."""
    out = np.empty(A.shape[0], dtype=np.float64)
    for a in range(0, A.shape[0], _ROW_BLOCK):
        z = (A[a : a + _ROW_BLOCK] @ B.T).astype(np.float64) * inv_t
        m = z.max(axis=1, keepdims=True)
        out[a : a + _ROW_BLOCK] = m[:, 0] + np.log(np.exp(z - m).sum(axis=1))
    return out


def s_clip_loss(
    image_emb,
    text_emb,
    batch_size: int = S_CLIP_LOSS_BATCH_SIZE,
    seed: int = 0,
    temperature: float = S_CLIP_LOSS_TEMPERATURE,
    n_repeats: int = 1,
) -> np.ndarray:
    """s-CLIPLoss (= negCLIPLoss, Wang et al. 2024) of every image-text pair.

    FLYT (its related work) describes it as "a variation to the standard CLIP score that
    normalizes it by the example's similarity score with other examples in a batch" and uses
    Wang et al.'s implementation on OpenAI B/32 embeddings (its Table 2 and App. B). The definition
    (Wang et al.'s code, ``cal_new_clip_score``) is minus the temperature-scaled CLIP loss of the
    example inside a random batch ``B`` that contains it::

        C_ij  = <image_i, text_j>
        R_i   = tau/2 * ( log sum_{j in B} exp(C_ij / tau) + log sum_{j in B} exp(C_ji / tau) )
        s_i   = C_ii - R_i                                  (= -tau * CLIPLoss_B(i))

    The sums run over the WHOLE batch, ``j = i`` included. The pool is shuffled with
    ``np.random.default_rng(seed)`` and cut into consecutive batches of ``batch_size`` (the
    last one smaller, as in the reference code); with ``n_repeats > 1`` the score is the mean
    over that many independent partitions (the reference's ``average_num``). ``tau`` defaults
    to 0.01 (:data:`S_CLIP_LOSS_TEMPERATURE`). A batch of one gives ``s_i = 0``.

    Returns float32 scores, higher = better (the score is ranked descending).
    """
    img = _as_f32_2d(image_emb, "image_emb")
    txt = _as_f32_2d(text_emb, "text_emb")
    if img.shape != txt.shape:
        raise ValueError(f"image_emb {img.shape} and text_emb {txt.shape} must have the same shape")
    if batch_size < 1 or n_repeats < 1 or not temperature > 0:
        raise ValueError("batch_size and n_repeats must be >= 1 and temperature > 0")
    n = img.shape[0]
    clip = np.einsum("ij,ij->i", img.astype(np.float64), txt.astype(np.float64))
    inv_t = 1.0 / temperature
    rng = np.random.default_rng(seed)
    norm = np.zeros(n, dtype=np.float64)
    for _ in range(n_repeats):
        perm = rng.permutation(n)
        for a in range(0, n, batch_size):
            idx = perm[a : a + batch_size]
            Im, T = img[idx], txt[idx]
            lse_img = _logsumexp_rows(Im, T, inv_t)  # image i against the batch's texts
            lse_txt = _logsumexp_rows(T, Im, inv_t)  # text i against the batch's images
            norm[idx] += 0.5 * temperature * (lse_img + lse_txt)
    return (clip - norm / n_repeats).astype(np.float32)


def normsim_inf(image_emb, target_emb, chunk_size: int = 4096, target_chunk_size: int = 65536) -> np.ndarray:
    """NormSim_inf of every pool image: ``max_j <image_i, target_j>`` (Wang et al. 2024).

    ``target_emb`` = image embeddings of the target set (ImageNet-1k train in FLYT, App. B; the
    labelled downstream set here). Computed in blocks of ``chunk_size`` pool rows x
    ``target_chunk_size`` target rows with a running maximum. Returns float32.
    """
    img = _as_f32_2d(image_emb, "image_emb")
    tgt = _as_f32_2d(target_emb, "target_emb")
    if tgt.shape[0] == 0:
        raise ValueError("target_emb is empty")
    if img.shape[1] != tgt.shape[1]:
        raise ValueError(f"dimension mismatch: image_emb {img.shape}, target_emb {tgt.shape}")
    out = np.empty(img.shape[0], dtype=np.float32)
    for a in range(0, img.shape[0], chunk_size):
        block = img[a : a + chunk_size]
        best = np.full(block.shape[0], -np.inf, dtype=np.float32)
        for b in range(0, tgt.shape[0], target_chunk_size):
            np.maximum(best, (block @ tgt[b : b + target_chunk_size].T).max(axis=1), out=best)
        out[a : a + chunk_size] = best
    return out


def concat_embeddings(image_emb, text_emb) -> np.ndarray:
    """``[image | text]`` row-wise (float32): the input of the CC2M-vs-pool classifier."""
    img = _as_f32_2d(image_emb, "image_emb")
    txt = _as_f32_2d(text_emb, "text_emb")
    if img.shape[0] != txt.shape[0]:
        raise ValueError(f"row counts differ: {img.shape[0]} vs {txt.shape[0]}")
    return np.concatenate([img, txt], axis=1)


def _cosine_warmup_lr(step: int, base_lr: float, warmup: int, total: int) -> float:
    if step < warmup:
        return base_lr * (step + 1) / warmup
    span = max(1, total - warmup)
    return 0.5 * (1.0 + math.cos(math.pi * (step - warmup) / span)) * base_lr


def train_linear_classifier(
    pos_emb,
    neg_emb,
    seed: int = 0,
    epochs: float = 1.0,
    lr: float = 0.01,
    weight_decay: float = 0.0,
    batch_size: int = 256,
    warmup_steps: int = 500,
    steps: int | None = None,
    balanced: bool = True,
) -> tuple[np.ndarray, float]:
    """Logistic regression ``p(pos | x) = sigmoid(x . w + b)`` trained in torch (FLYT App. B.2).

    ``pos_emb``: embeddings of the "high quality" set (label 1: ImageNet-train images, or CC2M
    image+text concatenations); ``neg_emb``: the pool's (label 0). Mini-batch AdamW
    (``weight_decay`` decoupled, on ``w`` only) with ``batch_size`` examples drawn by a seeded
    shuffle of the union each epoch, a cosine learning rate peaking at ``lr`` after
    ``warmup_steps`` linear warm-up steps (FLYT: batch 256, peak lr 0.01, 500 warm-up steps,
    40K steps -- pass ``steps=40_000``; otherwise ``ceil(epochs * N / batch_size)`` steps).
    ``w, b`` start at zero. With ``balanced`` (default; FLYT does not say) the two classes get
    equal total weight in the loss (positives weighted ``n_neg / n_pos``), so a small positive
    set is not drowned by the pool. Deterministic for a given seed (single-threaded CPU).

    Returns ``(w float32 (D,), b float)``; score pool rows with `linear_classifier_score`.
    """
    pos = _as_f32_2d(pos_emb, "pos_emb")
    neg = _as_f32_2d(neg_emb, "neg_emb")
    if pos.shape[1] != neg.shape[1]:
        raise ValueError(f"dimension mismatch: pos {pos.shape}, neg {neg.shape}")
    if len(pos) == 0 or len(neg) == 0:
        raise ValueError("both classes need at least one example")
    n_pos, n_neg = len(pos), len(neg)
    n = n_pos + n_neg
    total = int(steps) if steps is not None else max(1, math.ceil(epochs * n / batch_size))
    warmup = min(int(warmup_steps), max(0, total - 1))
    X = torch.from_numpy(np.concatenate([pos, neg]))
    y = torch.cat([torch.ones(n_pos), torch.zeros(n_neg)])
    pos_weight = torch.tensor(n_neg / n_pos if balanced else 1.0)
    gen = torch.Generator().manual_seed(int(seed))
    w = torch.zeros(X.shape[1], requires_grad=True)
    b = torch.zeros((), requires_grad=True)
    opt = torch.optim.AdamW(
        [{"params": [w], "weight_decay": weight_decay}, {"params": [b], "weight_decay": 0.0}],
        lr=lr,
        betas=(0.9, 0.999),
    )
    order = torch.randperm(n, generator=gen)
    pos_in_order = 0
    for step in range(total):
        if pos_in_order + batch_size > n and pos_in_order > 0:
            order = torch.randperm(n, generator=gen)
            pos_in_order = 0
        idx = order[pos_in_order : pos_in_order + batch_size]
        pos_in_order += batch_size
        for group in opt.param_groups:
            group["lr"] = _cosine_warmup_lr(step, lr, warmup, total)
        logits = X[idx] @ w + b
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, y[idx], pos_weight=pos_weight)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return w.detach().numpy().astype(np.float32), float(b.detach())


def linear_classifier_score(emb, w, b: float, chunk_size: int = 65536) -> np.ndarray:
    """Classifier logits ``emb @ w + b`` (float32), chunked; higher = more like the positives."""
    X = _as_f32_2d(emb, "emb")
    w = np.asarray(w, dtype=np.float32).reshape(-1)
    if X.shape[1] != w.shape[0]:
        raise ValueError(f"dimension mismatch: emb {X.shape}, w {w.shape}")
    out = np.empty(X.shape[0], dtype=np.float32)
    for a in range(0, X.shape[0], chunk_size):
        out[a : a + chunk_size] = X[a : a + chunk_size] @ w + np.float32(b)
    return out


def load_linear_classifier(path) -> tuple[np.ndarray, float]:
    """``(w, b)`` of a released linear classifier: a ``torch.nn.Linear(D, 1)`` state dict
    (``weight`` (1, D), ``bias`` (1,)), as FLYT's ``IN1K-Classifier.pt`` / ``CC2M-Classifier.pt``
    (formll/M-FLYT-input-scores-models) hold it. Its logit (`linear_classifier_score`) is the
    score: high for the high-quality set (ImageNet's images, CC2M's pairs), FLYT App. B.2."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    try:
        weight, bias = state["weight"], state["bias"]
    except (KeyError, TypeError) as e:
        raise ValueError(f"{path}: not a torch.nn.Linear state dict (weight, bias)") from e
    if weight.ndim != 2 or weight.shape[0] != 1 or bias.numel() != 1:
        raise ValueError(f"{path}: a linear classifier has one output; weight {tuple(weight.shape)}")
    return weight[0].float().numpy(), float(bias.reshape(-1)[0])


def load_flyt_scoring_head(path):
    """FLYT's released E-FLYT scoring model (``scoring_models/flyt.pt`` of formll/FLYT-models: the
    state dict of its ``ScoringModel``, a frozen CLIP ``clip_model.*`` and a one-layer GLU
    ``glu_model.layers.0.{w1,w2,w3}``) as a `curate.selection.flyt.GLUHead`-shaped module over
    ``[normalize(image) | normalize(text)]``: its frozen CLIP is OpenAI's B/32, whose embeddings
    the scorer reads. A training checkpoint (``state_dict``, ``module.`` prefixes) loads too."""
    from torch import nn
    from torch.nn import functional as F

    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    state = {k.removeprefix("module."): v for k, v in state.items()}
    prefix = "glu_model.layers.0."
    layers = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    deeper = [k for k in state if k.startswith("glu_model.layers.") and not k.startswith(prefix)]
    if not layers or deeper:
        raise ValueError(f"{path}: not a one-layer FLYT scoring model (glu_model.layers.0.*)")

    class _Glu(nn.Module):
        def __init__(self):
            super().__init__()
            hidden, in_dim = layers["w1.weight"].shape
            self.w1 = nn.Linear(in_dim, hidden)
            self.w3 = nn.Linear(in_dim, hidden)
            self.w2 = nn.Linear(hidden, layers["w2.weight"].shape[0])

        def forward(self, x):
            return self.w2(F.silu(self.w1(x)) * self.w3(x)).squeeze(-1)

    head = _Glu()
    head.load_state_dict(layers)
    return head.eval()


@torch.no_grad()
def flyt_head_score(head, image_emb, text_emb, chunk_size: int = 65536) -> np.ndarray:
    """A FLYT scoring head's score of each pair: the head over ``[normalize(image) | normalize(text)]``."""
    img = _as_f32_2d(image_emb, "image_emb")
    txt = _as_f32_2d(text_emb, "text_emb")
    out = np.empty(img.shape[0], dtype=np.float32)
    for a in range(0, img.shape[0], chunk_size):
        x = torch.cat(
            [
                torch.nn.functional.normalize(torch.from_numpy(img[a : a + chunk_size]), dim=-1),
                torch.nn.functional.normalize(torch.from_numpy(txt[a : a + chunk_size]), dim=-1),
            ],
            dim=1,
        )
        out[a : a + chunk_size] = head(x).reshape(-1).numpy()
    return out


# ----------------------------------------------------------------------------- in the workflow
#: The embedding scores a scorer entry (``library: embedding``) can name as its ``method``.
EMBEDDING_METHODS = (
    "s_clip_loss",
    "normsim_inf",
    "image_classifier",
    "image_text_classifier",
    "linear_probe",
    "flyt_head",
)
#: The linear classifiers trained here, and what they see: the image embedding, or image and text.
CLASSIFIER_METHODS = ("image_classifier", "image_text_classifier")
#: What a released linear classifier (``linear_probe``) sees, as the trained classifier of that name.
PROBE_FEATURES = {"image": "image_classifier", "image_text": "image_text_classifier"}


def classifier_features(method: str, image_emb, text_emb) -> np.ndarray:
    """A classifier's input rows: the image embeddings (``image_classifier``, FLYT's
    IN1K-Classifier) or ``[image | text]`` (``image_text_classifier``, the CC2M-Classifier)."""
    if method == "image_classifier":
        return _as_f32_2d(image_emb, "image_emb")
    if method == "image_text_classifier":
        return concat_embeddings(image_emb, text_emb)
    raise ValueError(f"{method!r} is not a classifier; known: {', '.join(CLASSIFIER_METHODS)}")


def train_pool_classifier(method: str, pool_embeddings, positive_embeddings, params: dict | None = None):
    """FLYT App. B.2's classifier of a high-quality set (label 1: ``positive_embeddings``, an
    ``(image, text)`` pair of arrays; ImageNet-train images or CC2M pairs) against the pool
    (label 0: ``pool_embeddings``, the same pair over every chunk), by
    `train_linear_classifier` with ``params`` (``steps``, ``lr``, ``batch_size``,
    ``warmup_steps``, ``weight_decay``, ``seed``). Returns ``(w, b)``."""
    params = dict(params or {})
    keys = ("steps", "lr", "batch_size", "warmup_steps", "weight_decay", "seed", "epochs", "balanced")
    return train_linear_classifier(
        classifier_features(method, *positive_embeddings),
        classifier_features(method, *pool_embeddings),
        **{k: params[k] for k in keys if k in params},
    )


def embedding_score_frame(
    method: str,
    uids,
    image_emb,
    text_emb,
    params: dict | None = None,
    target_emb=None,
    seed: int = 0,
    classifier=None,
    head=None,
):
    """One chunk's embedding score file, ``DataFrame[uid, <method> (float32)]``.

    ``s_clip_loss`` takes ``batch_size`` / ``temperature`` / ``n_repeats`` from ``params``; its
    random batches are drawn inside the chunk with ``seed`` (derive it from the chunk so chunks are
    independent; a chunk at least as large as the batch gives batches of the same law as the
    pool's). ``normsim_inf`` needs ``target_emb`` (image embeddings of the target set by the same
    CLIP). The classifiers need their ``classifier = (w, b)``: trained (`train_pool_classifier`)
    or released (``linear_probe``, `load_linear_classifier`; ``params["features"]`` says what it
    sees). ``flyt_head`` needs the released E-FLYT ``head`` (`load_flyt_scoring_head`)."""
    import pandas as pd

    params = dict(params or {})
    if method in CLASSIFIER_METHODS or method == "linear_probe":
        if classifier is None:
            raise ValueError(f"{method} needs its classifier (w, b)")
        seen = PROBE_FEATURES[params["features"]] if method == "linear_probe" else method
        scores = linear_classifier_score(classifier_features(seen, image_emb, text_emb), *classifier)
    elif method == "flyt_head":
        if head is None:
            raise ValueError("flyt_head needs the released scoring model")
        scores = flyt_head_score(head, image_emb, text_emb)
    elif method == "s_clip_loss":
        scores = s_clip_loss(
            image_emb,
            text_emb,
            batch_size=int(params["batch_size"]),
            seed=seed,
            temperature=float(params["temperature"]),
            n_repeats=int(params["n_repeats"]),
        )
    elif method == "normsim_inf":
        if target_emb is None:
            raise ValueError("normsim_inf needs the target set's image embeddings")
        scores = normsim_inf(image_emb, target_emb)
    else:
        raise ValueError(f"unknown embedding score {method!r}; known: {', '.join(EMBEDDING_METHODS)}")
    return pd.DataFrame({"uid": pd.Series(list(uids), dtype=object), method: scores.astype(np.float32)})


def embed_pairs(
    model_source: str, pairs, batch_size: int = 256, device: str = "cpu", precision: str = "bf16"
) -> tuple[np.ndarray, np.ndarray]:
    """L2-normalised ``(image, text)`` embeddings (float32) of (PIL image, caption) pairs, e.g. a
    curated set's (`curate.scoring.captioning.iter_webdataset_pairs`): the CC2M-Classifier's
    positives; on ``device`` (autocast to ``precision`` on CUDA, `curate.devices.inference_autocast`)."""
    from curate.devices import inference_autocast
    from curate.scoring.clip import encode, load_model

    model, preprocess, tokenizer = load_model(model_source, device=device)
    pairs = list(pairs)
    with torch.no_grad(), inference_autocast(device, precision):
        return encode(model, preprocess, tokenizer, [im for im, _ in pairs], [t for _, t in pairs], batch_size)


def embed_labelled_images(
    model_source: str, samples, batch_size: int = 256, device: str = "cpu", precision: str = "bf16"
) -> tuple[np.ndarray, np.ndarray]:
    """``(image embeddings (float32, L2-normalised), labels (int64))`` of a labelled set's
    ``(image, label)`` samples (`curate.data.datasets.iter_labelled`: PIL images or uint8 arrays)
    by the CLIP ``model_source`` (`curate.scoring.clip.load_model`), a batch at a time: NormSim's,
    the IN1K classifier's and the image-based baseline's target set; on ``device`` as `embed_pairs`."""
    from curate.data.datasets import as_pil
    from curate.devices import inference_autocast
    from curate.scoring.clip import encode, load_model

    model, preprocess, tokenizer = load_model(model_source, device=device)
    images, labels, out = [], [], []

    def flush():
        with torch.no_grad(), inference_autocast(device, precision):
            out.append(encode(model, preprocess, tokenizer, images, [], batch_size)[0])
        images.clear()

    for image, label in samples:
        images.append(as_pil(image))
        labels.append(int(label))
        if len(images) >= batch_size:
            flush()
    if images:
        flush()
    dim = out[0].shape[1] if out else 0
    image_emb = np.concatenate(out) if out else np.zeros((0, dim), np.float32)
    return image_emb.astype(np.float32, copy=False), np.asarray(labels, dtype=np.int64)
