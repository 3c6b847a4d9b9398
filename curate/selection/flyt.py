"""FLYT / M-FLYT / E-FLYT (docs/algorithms.md §6): weighted CLIP loss, scoring heads, one-step look-ahead.

Pieces
------
- `weighted_clip_loss`, `clamp_logit_scale_`: the upstream loss and the ``[2, ln 100]`` clamp.
- `MixingHead` (M-FLYT, ``Linear(k, 1)`` over k standardised scores) and `GLUHead` (E-FLYT,
  ``w2(silu(w1 x) * (w3 x))`` over concatenated L2-normalised image and text embeddings,
  `eflyt_features`).
- `downstream_logits`, `sample_class_prompts`: the downstream CE classifier (one randomly drawn
  template per class, seeded).
- `functional_adamw_step`: a differentiable AdamW step ``theta -> theta'`` (graph kept to the grads).
- `flyt_step`: one bilevel step; `train_flyt` / `train_mflyt` / `train_eflyt`: the driver.
- `apply_mixer`, `mixing_weights`, `save_head`, `load_head`: using a trained head.

Data interface of the driver (what a Snakemake rule supplies)
-------------------------------------------------------------
``upstream`` and ``downstream`` are *loaders*: callables ``loader(batch_size, pass_index)``
returning an iterable of batches; the driver calls them again with ``pass_index + 1`` whenever a
pass is exhausted, so a loader is a re-startable, seeded stream (shuffle with
``(seed, pass_index)``). Upstream batches are ``(images, texts, head_inputs)``, downstream batches
``(images, labels)`` (the cross-entropy loss) or ``(images, texts)`` (the CLIP loss):

- ``images``: a float tensor ``(n, 3, H, W)`` already preprocessed for the reference model, or a
  sequence of PIL images / ``uint8`` ``H x W x 3`` arrays (the driver applies the reference
  model's preprocess);
- ``texts``: a ``LongTensor`` of tokens ``(n, context)`` or a sequence of ``str`` (the driver
  tokenises with the reference model's tokenizer);
- ``head_inputs``: ``(n, k)`` floats: the k pool-standardised scores (M-FLYT, see
  `curate.selection.fusion.zscore` with pool-wide `curate.selection.fusion.column_stats`) or `eflyt_features`
  (E-FLYT);
- ``labels``: int class indices into ``classnames``.

`in_memory_loader` turns arrays into such a loader (the tests); on a pool, `pool_loader` streams
the pool's scored samples chunk by chunk and `labelled_loader` a labelled downstream set (or a
group of them, FLYT's E-FLYT-22) from its files, each through a seeded shuffle buffer, as the
FLYT code's webdataset pipelines do.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from curate.training.losses import weighted_clip_loss

__all__ = [
    "LOGIT_SCALE_MIN",
    "LOGIT_SCALE_MAX",
    "TAU_DS_INIT",
    "weighted_clip_loss",
    "clamp_logit_scale_",
    "MixingHead",
    "GLUHead",
    "eflyt_features",
    "downstream_logits",
    "sample_class_prompts",
    "new_adamw_state",
    "matrix_decay_mask",
    "functional_adamw_step",
    "FlytHParams",
    "flyt_step",
    "cosine_lr",
    "in_memory_loader",
    "augmentation_seed",
    "FrozenFeatures",
    "FlytResult",
    "train_flyt",
    "train_mflyt",
    "train_eflyt",
    "apply_mixer",
    "mixing_weights",
    "save_head",
    "load_head",
    "load_head_extractor",
    "downstream_clip_loss",
    "UpstreamChunk",
    "DownstreamSet",
    "pool_loader",
    "labelled_loader",
    "train_pool_mixer",
]

#: FLYT clamps the reference model's log logit scale to [2, ln 100] after each step
#: **(quirk: the lower bound is 2, not 0)**.
LOGIT_SCALE_MIN = 2.0
LOGIT_SCALE_MAX = math.log(100.0)


@torch.no_grad()
def clamp_logit_scale_(logit_scale: torch.Tensor) -> torch.Tensor:
    """In place: clamp a log logit scale to ``[2, ln 100]`` (FLYT's quirk, §6)."""
    return logit_scale.clamp_(LOGIT_SCALE_MIN, LOGIT_SCALE_MAX)


#: Initial downstream log-temperature tau_DS = ln(1 / 0.07) (§6; the CLIP-from-scratch default).
TAU_DS_INIT = math.log(1 / 0.07)
#: tau_DS's name in the reference optimizer's state (its moments beside the model's parameters').
TAU_DS_NAME = "tau_ds"
_LOGIT_SCALE = "logit_scale"


# ----------------------------------------------------------------------------- scoring heads
class MixingHead(nn.Module):
    """M-FLYT's mixing model: ``s = x . a + c`` = ``nn.Linear(k, 1)`` over k input scores.

    The inputs must be standardised over the whole pool (zero mean, unit std per score;
    `curate.selection.fusion.zscore`): FLYT's Table 8 shows standardisation matters, and it makes the
    learned weights comparable (`mixing_weights`, Table 2's "Weight" column). ``forward``
    maps ``(n, k)`` to ``(n,)`` scores (logits of the sampling distribution).
    ``zero_init`` starts from ``a = 0, c = 0`` (uniform upstream weights); the default is
    torch's ``nn.Linear`` initialisation, as in the FLYT code.
    """

    kind = "mixing"

    def __init__(self, k: int, zero_init: bool = False):
        super().__init__()
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        self.k = int(k)
        self.linear = nn.Linear(self.k, 1)
        if zero_init:
            nn.init.zeros_(self.linear.weight)
            nn.init.zeros_(self.linear.bias)

    def config(self) -> dict:
        return {"k": self.k}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x).squeeze(-1)


class GLUHead(nn.Module):
    """E-FLYT's scoring model: the GLU feed-forward layer ``w2(silu(w1 x) * (w3 x))`` (FFN-GLU,
    Shazeer 2020) with biases, ``x`` = concatenated L2-normalised image and text embeddings
    (`eflyt_features`, ``in_dim = 2 * embed_dim``), ``hidden`` units (1024 by default, §6),
    one output. ``forward`` maps ``(n, in_dim)`` to ``(n,)``.
    """

    kind = "glu"

    def __init__(self, in_dim: int, hidden: int = 1024, bias: bool = True):
        super().__init__()
        self.in_dim, self.hidden, self.bias = int(in_dim), int(hidden), bool(bias)
        self.w1 = nn.Linear(self.in_dim, self.hidden, bias=self.bias)
        self.w3 = nn.Linear(self.in_dim, self.hidden, bias=self.bias)
        self.w2 = nn.Linear(self.hidden, 1, bias=self.bias)

    def config(self) -> dict:
        return {"in_dim": self.in_dim, "hidden": self.hidden, "bias": self.bias}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w2(F.silu(self.w1(x)) * self.w3(x)).squeeze(-1)


def _float_tensor(x) -> torch.Tensor:
    return x.float() if torch.is_tensor(x) else torch.as_tensor(np.asarray(x, dtype=np.float32))


def eflyt_features(image_emb, text_emb) -> torch.Tensor:
    """E-FLYT head input: ``[normalize(image) | normalize(text)]`` (float32, ``(n, 2D)``)."""
    img = _float_tensor(image_emb)
    txt = _float_tensor(text_emb)
    if img.shape != txt.shape or img.ndim != 2:
        raise ValueError(f"image_emb {tuple(img.shape)} and text_emb {tuple(txt.shape)} must be equal 2-D shapes")
    return torch.cat([F.normalize(img, dim=-1), F.normalize(txt, dim=-1)], dim=1)


# ----------------------------------------------------------------------------- downstream loss
def _template_choice(n_classes: int, n_templates: int, generator: torch.Generator | None) -> torch.Tensor:
    """One template index per class, uniform with replacement: ``torch.randint(T, (K,), generator)``."""
    if n_templates < 1:
        raise ValueError("need at least one template")
    return torch.randint(n_templates, (n_classes,), generator=generator)


def sample_class_prompts(classnames: Sequence[str], templates: Sequence[str], generator: torch.Generator) -> list[str]:
    """One randomly drawn template per class, filled in (``template.format(c=classname)``).

    The draw is `_template_choice` (``torch.randint(len(templates), (K,), generator=...)``), the
    same rule `downstream_logits` applies to pre-encoded ``(K, T, D)`` template features.
    """
    choice = _template_choice(len(classnames), len(templates), generator)
    return [templates[int(t)].format(c=c) for t, c in zip(choice, classnames)]


def downstream_logits(
    image_features: torch.Tensor,
    class_text_features: torch.Tensor,
    tau_ds: torch.Tensor | float | None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """FLYT's downstream CE logits ``exp(tau_ds) * img . classifier^T`` (§6, paper App. C.8).

    ``class_text_features``: either ``(K, D)`` = the text embedding of the one template already
    drawn for each class, or ``(K, T, D)`` = embeddings of all T templates of every class, of
    which ONE per class is drawn here with ``generator`` (``torch.randint(T, (K,))``, as
    `sample_class_prompts`). The chosen embeddings are L2-normalised to form the classifier;
    ``image_features`` are used as given (the model's normalised features). ``tau_ds`` is the
    learnable LOG temperature (initialised to `TAU_DS_INIT`); ``None`` = plain CE (scale 1, the
    paper's "CE" variant). Returns ``(n, K)`` logits.
    """
    feats = class_text_features
    if feats.ndim == 3:
        choice = _template_choice(feats.shape[0], feats.shape[1], generator).to(feats.device)
        feats = feats[torch.arange(feats.shape[0], device=feats.device), choice]
    elif feats.ndim != 2:
        raise ValueError(f"class_text_features must be (K, D) or (K, T, D), got {tuple(feats.shape)}")
    classifier = F.normalize(feats, dim=-1)
    logits = image_features @ classifier.T
    if tau_ds is None:
        return logits
    tau = tau_ds if torch.is_tensor(tau_ds) else torch.tensor(float(tau_ds), dtype=logits.dtype, device=logits.device)
    return tau.exp() * logits


# ----------------------------------------------------------------------------- functional AdamW
def new_adamw_state() -> dict:
    """Empty AdamW state for `functional_adamw_step`: ``{"step": 0, "exp_avg": {}, "exp_avg_sq": {}}``."""
    return {"step": 0, "exp_avg": {}, "exp_avg_sq": {}}


def matrix_decay_mask(name: str, param: torch.Tensor) -> bool:
    """Default decay rule: decoupled weight decay on matrices only (``ndim >= 2``; §6).

    (open_clip's rule additionally exempts names containing ``bn``/``ln``/``bias``/``logit_scale``;
    for open_clip CLIP models those are all 0-/1-D, so the two rules agree.)
    """
    return param.ndim >= 2


def _decays(decay_mask, name: str, p: torch.Tensor) -> bool:
    if decay_mask is None:
        return matrix_decay_mask(name, p)
    if isinstance(decay_mask, Mapping):
        return bool(decay_mask[name])
    return bool(decay_mask(name, p))


def functional_adamw_step(
    params: Mapping[str, torch.Tensor],
    grads: Mapping[str, torch.Tensor | None],
    state: dict,
    lr: float,
    betas: tuple[float, float] = (0.9, 0.98),
    eps: float = 1e-6,
    weight_decay: float = 0.2,
    decay_mask: Mapping[str, bool] | Callable[[str, torch.Tensor], bool] | None = None,
) -> dict[str, torch.Tensor]:
    """One differentiable AdamW step; returns the new parameters ``theta'`` (a new dict).

    Same arithmetic as ``torch.optim.AdamW`` (non-amsgrad)::

        t += 1;  p <- p * (1 - lr * wd)            (wd = weight_decay where decay_mask, else 0)
        m <- b1 m + (1 - b1) g;   v <- b2 v + (1 - b2) g^2
        p <- p - lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)

    The returned tensors keep the autograd graph to ``params`` and ``grads`` (so a loss at
    ``theta'`` back-propagates to whatever produced the grads, e.g. ``create_graph=True``
    gradients of a weighted loss). ``state`` (`new_adamw_state`) is updated in place with
    DETACHED moments and the step count, so the moments carry across calls without keeping
    old graphs. ``decay_mask``: a ``{name: bool}`` mapping or a ``(name, param) -> bool``
    callable; default `matrix_decay_mask` (matrices only). A ``None`` grad leaves that
    parameter untouched (no decay, no state change), like torch's optimizers. Where ``v == 0``
    (the gradient was exactly 0 at every step so far, hence ``m == 0``) the Adam term is
    exactly 0 and no gradient flows through it (avoids ``sqrt'(0) = inf``; the FLYT code masks
    the same entries).
    """
    b1, b2 = betas
    state["step"] = int(state.get("step", 0)) + 1
    t = state["step"]
    bc1 = 1.0 - b1**t
    bc2_sqrt = math.sqrt(1.0 - b2**t)
    exp_avg, exp_avg_sq = state.setdefault("exp_avg", {}), state.setdefault("exp_avg_sq", {})
    new: dict[str, torch.Tensor] = {}
    for name, p in params.items():
        g = grads.get(name)
        if g is None:
            new[name] = p
            continue
        m_prev = exp_avg.get(name)
        v_prev = exp_avg_sq.get(name)
        m = (1 - b1) * g if m_prev is None else b1 * m_prev + (1 - b1) * g
        v = (1 - b2) * g * g if v_prev is None else b2 * v_prev + (1 - b2) * g * g
        wd = weight_decay if _decays(decay_mask, name, p) else 0.0
        decayed = p * (1.0 - lr * wd) if wd else p
        nonzero = v > 0
        v_safe = torch.where(nonzero, v, torch.ones_like(v))
        denom = v_safe.sqrt() / bc2_sqrt + eps
        update = torch.where(nonzero, (lr / bc1) * m / denom, torch.zeros_like(m))
        new[name] = decayed - update
        exp_avg[name] = m.detach()
        exp_avg_sq[name] = v.detach()
    return new


# ----------------------------------------------------------------------------- one FLYT step
#: FLYT's downstream losses (App. C.8): cross-entropy over the classes, or the CLIP loss.
DOWNSTREAM_LOSSES = ("ce", "clip")


@dataclass
class FlytHParams:
    """FLYT hyper-parameters (§6 defaults; every one overridable).

    ``tau_ds_init``: initial downstream log-temperature (`TAU_DS_INIT`, learnable), or ``None``
    for plain CE (scale 1, not learned: the paper's M-FLYT-Base "CE", Tables 7/8).
    ``tau_ds_lr``: peak lr of tau_DS (``None`` = ``ref_lr``). As in the FLYT code, tau_DS is stepped
    by the reference model's AdamW: the same schedule, no weight decay, its own moments and the
    SAME step counter, which therefore advances twice per iteration when tau_DS is learned
    (`flyt_step`) **(quirk)**.
    ``weight_decay`` applies to the reference model's matrices, ``head_weight_decay`` to the
    head's (biases never decay).
    ``downstream_loss``: ``ce`` (cross-entropy over the classes, one drawn template per class) or
    ``clip`` (the CLIP loss of each downstream image against a text of its class, one drawn
    template per image: FLYT App. C.8, E-FLYT-22), both scaled by ``exp(tau_DS)`` (1 without it).
    ``update_reference``: the reference model takes its look-ahead step each iteration (FLYT's
    ``--update_reference_model``); false: it stays at its initialisation (Table 12, "only scoring
    model"), as the FLYT code then runs it: its lr is not scheduled (the peak lr throughout), its
    AdamW moments and step counter still advance, and tau_DS is not learned (the code writes its
    step into the parameters it does not copy back) **(quirk)**.
    ``train_extractor``: E-FLYT's feature extractor is trained with the head (FLYT's
    ``--train_full_scoring``, Table 12), by the head's optimizer.
    """

    steps: int = 5000
    warmup: int = 100
    ref_lr: float = 5e-5
    head_lr: float = 1e-3
    weight_decay: float = 0.2
    head_weight_decay: float = 0.2
    betas: tuple[float, float] = (0.9, 0.98)
    eps: float = 1e-6
    upstream_batch: int = 4096
    downstream_batch: int = 3072
    tau_ds_init: float | None = TAU_DS_INIT
    tau_ds_lr: float | None = None
    downstream_loss: str = "ce"
    update_reference: bool = True
    train_extractor: bool = False

    def __post_init__(self):
        if self.downstream_loss not in DOWNSTREAM_LOSSES:
            raise ValueError(f"downstream_loss must be one of {DOWNSTREAM_LOSSES}, got {self.downstream_loss!r}")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["betas"] = list(self.betas)
        return d


def _features(out) -> tuple[torch.Tensor, torch.Tensor]:
    if isinstance(out, Mapping):
        return out["image_features"], out["text_features"]
    return out[0], out[1]


def _attention_ctx():
    """Math SDPA kernel: the fused CPU/flash kernels have no double backward."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    return sdpa_kernel(SDPBackend.MATH)


def downstream_clip_loss(image_features: torch.Tensor, text_features: torch.Tensor, tau_ds) -> torch.Tensor:
    """FLYT's downstream CLIP loss (App. C.8) as open_clip's ``ClipLoss`` computes it: the mean of
    the image-to-text and text-to-image cross-entropies of ``scale * img . txt^T`` against the
    diagonal, ``scale = exp(tau_ds)`` (1 when ``tau_ds`` is None). (The paper writes a sum over
    the batch; the code's mean differs only in the gradient's scale.)"""
    logits = image_features @ text_features.T
    if tau_ds is not None:
        tau = (
            tau_ds if torch.is_tensor(tau_ds) else torch.tensor(float(tau_ds), dtype=logits.dtype, device=logits.device)
        )
        logits = tau.exp() * logits
    labels = torch.arange(logits.shape[0], device=logits.device)
    return (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2


def flyt_step(
    reference_model: nn.Module,
    head: nn.Module,
    head_optimizer: torch.optim.Optimizer,
    upstream_batch: tuple[torch.Tensor, torch.Tensor],
    head_inputs: torch.Tensor,
    downstream_batch: tuple[torch.Tensor, torch.Tensor],
    class_texts_tokens: torch.Tensor | None,
    tau_ds: torch.Tensor | None,
    state: dict,
    hparams: FlytHParams | None = None,
    ref_lr: float | None = None,
    tau_lr: float | None = None,
    scoring_parameters: Sequence[torch.Tensor] | None = None,
) -> dict:
    """One FLYT step (§6, the paper's Algorithm 1); updates ``head``, ``tau_ds``, the model, ``state``.

    1. ``w = softmax(head(head_inputs))`` over the upstream batch.
    2. ``g = grad_theta weighted_clip_loss(model_theta(upstream), w)`` with ``create_graph=True``.
    3. ``theta' = functional_adamw_step(theta, g, state, ref_lr, betas, eps, weight_decay)``
       (matrices-only decay; ``state`` carries the reference model's AdamW moments).
    4. Downstream loss at ``theta'`` (``hparams.downstream_loss``, mean over the downstream
       batch): ``ce``: ``cross_entropy(downstream_logits(img(theta'), txt(theta'), tau_ds),
       labels)`` with ``downstream_batch = (images, labels)`` and ``class_texts_tokens`` the
       ``(K, context)`` tokens of one drawn template per class (`sample_class_prompts`); ``clip``:
       `downstream_clip_loss` with ``downstream_batch = (images, tokens)``, one text per image.
    5. Back-propagate it through ``theta'`` and ``g`` to ``w``, the scoring model (the head, or
       ``scoring_parameters``: the head and a trained feature extractor, whose graph to
       ``head_inputs`` is kept) and ``tau_ds`` only; ``head_optimizer.step()``. A learned
       ``tau_ds`` is stepped as the FLYT code steps it, by the reference model's optimizer: one
       more `functional_adamw_step` on ``state`` (lr ``tau_lr``, default the reference lr; no
       weight decay; its own moments under the name ``tau_ds``), so the shared step counter
       advances again: the reference model's k-th update uses ``t = 2k - 1``, tau_DS's
       ``t = 2k`` **(quirk)**; without a learned tau_DS (plain CE) it advances once per step.
    6. ``theta <- theta'`` (detached, written into ``reference_model``) and clamp
       ``logit_scale`` to ``[2, ln 100]`` (quirk: lower bound 2). With
       ``hparams.update_reference`` false neither ``theta`` nor ``tau_ds`` takes its new value
       (the moments and the step counter advance all the same), as in the FLYT code.

    ``reference_model``: an open_clip-style CLIP (``model(image, text)`` returns normalised
    features as a tuple or dict) with a ``logit_scale`` parameter (LOG scale); its trainable
    parameters are theta. ``ref_lr`` overrides ``hparams.ref_lr`` (the driver's schedule).
    Returns floats: ``upstream_loss`` (at theta), ``downstream_loss`` (at theta'),
    ``logit_scale`` (after the clamp), ``logit_scale_unclamped``, ``tau_ds``, ``ref_lr``,
    ``weight_max``, ``weight_entropy``.
    """
    hp = hparams or FlytHParams()
    lr = hp.ref_lr if ref_lr is None else float(ref_lr)
    learned_tau = tau_ds is not None and tau_ds.requires_grad
    if learned_tau and any(p is tau_ds for g in head_optimizer.param_groups for p in g["params"]):
        raise ValueError("tau_ds is stepped with the reference model's optimizer state, not the head's")
    named = {n: p for n, p in reference_model.named_parameters() if p.requires_grad}
    if _LOGIT_SCALE not in named:
        raise ValueError(f"the reference model has no trainable parameter {_LOGIT_SCALE!r}")
    theta = {n: p.detach().requires_grad_(True) for n, p in named.items()}
    up_images, up_texts = upstream_batch
    ds_images, ds_targets = downstream_batch
    head_inputs = _float_tensor(head_inputs)
    from torch.func import functional_call

    with _attention_ctx():
        scores = head(head_inputs).reshape(-1)
        if scores.shape[0] != up_images.shape[0]:
            raise ValueError(f"head gave {scores.shape[0]} scores for an upstream batch of {up_images.shape[0]}")
        w = torch.softmax(scores, dim=0)
        img_f, txt_f = _features(functional_call(reference_model, theta, (up_images, up_texts)))
        upstream_loss = weighted_clip_loss(img_f, txt_f, theta[_LOGIT_SCALE], w)
        names = list(theta)
        grads = torch.autograd.grad(upstream_loss, [theta[n] for n in names], create_graph=True, allow_unused=True)
        new_theta = functional_adamw_step(
            theta,
            dict(zip(names, grads)),
            state,
            lr,
            betas=tuple(hp.betas),
            eps=hp.eps,
            weight_decay=hp.weight_decay,
        )
        if hp.downstream_loss == "clip":
            ds_img, ds_txt = _features(functional_call(reference_model, new_theta, (ds_images, ds_targets)))
            downstream_loss = downstream_clip_loss(ds_img, ds_txt, tau_ds)
        else:
            if class_texts_tokens is None:
                raise ValueError("the cross-entropy downstream loss needs the class prompts' tokens")
            ds_img, cls_txt = _features(functional_call(reference_model, new_theta, (ds_images, class_texts_tokens)))
            logits = downstream_logits(ds_img, cls_txt, tau_ds)
            downstream_loss = F.cross_entropy(logits, torch.as_tensor(ds_targets, dtype=torch.long))

    trainable = [p for p in (scoring_parameters or head.parameters()) if p.requires_grad]
    if learned_tau:
        trainable.append(tau_ds)
        tau_ds.grad = None
    head_optimizer.zero_grad(set_to_none=True)
    downstream_loss.backward(inputs=trainable)
    head_optimizer.step()
    if learned_tau:  # the reference model's optimizer steps tau_DS too (its step counter advances)
        stepped = functional_adamw_step(
            {TAU_DS_NAME: tau_ds.detach()},
            {TAU_DS_NAME: tau_ds.grad},
            state,
            lr if tau_lr is None else float(tau_lr),
            betas=tuple(hp.betas),
            eps=hp.eps,
            weight_decay=0.0,
        )
        if hp.update_reference:
            with torch.no_grad():
                tau_ds.copy_(stepped[TAU_DS_NAME])
        tau_ds.grad = None

    with torch.no_grad():
        if hp.update_reference:
            for n, p in named.items():
                p.copy_(new_theta[n].detach())
        unclamped = float(named[_LOGIT_SCALE].detach())
        clamp_logit_scale_(named[_LOGIT_SCALE])
        wd = w.detach()
        entropy = float(-(wd * wd.clamp_min(1e-30).log()).sum())
    return {
        "upstream_loss": float(upstream_loss.detach()),
        "downstream_loss": float(downstream_loss.detach()),
        "logit_scale": float(named[_LOGIT_SCALE].detach()),
        "logit_scale_unclamped": unclamped,
        "tau_ds": None if tau_ds is None else float(tau_ds.detach()),
        "ref_lr": lr,
        "weight_max": float(wd.max()),
        "weight_entropy": entropy,
    }


# ----------------------------------------------------------------------------- driver
def cosine_lr(step: int, base_lr: float, warmup: int, steps: int) -> float:
    """open_clip's cosine schedule: linear warm-up ``base_lr * (step + 1) / warmup`` for
    ``step < warmup``, then ``0.5 * (1 + cos(pi * (step - warmup) / (steps - warmup))) * base_lr``."""
    if step < warmup:
        return base_lr * (step + 1) / warmup
    span = max(1, steps - warmup)
    return 0.5 * (1 + math.cos(math.pi * (step - warmup) / span)) * base_lr


Loader = Callable[[int, int], Iterable[tuple]]


def _take(arr, idx: np.ndarray):
    if torch.is_tensor(arr):
        return arr[torch.as_tensor(idx, dtype=torch.long)]
    if isinstance(arr, np.ndarray):
        return arr[idx]
    return [arr[int(i)] for i in idx]


def in_memory_loader(*arrays, seed: int = 0) -> Loader:
    """A loader (module docstring) over equally long arrays/tensors/lists: pass ``p`` is a
    permutation drawn from ``np.random.default_rng([seed, p])``, cut into full batches (the
    incomplete tail is dropped; a set smaller than the batch is yielded whole)."""
    if not arrays:
        raise ValueError("no arrays")
    n = len(arrays[0])
    if n == 0 or any(len(a) != n for a in arrays):
        raise ValueError(f"arrays must be non-empty and equally long, got {[len(a) for a in arrays]}")

    def loader(batch_size: int, pass_index: int) -> Iterator[tuple]:
        perm = np.random.default_rng([int(seed), int(pass_index)]).permutation(n)
        bs = min(int(batch_size), n)
        for a in range(0, n - bs + 1, bs):
            idx = perm[a : a + bs]
            yield tuple(_take(arr, idx) for arr in arrays)

    return loader


def _stream(loader: Loader, batch_size: int) -> Iterator[tuple]:
    pass_index = 0
    while True:
        empty = True
        for batch in loader(batch_size, pass_index):
            empty = False
            yield batch
        if empty:
            raise ValueError(f"loader yielded no batch in pass {pass_index}")
        pass_index += 1


def _prepare_images(images, preprocess) -> torch.Tensor:
    if torch.is_tensor(images) and images.is_floating_point():
        return images
    if preprocess is None:
        raise ValueError("raw images need the reference model's preprocess")
    from PIL import Image

    out = []
    for im in images:
        if not isinstance(im, Image.Image):
            im = Image.fromarray(np.asarray(im, dtype=np.uint8))
        out.append(preprocess(im))
    return torch.stack(out)


def _prepare_texts(texts, tokenizer) -> torch.Tensor:
    if torch.is_tensor(texts):
        return texts
    if tokenizer is None:
        raise ValueError("raw texts need the reference model's tokenizer")
    return tokenizer([str(t) for t in texts])


@dataclass
class FlytResult:
    """What `train_flyt` returns: the trained ``head``, final ``tau_ds`` (None = plain CE),
    per-step ``history`` (`flyt_step`'s dicts plus ``step`` and ``head_lr``), the updated
    ``reference_model`` and its AdamW ``adam_state``, and E-FLYT's feature extractor when it
    was trained with the head (``extractor``, else None)."""

    head: nn.Module
    tau_ds: float | None
    history: list[dict] = field(default_factory=list)
    reference_model: nn.Module | None = None
    adam_state: dict | None = None
    extractor: nn.Module | None = None


def _load_reference(reference):
    """``(model, preprocess, tokenizer)``; a model source is loaded with open_clip's TRAINING
    preprocessing (random resized crop), which the FLYT code gives its up- and downstream batches."""
    if isinstance(reference, str):
        from curate.scoring.clip import load_model

        return load_model(reference, train_preprocess=True)
    if isinstance(reference, nn.Module):
        return reference, None, None
    model, preprocess, tokenizer = reference
    return model, preprocess, tokenizer


def augmentation_seed(seed: int, step: int) -> int:
    """The torch seed of step ``step``'s image augmentation (open_clip's random resized crop draws
    from torch's global generator; it runs in a forked generator seeded with this)."""
    return int(np.random.SeedSequence([int(seed), int(step), 0xF1]).generate_state(1)[0])


class FrozenFeatures:
    """E-FLYT's head inputs computed during training, as the FLYT code does: `eflyt_features` of a
    FROZEN CLIP's embeddings of the batch the reference model sees (the same augmented images and
    tokens). ``model``: an open_clip CLIP (``encode_image``, ``encode_text``), or a model source
    loaded with `curate.scoring.clip.load_model`. With ``trainable`` the CLIP is the scoring
    model's too (FLYT's ``--train_full_scoring``): its features keep their graph and
    `parameters` are trained with the head."""

    def __init__(self, model, trainable: bool = False, device="cpu"):
        if isinstance(model, str):
            from curate.scoring.clip import load_model

            model = load_model(model, device=device)[0]
        self.trainable = bool(trainable)
        model = model.to(device)
        self.model = model.train() if self.trainable else model.eval()
        for p in self.model.parameters():
            p.requires_grad_(self.trainable)

    def parameters(self) -> list[torch.Tensor]:
        """The extractor's trained parameters (none when frozen)."""
        return [p for p in self.model.parameters() if p.requires_grad]

    def __call__(self, images: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        with torch.set_grad_enabled(self.trainable), _attention_ctx():
            return eflyt_features(self.model.encode_image(images), self.model.encode_text(tokens))


def _scoring_groups(module: nn.Module, weight_decay: float, lr: float, only_matrices: bool = True) -> list[dict]:
    """AdamW parameter groups of a scoring model's part: decay on matrices only (open_clip's rule:
    biases, gains, norms and the logit scale do not decay)."""
    params = [p for p in module.parameters() if p.requires_grad]
    decay = [p for p in params if p.ndim >= 2]
    no_decay = [p for p in params if p.ndim < 2]
    groups = [
        {"params": decay, "weight_decay": weight_decay, "base_lr": lr},
        {"params": no_decay, "weight_decay": 0.0, "base_lr": lr},
    ]
    return [g for g in groups if g["params"]]


def train_flyt(
    reference,
    upstream: Loader,
    downstream: Loader,
    classnames: Sequence[str] | None,
    templates: Sequence[str] | None,
    head: nn.Module | Callable[[int], nn.Module],
    hparams: FlytHParams | None = None,
    seed: int = 0,
    log: Callable[[int, dict], None] | None = None,
    features: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    device="cpu",
) -> FlytResult:
    """Train a FLYT scoring head for ``hparams.steps`` `flyt_step`s.

    ``reference``: a `curate.scoring.clip.load_model` source (``local-dir:...``, architecture name,
    ``hf-hub:...``), loaded with open_clip's training preprocessing (random resized crop), an
    ``(model, preprocess, tokenizer)`` triple, or a bare module (then the loaders must give
    tensors). It is trained in place (train mode) as FLYT's reference model.
    ``upstream`` / ``downstream``: loaders (module docstring) asked for
    ``hparams.upstream_batch`` / ``hparams.downstream_batch``-sized batches. Raw images of both go
    through ``preprocess`` (the FLYT code uses the training preprocessing for both), seeded per
    step (`augmentation_seed`). ``head``: a module, or a factory ``k -> module`` called with the
    width of the first batch's head inputs. Upstream batches are ``(images, texts, head_inputs)``,
    or ``(images, texts)`` with ``features(images, tokens)`` computing the head inputs from the
    prepared batch (E-FLYT: `FrozenFeatures` of the augmented images, as the FLYT code; a
    trainable one's parameters join the head's optimizer).
    Downstream batches are ``(images, labels)`` for the cross-entropy loss, each step drawing one
    template per class (``templates`` with ``{c}`` over ``classnames``) from a generator seeded
    with ``seed``, or ``(images, texts)`` for the CLIP loss (``hparams.downstream_loss``; the
    loader drew each text, `labelled_loader`). The reference and head learning rates follow
    `cosine_lr` (peaks ``ref_lr``/``head_lr``, ``warmup`` steps; a reference that is not updated
    keeps its peak lr, as the FLYT code does not schedule it); the head optimizer is
    ``torch.optim.AdamW`` (``betas``, ``eps``; ``head_weight_decay`` on matrices); tau_DS is
    stepped with the reference model's AdamW state (`flyt_step`). Loading the reference (a
    weightless architecture folder is initialised randomly) and building the head run under
    ``torch.manual_seed(seed)`` in forked RNGs, so a run is reproducible. ``log(step, info)`` is
    called after every step. ``device``: where the reference model, the head and every prepared
    batch live (the images are drawn and augmented on the CPU, as ever, then moved).
    """
    hp = hparams or FlytHParams()
    if hp.steps < 1:
        raise ValueError("steps must be >= 1")
    clip_loss = hp.downstream_loss == "clip"
    if not clip_loss and (not classnames or not templates):
        raise ValueError("the cross-entropy downstream loss needs the class names and templates")
    up_stream = _stream(upstream, hp.upstream_batch)
    ds_stream = _stream(downstream, hp.downstream_batch)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        model, preprocess, tokenizer = _load_reference(reference)  # a weightless arch folder inits here
    device = torch.device(device)
    model.to(device).train()

    def prepared(step: int):
        up_images, up_texts, *rest = next(up_stream)
        ds_images, ds_targets = next(ds_stream)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(augmentation_seed(seed, step))
            up_images = _prepare_images(up_images, preprocess)
            ds_images = _prepare_images(ds_images, preprocess)
        up_images, ds_images = up_images.to(device), ds_images.to(device)
        up_tokens = _prepare_texts(up_texts, tokenizer).to(device)
        if rest and rest[0] is not None:
            head_inputs = _float_tensor(rest[0]).to(device)
        elif features is not None:
            head_inputs = features(up_images, up_tokens)
        else:
            raise ValueError("an upstream batch without head inputs needs `features`")
        if clip_loss:
            targets = _prepare_texts(ds_targets, tokenizer).to(device)
        else:
            targets = torch.as_tensor(np.asarray(ds_targets), dtype=torch.long).to(device)
        return (up_images, up_tokens), head_inputs, (ds_images, targets)

    batch = prepared(0)
    if not isinstance(head, nn.Module):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(seed))
            head = head(int(batch[1].shape[1]))
    head.to(device).train()
    tau_ds = None if hp.tau_ds_init is None else nn.Parameter(torch.tensor(float(hp.tau_ds_init), device=device))
    groups = _scoring_groups(head, hp.head_weight_decay, hp.head_lr)
    extractor_params = list(features.parameters()) if hasattr(features, "parameters") else []
    if extractor_params:
        groups += _scoring_groups(features.model, hp.head_weight_decay, hp.head_lr)
    optimizer = torch.optim.AdamW(groups, lr=hp.head_lr, betas=tuple(hp.betas), eps=hp.eps)
    scoring_parameters = [p for g in groups for p in g["params"]]
    tau_base_lr = hp.ref_lr if hp.tau_ds_lr is None else hp.tau_ds_lr
    template_gen = torch.Generator().manual_seed(int(seed))
    state = new_adamw_state()
    history: list[dict] = []
    for step in range(hp.steps):
        if step > 0:
            batch = prepared(step)
        upstream_batch, head_inputs, downstream_batch = batch
        for g in optimizer.param_groups:
            g["lr"] = cosine_lr(step, g["base_lr"], hp.warmup, hp.steps)
        if clip_loss:
            class_tokens = None
        else:
            prompts = sample_class_prompts(classnames, templates, template_gen)
            class_tokens = _prepare_texts(prompts, tokenizer).to(device)
        scheduled = hp.update_reference
        info = flyt_step(
            model,
            head,
            optimizer,
            upstream_batch,
            head_inputs,
            downstream_batch,
            class_tokens,
            tau_ds,
            state,
            hp,
            ref_lr=cosine_lr(step, hp.ref_lr, hp.warmup, hp.steps) if scheduled else hp.ref_lr,
            tau_lr=cosine_lr(step, tau_base_lr, hp.warmup, hp.steps) if scheduled else tau_base_lr,
            scoring_parameters=scoring_parameters,
        )
        if extractor_params:
            extractor_scale = getattr(features.model, _LOGIT_SCALE, None)
            if isinstance(extractor_scale, torch.Tensor):
                clamp_logit_scale_(extractor_scale.data)  # as the FLYT code clamps the scoring CLIP's
        info = {"step": step, "head_lr": optimizer.param_groups[0]["lr"], **info}
        history.append(info)
        if log is not None:
            log(step, info)
    head.to("cpu").eval()  # saved and applied on the CPU (`save_head`, `apply_mixer`)
    return FlytResult(
        head=head,
        tau_ds=None if tau_ds is None else float(tau_ds.detach()),
        history=history,
        reference_model=model,
        adam_state=state,
        extractor=features.model if extractor_params else None,
    )


def train_mflyt(
    reference_source,
    upstream: Loader,
    downstream: Loader,
    classnames: Sequence[str],
    templates: Sequence[str],
    hparams: FlytHParams | None = None,
    seed: int = 0,
    zero_init: bool = False,
    log: Callable[[int, dict], None] | None = None,
    device="cpu",
) -> FlytResult:
    """M-FLYT: `train_flyt` with a `MixingHead` over the k standardised scores that the upstream
    loader yields as ``head_inputs`` (k taken from the first batch). The reference model should
    be a CLIP trained on the unfiltered pool (§6). Returns a `FlytResult`; ``result.head`` goes
    to `save_head` / `apply_mixer`."""
    return train_flyt(
        reference_source,
        upstream,
        downstream,
        classnames,
        templates,
        head=lambda k: MixingHead(k, zero_init=zero_init),
        hparams=hparams,
        seed=seed,
        log=log,
        device=device,
    )


def train_eflyt(
    reference_source,
    upstream: Loader,
    downstream: Loader,
    classnames: Sequence[str],
    templates: Sequence[str],
    hparams: FlytHParams | None = None,
    seed: int = 0,
    hidden: int | None = None,
    log: Callable[[int, dict], None] | None = None,
    extractor=None,
    device="cpu",
) -> FlytResult:
    """E-FLYT: `train_flyt` with a `GLUHead` (``hidden`` units; None: its input width, FLYT's
    ``hidden_dim_mod`` 1) over `eflyt_features` of a feature extractor, frozen unless
    ``hparams.train_extractor``. With ``extractor`` (a CLIP module or model source) the features
    are those of the augmented images the reference model sees in each batch, as the FLYT code
    computes them (`FrozenFeatures`); without it the upstream loader yields them as
    ``head_inputs``. FLYT initialises the reference model from the same CLIP as the extractor
    (OpenAI B/32, §6)."""
    hp = hparams or FlytHParams()
    if hp.train_extractor and extractor is None:
        raise ValueError("training the feature extractor needs the extractor")
    return train_flyt(
        reference_source,
        upstream,
        downstream,
        classnames,
        templates,
        head=lambda k: GLUHead(k, hidden=k if hidden is None else hidden),
        hparams=hp,
        seed=seed,
        log=log,
        features=None if extractor is None else FrozenFeatures(extractor, trainable=hp.train_extractor, device=device),
        device=device,
    )


# ----------------------------------------------------------------------------- using a head
@torch.no_grad()
def apply_mixer(head: nn.Module, standardised_scores, chunk_size: int = 65536) -> np.ndarray:
    """Head logits (float32, one per row) of ``(N, k)`` inputs, ``chunk_size`` rows at a time.

    For a `MixingHead` the inputs must be standardised with the POOL-WIDE statistics used in
    training (`curate.selection.fusion.column_stats` over all chunks, then `curate.selection.fusion.zscore`), so that
    every chunk is scored on the same scale; the logits are the log-probabilities (up to a
    constant) of FLYT's sampling distribution (SCS takes them as is).
    """
    X = standardised_scores
    n = len(X)
    out = np.empty(n, dtype=np.float32)
    was_training = head.training
    head.eval()
    try:
        for a in range(0, n, chunk_size):
            block = torch.as_tensor(np.asarray(X[a : a + chunk_size], dtype=np.float32))
            if block.ndim != 2:
                raise ValueError(f"inputs must be 2-D (N, k), got {tuple(block.shape)}")
            out[a : a + chunk_size] = head(block).reshape(-1).numpy()
    finally:
        head.train(was_training)
    return out


def mixing_weights(head: MixingHead) -> np.ndarray:
    """The k input weights of a `MixingHead` (Table 2's "Weight" column), float64."""
    return head.linear.weight.detach().double().numpy().reshape(-1)


_HEADS = {"mixing": MixingHead, "glu": GLUHead}


def save_head(path, head: nn.Module, meta: Mapping[str, Any] | None = None, extractor=None) -> None:
    """Save a `MixingHead` / `GLUHead` (kind, config, state dict, JSON-able ``meta``) with
    ``torch.save``; `load_head` restores it (``weights_only`` loading). ``extractor``: E-FLYT's
    feature extractor trained with the head, ``(open_clip config dict, model)``, saved beside it
    (`load_head_extractor`)."""
    import json
    import os
    from pathlib import Path

    kind = getattr(head, "kind", None)
    if kind not in _HEADS:
        raise ValueError(f"cannot save a {type(head).__name__}; only {sorted(_HEADS)} heads")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    obj = {
        "kind": kind,
        "config": head.config(),
        "state_dict": {k: v.detach().cpu().clone() for k, v in head.state_dict().items()},
        "meta": json.dumps(dict(meta or {}), sort_keys=True),
    }
    if extractor is not None:
        config, model = extractor
        obj["extractor_config"] = json.dumps(config, sort_keys=True)
        obj["extractor_state_dict"] = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def load_head(path) -> tuple[nn.Module, dict]:
    """``(head in eval mode, meta)`` saved by `save_head`."""
    import json

    obj = torch.load(path, map_location="cpu", weights_only=True)
    head = _HEADS[obj["kind"]](**obj["config"])
    head.load_state_dict(obj["state_dict"])
    head.eval()
    return head, json.loads(obj["meta"])


def load_head_extractor(path):
    """``(model, preprocess, tokenizer)`` of the feature extractor saved with a head
    (`save_head`), None when the head was trained over a frozen one."""
    import tempfile
    from pathlib import Path

    from curate.scoring.clip import CONFIG_NAME, load_model

    obj = torch.load(path, map_location="cpu", weights_only=True)
    if "extractor_config" not in obj:
        return None
    with tempfile.TemporaryDirectory(prefix="extractor-") as folder:
        (Path(folder) / CONFIG_NAME).write_text(obj["extractor_config"])
        model, preprocess, tokenizer = load_model(f"local-dir:{folder}")
    model.load_state_dict(obj["extractor_state_dict"])
    model.eval()
    return model, preprocess, tokenizer


# ----------------------------------------------------------------------------- on a pool
def read_templates(task_dir) -> list[str]:
    """The zero-shot templates (``{c}`` placeholders) of a clip_benchmark-layout task folder."""
    from pathlib import Path

    lines = (Path(task_dir) / "zeroshot_classification_templates.txt").read_text().splitlines()
    templates = [line for line in lines if line.strip()]
    if not templates:
        raise ValueError(f"{task_dir}: no zero-shot templates")
    return templates


#: Samples a streaming loader shuffles among (the FLYT code's webdataset buffers hold 10 000
#: upstream samples and 50 000 downstream samples of its 22-task set).
UPSTREAM_BUFFER = 10_000
DOWNSTREAM_BUFFER = 10_000


@dataclass
class UpstreamChunk:
    """One pool chunk for FLYT's upstream stream: its shards and, read when the stream reaches it,
    its scored uids with their head inputs (``rows() -> (uids, X)``; ``X`` None when the head's
    inputs are computed from each batch, E-FLYT's frozen extractor)."""

    tar_paths: Sequence
    rows: Callable[[], tuple[Sequence[str], np.ndarray | None]]


def _batches(samples: Iterator[tuple], batch_size: int, rng: np.random.Generator, buffer: int) -> Iterator[list]:
    """Full batches of ``batch_size`` drawn from ``samples`` through a shuffle buffer of
    ``buffer`` (webdataset's shuffle); the incomplete tail is dropped, unless the samples are fewer
    than one batch, which are then yielded together once."""
    pool: list = []
    batch: list = []
    yielded = False

    def draw():
        return pool.pop(int(rng.integers(len(pool))))

    for sample in samples:
        pool.append(sample)
        if len(pool) >= buffer:
            batch.append(draw())
            if len(batch) == batch_size:
                yield batch
                yielded, batch = True, []
    while pool:
        batch.append(draw())
        if len(batch) == batch_size:
            yield batch
            yielded, batch = True, []
    if batch and not yielded:
        yield batch


def pool_loader(chunks: Sequence[UpstreamChunk], seed: int = 0, buffer: int = UPSTREAM_BUFFER) -> Loader:
    """FLYT's upstream loader over a pool (module docstring): pass ``p`` visits the chunks in a
    permuted order and each chunk's shards in a permuted order (both from
    ``default_rng([seed, p])``), keeps the samples whose uid is scored (bad ones skipped and
    counted as everywhere, `curate.data.shards.iter_pool_samples`) and draws them through a
    shuffle buffer of ``buffer`` samples. Batches are ``(images, texts, head inputs)``, or
    ``(images, texts)`` where a chunk has no ``X``. Only one chunk's rows are held at a time, so
    a pool of any size streams."""
    from curate.data.shards import SkipReport, iter_pool_samples

    if not chunks:
        raise ValueError("no pool chunks")

    def loader(batch_size: int, pass_index: int) -> Iterator[tuple]:
        rng = np.random.default_rng([int(seed), int(pass_index)])

        def samples():
            for c in rng.permutation(len(chunks)):
                chunk = chunks[int(c)]
                uids, X = chunk.rows()
                row = {uid: i for i, uid in enumerate(uids)}
                tars = [str(chunk.tar_paths[int(i)]) for i in rng.permutation(len(chunk.tar_paths))]
                for sample in iter_pool_samples(tars, SkipReport()):
                    i = row.get(sample.uid)
                    if i is not None:
                        yield sample.image, sample.text, None if X is None else X[i]

        for batch in _batches(samples(), int(batch_size), rng, buffer):
            images, texts, rows = zip(*batch)
            if rows[0] is None:
                yield list(images), list(texts)
            else:
                yield list(images), list(texts), np.stack(rows).astype(np.float32)

    return loader


@dataclass
class DownstreamSet:
    """One labelled downstream set: its `curate.data.datasets` entry and folder, its class names
    and zero-shot templates (``{c}``), and its size (a group draws its members by it)."""

    entry: dict
    folder: Any
    classnames: Sequence[str]
    templates: Sequence[str]
    size: int = 0


def labelled_loader(
    sets: Sequence[DownstreamSet],
    loss: str = "ce",
    balanced: bool = False,
    seed: int = 0,
    buffer: int = DOWNSTREAM_BUFFER,
) -> Loader:
    """FLYT's downstream loader over labelled sets (module docstring). One set: pass ``p`` streams
    it shuffled (`curate.data.datasets.iter_labelled`, seed from ``(seed, p)``) into full
    batches. Several (FLYT's E-FLYT-22): every sample first picks its set, in proportion to the
    sets' sizes, or uniformly with ``balanced`` (FLYT's imbalanced and balanced 22 tasks), then
    takes that set's next sample; each set cycles through its own shuffled passes, so the stream
    never ends. Batches are ``(images, labels)`` for the cross-entropy loss (one set), or
    ``(images, texts)`` for the CLIP loss, each text one template of its set drawn uniformly and
    filled with the sample's class name (as FLYT's sets carry one sampled template per image)."""
    from curate.data.datasets import iter_labelled

    if not sets:
        raise ValueError("no downstream set")
    if loss not in DOWNSTREAM_LOSSES:
        raise ValueError(f"unknown downstream loss {loss!r}")
    if loss == "ce" and len(sets) > 1:
        raise ValueError("the cross-entropy loss reads one labelled set (several sets take the CLIP loss)")

    def cycle(index: int, pass_index: int) -> Iterator[tuple]:
        passes = 0
        while True:
            empty = True
            shuffle_seed = int(np.random.SeedSequence([int(seed), pass_index, index, passes]).generate_state(1)[0])
            for sample in iter_labelled(sets[index].entry, sets[index].folder, shuffle_seed, buffer):
                empty = False
                yield sample
            if empty:
                raise ValueError(f"downstream set {sets[index].folder} is empty")
            passes += 1

    def text(rng: np.random.Generator, index: int, label: int) -> str:
        member = sets[index]
        return member.templates[int(rng.integers(len(member.templates)))].format(c=member.classnames[label])

    def loader(batch_size: int, pass_index: int) -> Iterator[tuple]:
        rng = np.random.default_rng([int(seed), int(pass_index), 0xD5])
        if len(sets) == 1:
            samples = iter_labelled(sets[0].entry, sets[0].folder, int(rng.integers(2**31)), buffer)
            for batch in _batches(samples, int(batch_size), rng, 1):
                images, labels = zip(*batch)
                targets = [text(rng, 0, int(y)) for y in labels] if loss == "clip" else np.asarray(labels)
                yield list(images), targets
            return
        sizes = np.asarray([max(1, int(s.size)) for s in sets], dtype=np.float64)
        p = np.full(len(sets), 1.0 / len(sets)) if balanced else sizes / sizes.sum()
        streams = [cycle(i, int(pass_index)) for i in range(len(sets))]
        while True:
            picks = rng.choice(len(sets), size=int(batch_size), p=p)
            images, texts = [], []
            for index in picks:
                image, label = next(streams[int(index)])
                images.append(image)
                texts.append(text(rng, int(index), int(label)))
            yield images, texts

    return loader


def train_pool_mixer(
    reference_source,
    upstream: Sequence[UpstreamChunk],
    downstream: Sequence[DownstreamSet],
    hparams: FlytHParams,
    seed: int = 0,
    zero_init: bool = False,
    head: str = "mixing",
    hidden: int | None = None,
    log: Callable[[int, dict], None] | None = None,
    extractor: str | None = None,
    balanced: bool = False,
    device="cpu",
) -> FlytResult:
    """FLYT on a pool (§6): a scoring head trained against the reference CLIP
    ``reference_source`` on a stream of the pool's scored samples (`pool_loader` over the
    ``upstream`` chunks, seed ``seed``) and of the labelled ``downstream`` sets (`labelled_loader`,
    seed ``seed + 1``; the cross-entropy loss draws one template of the set per class per step).

    ``head="mixing"``: M-FLYT, a `MixingHead` over the chunks' score rows (standardised over the
    pool, FLYT; the reference is a CLIP trained on the unfiltered pool), from ``nn.Linear``'s
    initialisation (``zero_init``: from zero weights, an option no configured fusion uses).
    ``head="glu"``: E-FLYT, a `GLUHead` of ``hidden`` units over `eflyt_features` of the CLIP
    ``extractor`` (a model source; frozen unless ``hparams.train_extractor``) on the augmented
    images of each batch, as the FLYT code (FLYT starts the reference from that CLIP); without
    ``extractor``, over the chunks' rows (precomputed embeddings' features). ``device``: where the reference, the
    head and the batches live (`train_flyt`)."""
    if head not in ("mixing", "glu"):
        raise ValueError(f"unknown head {head!r}; known: mixing, glu")
    chunks = list(upstream)
    if extractor is not None:  # the head's inputs come from each batch: the chunks give their uids
        chunks = [UpstreamChunk(c.tar_paths, _uids_only(c.rows)) for c in chunks]
    if not any(len(c.rows()[0]) for c in chunks):
        raise ValueError("none of the pool's chunks has a scored uid")
    up = pool_loader(chunks, seed=seed)
    down = labelled_loader(downstream, hparams.downstream_loss, balanced, seed=seed + 1)
    first = downstream[0]
    classnames, templates = (first.classnames, first.templates) if len(downstream) == 1 else (None, None)
    if head == "glu":
        return train_eflyt(
            reference_source,
            up,
            down,
            classnames,
            templates,
            hparams,
            seed,
            hidden,
            log,
            extractor=extractor,
            device=device,
        )
    return train_mflyt(
        reference_source,
        up,
        down,
        classnames,
        templates,
        hparams,
        seed=seed,
        zero_init=zero_init,
        log=log,
        device=device,
    )


def _uids_only(rows: Callable) -> Callable:
    def uids():
        return rows()[0], None

    return uids
