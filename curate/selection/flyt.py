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
``(images, labels)``:

- ``images``: a float tensor ``(n, 3, H, W)`` already preprocessed for the reference model, or a
  sequence of PIL images / ``uint8`` ``H x W x 3`` arrays (the driver applies the reference
  model's preprocess);
- ``texts``: a ``LongTensor`` of tokens ``(n, context)`` or a sequence of ``str`` (the driver
  tokenises with the reference model's tokenizer);
- ``head_inputs``: ``(n, k)`` floats: the k pool-standardised scores (M-FLYT, see
  `curate.selection.fusion.zscore` with pool-wide `curate.selection.fusion.column_stats`) or `eflyt_features`
  (E-FLYT);
- ``labels``: int class indices into ``classnames``.

`in_memory_loader` turns arrays into such a loader (the tests; small pools);
`load_downstream_npz` reads `curate.data.synthetic.curated.write_downstream_set`'s npz. A rule over
shards writes its own streaming loader with the same contract.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from curate.data.evalsets import load_downstream_npz
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
    "load_downstream_npz",
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
    tau = tau_ds if torch.is_tensor(tau_ds) else torch.tensor(float(tau_ds), dtype=logits.dtype)
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


def flyt_step(
    reference_model: nn.Module,
    head: nn.Module,
    head_optimizer: torch.optim.Optimizer,
    upstream_batch: tuple[torch.Tensor, torch.Tensor],
    head_inputs: torch.Tensor,
    downstream_batch: tuple[torch.Tensor, torch.Tensor],
    class_texts_tokens: torch.Tensor,
    tau_ds: torch.Tensor | None,
    state: dict,
    hparams: FlytHParams | None = None,
    ref_lr: float | None = None,
    tau_lr: float | None = None,
) -> dict:
    """One FLYT step (§6, the paper's Algorithm 1); updates ``head``, ``tau_ds``, the model, ``state``.

    1. ``w = softmax(head(head_inputs))`` over the upstream batch.
    2. ``g = grad_theta weighted_clip_loss(model_theta(upstream), w)`` with ``create_graph=True``.
    3. ``theta' = functional_adamw_step(theta, g, state, ref_lr, betas, eps, weight_decay)``
       (matrices-only decay; ``state`` carries the reference model's AdamW moments).
    4. Downstream CE at ``theta'``: ``cross_entropy(downstream_logits(img(theta'),
       txt(theta'), tau_ds), labels)`` (mean over the downstream batch), ``class_texts_tokens``
       = the ``(K, context)`` tokens of one drawn template per class (`sample_class_prompts`).
    5. Back-propagate it through ``theta'`` and ``g`` to ``w``, the head and ``tau_ds`` only;
       ``head_optimizer.step()`` (it holds the head's parameters only). A learned ``tau_ds`` is
       stepped as the FLYT code steps it, by the reference model's optimizer: one more
       `functional_adamw_step` on ``state`` (lr ``tau_lr``, default the reference lr; no weight
       decay; its own moments under the name ``tau_ds``), so the shared step counter advances
       again: the reference model's k-th update uses ``t = 2k - 1``, tau_DS's ``t = 2k``
       **(quirk)**; without a learned tau_DS (plain CE) it advances once per step.
    6. ``theta <- theta'`` (detached, written into ``reference_model``) and clamp
       ``logit_scale`` to ``[2, ln 100]`` (quirk: lower bound 2).

    ``reference_model``: an open_clip-style CLIP (``model(image, text)`` returns normalised
    features as a tuple or dict) with a ``logit_scale`` parameter (LOG scale); its trainable
    parameters are theta. ``upstream_batch = (images, tokens)``, ``downstream_batch =
    (images, labels)``. ``ref_lr`` overrides ``hparams.ref_lr`` (the driver's schedule).
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
    ds_images, ds_labels = downstream_batch
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
        ds_img, cls_txt = _features(functional_call(reference_model, new_theta, (ds_images, class_texts_tokens)))
        logits = downstream_logits(ds_img, cls_txt, tau_ds)
        downstream_loss = F.cross_entropy(logits, torch.as_tensor(ds_labels, dtype=torch.long))

    trainable = [p for p in head.parameters() if p.requires_grad]
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
        with torch.no_grad():
            tau_ds.copy_(stepped[TAU_DS_NAME])
        tau_ds.grad = None

    with torch.no_grad():
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
    ``reference_model`` and its AdamW ``adam_state``."""

    head: nn.Module
    tau_ds: float | None
    history: list[dict] = field(default_factory=list)
    reference_model: nn.Module | None = None
    adam_state: dict | None = None


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
    loaded with `curate.scoring.clip.load_model`."""

    def __init__(self, model, device="cpu"):
        if isinstance(model, str):
            from curate.scoring.clip import load_model

            model = load_model(model, device=device)[0]
        self.model = model.to(device).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def __call__(self, images: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        return eflyt_features(self.model.encode_image(images), self.model.encode_text(tokens))


def train_flyt(
    reference,
    upstream: Loader,
    downstream: Loader,
    classnames: Sequence[str],
    templates: Sequence[str],
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
    prepared batch (E-FLYT: `FrozenFeatures` of the augmented images, as the FLYT code).
    Each step draws one template per class (``templates`` with ``{c}``) from a generator
    seeded with ``seed``; the reference and head learning rates follow `cosine_lr` (peaks
    ``ref_lr``/``head_lr``, ``warmup`` steps); the head optimizer is ``torch.optim.AdamW``
    (``betas``, ``eps``; ``head_weight_decay`` on matrices); tau_DS is stepped with the reference
    model's AdamW state (`flyt_step`). Loading the reference (a weightless architecture folder is
    initialised randomly) and building the head run under ``torch.manual_seed(seed)`` in forked
    RNGs, so a run is reproducible. ``log(step, info)`` is called after every step. ``device``:
    where the reference model, the head and every prepared batch live (the images are drawn and
    augmented on the CPU, as ever, then moved).
    """
    hp = hparams or FlytHParams()
    if hp.steps < 1:
        raise ValueError("steps must be >= 1")
    up_stream = _stream(upstream, hp.upstream_batch)
    ds_stream = _stream(downstream, hp.downstream_batch)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        model, preprocess, tokenizer = _load_reference(reference)  # a weightless arch folder inits here
    device = torch.device(device)
    model.to(device).train()

    def prepared(step: int):
        up_images, up_texts, *rest = next(up_stream)
        ds_images, ds_labels = next(ds_stream)
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
        labels = torch.as_tensor(np.asarray(ds_labels), dtype=torch.long).to(device)
        return (up_images, up_tokens), head_inputs, (ds_images, labels)

    batch = prepared(0)
    if not isinstance(head, nn.Module):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(seed))
            head = head(int(batch[1].shape[1]))
    head.to(device).train()
    tau_ds = None if hp.tau_ds_init is None else nn.Parameter(torch.tensor(float(hp.tau_ds_init), device=device))
    decay = [p for p in head.parameters() if p.ndim >= 2]
    no_decay = [p for p in head.parameters() if p.ndim < 2]
    groups = [
        {"params": decay, "weight_decay": hp.head_weight_decay, "base_lr": hp.head_lr},
        {"params": no_decay, "weight_decay": 0.0, "base_lr": hp.head_lr},
    ]
    groups = [g for g in groups if g["params"]]
    optimizer = torch.optim.AdamW(groups, lr=hp.head_lr, betas=tuple(hp.betas), eps=hp.eps)
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
        prompts = sample_class_prompts(classnames, templates, template_gen)
        info = flyt_step(
            model,
            head,
            optimizer,
            upstream_batch,
            head_inputs,
            downstream_batch,
            _prepare_texts(prompts, tokenizer).to(device),
            tau_ds,
            state,
            hp,
            ref_lr=cosine_lr(step, hp.ref_lr, hp.warmup, hp.steps),
            tau_lr=cosine_lr(step, tau_base_lr, hp.warmup, hp.steps),
        )
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
    hidden: int = 1024,
    log: Callable[[int, dict], None] | None = None,
    extractor=None,
    device="cpu",
) -> FlytResult:
    """E-FLYT: `train_flyt` with a `GLUHead` (``hidden`` units) over `eflyt_features` of a FROZEN
    feature extractor. With ``extractor`` (a CLIP module or model source) the features are those
    of the augmented images the reference model sees in each batch, as the FLYT code computes
    them (`FrozenFeatures`); without it the upstream loader yields them as ``head_inputs``. The
    reference model is initialised from the same CLIP as the extractor (OpenAI B/32, §6)."""
    return train_flyt(
        reference_source,
        upstream,
        downstream,
        classnames,
        templates,
        head=lambda k: GLUHead(k, hidden=hidden),
        hparams=hparams,
        seed=seed,
        log=log,
        features=None if extractor is None else FrozenFeatures(extractor, device=device),
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


def save_head(path, head: nn.Module, meta: Mapping[str, Any] | None = None) -> None:
    """Save a `MixingHead` / `GLUHead` (kind, config, state dict, JSON-able ``meta``) with
    ``torch.save``; `load_head` restores it (``weights_only`` loading)."""
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


# ----------------------------------------------------------------------------- on a pool
def read_templates(task_dir) -> list[str]:
    """The zero-shot templates (``{c}`` placeholders) of a clip_benchmark-layout task folder."""
    from pathlib import Path

    lines = (Path(task_dir) / "zeroshot_classification_templates.txt").read_text().splitlines()
    templates = [line for line in lines if line.strip()]
    if not templates:
        raise ValueError(f"{task_dir}: no zero-shot templates")
    return templates


def pool_upstream_arrays(tar_paths: Sequence, uids: Sequence[str], head_inputs) -> tuple[list, list[str], np.ndarray]:
    """The pool samples whose uids are ``uids`` (rows of ``head_inputs``), as
    ``(PIL images, texts, head inputs)`` in reading order of the shards; bad samples are
    skipped as everywhere (`curate.data.shards.iter_pool_samples`), uids not in the shards ignored.

    Holds the images of the scored pool in memory: right for the tiny pool and for a sampled
    slice of a real pool (M-FLYT trains on a stream of batches; pass the shards to draw from)."""
    from curate.data.shards import SkipReport, iter_pool_samples

    row = {uid: i for i, uid in enumerate(uids)}
    X = np.asarray(head_inputs, dtype=np.float32)
    images, texts, rows = [], [], []
    for sample in iter_pool_samples([str(p) for p in tar_paths], SkipReport()):
        i = row.get(sample.uid)
        if i is not None:
            images.append(sample.image)
            texts.append(sample.text)
            rows.append(i)
    return images, texts, X[np.asarray(rows, dtype=np.int64)] if rows else X[:0]


def train_pool_mixer(
    reference_source,
    tar_paths: Sequence,
    uids: Sequence[str],
    head_inputs,
    downstream_npz,
    templates: Sequence[str],
    hparams: FlytHParams,
    seed: int = 0,
    zero_init: bool = False,
    head: str = "mixing",
    hidden: int = 1024,
    log: Callable[[int, dict], None] | None = None,
    extractor: str | None = None,
    device="cpu",
) -> FlytResult:
    """FLYT on a pool (§6): a scoring head over ``head_inputs`` (one row per uid of ``uids``),
    trained against the reference CLIP ``reference_source`` and the labelled downstream set
    ``downstream_npz`` (`load_downstream_npz`; one random template of ``templates`` per class per
    step). Upstream and downstream batches are drawn by seeded permutations.

    ``head="mixing"``: M-FLYT, a `MixingHead` over the pool-standardised scores (the reference is
    a CLIP trained on the unfiltered pool), from ``nn.Linear``'s initialisation (``zero_init``:
    from zero weights, an option no configured fusion uses). ``head="glu"``: E-FLYT, a `GLUHead`
    of ``hidden`` units over `eflyt_features` of the frozen CLIP ``extractor`` (a model source)
    on the augmented images of each batch, as the FLYT code (the reference starts from that
    CLIP); without ``extractor``, over ``head_inputs`` (precomputed embeddings' features).
    ``device``: where the reference, the head and the batches live (`train_flyt`)."""
    images, texts, X = pool_upstream_arrays(tar_paths, uids, head_inputs)
    if not images:
        raise ValueError("none of the scored uids is in the pool shards")
    ds_images, ds_labels, classnames = load_downstream_npz(downstream_npz)
    downstream = in_memory_loader(ds_images, ds_labels, seed=seed + 1)
    if head == "glu":
        upstream = (
            in_memory_loader(images, texts, seed=seed) if extractor else in_memory_loader(images, texts, X, seed=seed)
        )
        return train_eflyt(
            reference_source,
            upstream,
            downstream,
            classnames,
            templates,
            hparams,
            seed=seed,
            hidden=hidden,
            log=log,
            extractor=extractor,
            device=device,
        )
    upstream = in_memory_loader(images, texts, X, seed=seed)
    if head != "mixing":
        raise ValueError(f"unknown head {head!r}; known: mixing, glu")
    return train_mflyt(
        reference_source,
        upstream,
        downstream,
        classnames,
        templates,
        hparams,
        seed=seed,
        zero_init=zero_init,
        log=log,
        device=device,
    )
