"""A tiny hyperbolic CLIP trained here with MERU's objective: the tiny pool's analogue of HYPE's
released model (docs/algorithms.md §6.7), saved in the release's two files so that
`curate.scoring.hype` reads it as it reads the authors' (``ckpt.pt``, ``reference.pt``).

MERU (Desai et al., ICML 2023; facebookresearch/meru, ``MERU.forward``), which HYPE's model
follows:

- the towers' outputs times ``exp(alpha)`` (one per tower, initialised to ``1/sqrt(D)``, capped
  at 1) are lifted onto the hyperboloid of curvature ``-c`` (``c`` learned, initialised to 1 and
  kept in ``[0.1, 10]``) by the exponential map at the vertex;
- contrastive loss: cross-entropy of ``-d_L / tau`` between every image and every text of the
  batch, both directions averaged, ``1/tau = exp(logit_scale)`` initialised to 1/0.07 and capped
  at 100;
- entailment loss: ``mean_k max(0, ext(text_k, image_k) - aper(text_k))`` over the batch's pairs,
  weighted 0.2 (MERU's ``entail_weight``): each caption's cone should hold its image;
- AdamW without weight decay on gains, biases, ``logit_scale``, the alphas and the curvature;
  linear warm-up then cosine.

The budget is the scorer's recipe (the tiny CLIP scorers' ``tiny-scorer``): ``samples_seen //
batch_size`` steps of full batches drawn from the curated set in a seeded order, epoch after
epoch, with open_clip's training augmentation. The reference set is ``reference_size`` pairs of
the same curated set (a seeded sample) encoded by the trained model: what the released reference
set holds is not documented, so the tiny one is a sample of the model's own training data.
"""

from __future__ import annotations

import json
import logging
import math
import random
from pathlib import Path

import numpy as np
import torch

from curate.scoring.hype import (
    HyperbolicCLIP,
    encode,
    model_files,
    read_release,
    release_model_cfg,
    save_reference,
    save_release,
)
from curate.scoring.hyperbolic import distance_matrix, exp_map0, half_aperture, paired_exterior_angle
from curate.training.loop import decode_rgb, lr_at, read_samples

log = logging.getLogger(__name__)

#: MERU's settings (``configs/train_meru_*.py``, ``MERU.__init__``).
ENTAIL_WEIGHT = 0.2
CURVATURE_INIT = 1.0
LOGIT_SCALE_MAX = math.log(100.0)
#: A hair above 1 for the distance's arcosh in the loss, where its derivative is finite.
_MIN_COSH = 1.0 + 1e-6
_NO_DECAY = ("logit_scale", "curvature", "alpha_img", "alpha_txt")


def meru_loss(model: HyperbolicCLIP, images: torch.Tensor, tokens: torch.Tensor, entail_weight: float = ENTAIL_WEIGHT):
    """MERU's loss of one batch of paired ``images`` and ``tokens``: ``(loss, parts)`` with the
    contrastive and entailment terms in ``parts``. Clamps the curvature, alphas and logit scale
    to MERU's ranges first, as MERU does at every step."""
    with torch.no_grad():
        model.curvature.clamp_(math.log(CURVATURE_INIT / 10), math.log(CURVATURE_INIT * 10))
        model.alpha_img.clamp_(max=0.0)
        model.alpha_txt.clamp_(max=0.0)
        model.clip.logit_scale.clamp_(max=LOGIT_SCALE_MAX)
    c = model.c
    image = exp_map0(model.encode_image(images), c)
    text = exp_map0(model.encode_text(tokens), c)
    scale = model.clip.logit_scale.exp()
    logits = -scale * distance_matrix(image, text, c, min_cosh=_MIN_COSH)
    targets = torch.arange(logits.shape[0], device=logits.device)
    contrastive = 0.5 * (
        torch.nn.functional.cross_entropy(logits, targets) + torch.nn.functional.cross_entropy(logits.T, targets)
    )
    entail = torch.clamp(paired_exterior_angle(text, image, c) - half_aperture(text, c), min=0).mean()
    loss = contrastive + entail_weight * entail if entail_weight > 0 else contrastive
    return loss, {"contrastive": float(contrastive.detach()), "entailment": float(entail.detach())}


def _param_groups(model: torch.nn.Module, wd: float) -> list[dict]:
    def exclude(name: str, p) -> bool:
        return p.ndim < 2 or "bn" in name or "ln" in name or "bias" in name or name.endswith(_NO_DECAY)

    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    return [
        {"params": [p for n, p in named if exclude(n, p)], "weight_decay": 0.0},
        {"params": [p for n, p in named if not exclude(n, p)], "weight_decay": wd},
    ]


def _pairs(shards: list, seed: int, epoch: int):
    """Decodable ``(PIL image, caption)`` pairs of the curated set, in a seeded order per epoch."""
    for data, text, _ in read_samples(shards, order_seed=seed * 1009 + epoch):
        image = decode_rgb(data)
        if image is not None:
            yield image, text


def _batches(shards: list, seed: int, batch_size: int, total_steps: int):
    """``total_steps`` full batches of pairs, epoch after epoch (a partial batch is dropped)."""
    step, epoch = 0, 0
    while step < total_steps:
        batch, produced = [], False
        for pair in _pairs(shards, seed, epoch):
            batch.append(pair)
            if len(batch) == batch_size:
                produced = True
                yield epoch, batch
                batch = []
                step += 1
                if step >= total_steps:
                    return
        if not produced:
            raise ValueError(f"the curated set does not fill one batch of {batch_size}")
        epoch += 1


def reference_pairs(shards: list, n: int, seed: int) -> list:
    """``n`` pairs of the curated set (fewer if it holds fewer): a seeded sample."""
    pairs = list(_pairs(shards, seed, epoch=-1))
    random.Random(f"hype-reference-{seed}").shuffle(pairs)
    return pairs[:n]


def train_hyperbolic_clip(
    recipe: dict,
    curated_set_dir,
    arch: str,
    out_dir,
    seed: int,
    reference_size: int,
    entail_weight: float = ENTAIL_WEIGHT,
    threads: int = 1,
) -> dict:
    """Train a hyperbolic CLIP of architecture ``arch`` on the curated set with MERU's loss and
    write ``ckpt.pt`` and ``reference.pt`` into ``out_dir`` (the release's layout). ``recipe``
    gives ``samples_seen``, ``batch_size``, ``lr``, ``wd``, ``warmup`` (steps), ``beta1``,
    ``beta2``, ``eps``. Returns a summary, also written as ``train_summary.json``."""
    from open_clip.transform import image_transform

    from curate.scoring.clip import arch_open_clip_config, same_architecture

    torch.set_num_threads(int(threads))
    torch.manual_seed(int(seed))
    shards = sorted(Path(curated_set_dir).glob("*.tar"))
    if not shards:
        raise ValueError(f"{curated_set_dir} holds no shards")
    model_cfg = dict(arch_open_clip_config(arch)["model_cfg"], quick_gelu=False)
    model = HyperbolicCLIP(model_cfg, curvature=math.log(CURVATURE_INIT))
    # the release's format carries no head counts (its reader takes OpenAI's width / 64): refuse an
    # architecture that would not come back as itself
    found = release_model_cfg(model.release_state_dict())
    if not same_architecture(found, model_cfg):
        raise ValueError(f"architecture {arch!r} does not survive the release's format (read back as {found})")
    model.train()
    batch_size = int(recipe["batch_size"])
    total_steps = max(1, int(recipe["samples_seen"]) // batch_size)
    warmup = int(recipe["warmup"])
    opt = torch.optim.AdamW(
        _param_groups(model, float(recipe["wd"])),
        lr=float(recipe["lr"]),
        betas=(float(recipe["beta1"]), float(recipe["beta2"])),
        eps=float(recipe["eps"]),
    )
    train_transform = image_transform(model_cfg["vision_cfg"]["image_size"], is_train=True)
    tokenizer = model.tokenizer()
    first = last = None
    for step, (epoch, batch) in enumerate(_batches(shards, int(seed), batch_size, total_steps)):
        for group in opt.param_groups:
            group["lr"] = lr_at(step, total_steps, warmup, float(recipe["lr"]))
        images = torch.stack([train_transform(image) for image, _ in batch])
        tokens = tokenizer([text for _, text in batch])
        loss, parts = meru_loss(model, images, tokens, entail_weight)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        last = {"loss": float(loss.detach()), **parts}
        first = first or last
        if step % 25 == 0 or step + 1 == total_steps:
            log.info(
                "epoch %d step %d/%d loss %.4f (contrastive %.4f, entailment %.4f) c %.3f",
                epoch,
                step + 1,
                total_steps,
                last["loss"],
                parts["contrastive"],
                parts["entailment"],
                float(model.c.detach()),
            )
    model.eval()
    out_dir = Path(out_dir)
    checkpoint, reference = model_files(out_dir)
    save_release(model, checkpoint)
    pairs = reference_pairs(shards, int(reference_size), int(seed))
    ref_img, ref_txt = encode(model, [p[0] for p in pairs], [p[1] for p in pairs])
    save_reference(ref_img, ref_txt, reference)
    _, record = read_release(checkpoint)  # what the scorer will read
    summary = {
        "arch": arch,
        "steps": total_steps,
        "batch_size": batch_size,
        "entail_weight": entail_weight,
        "first": first,
        "final": last,
        "curvature": record["curvature"],
        "alpha_img": record["alpha_img"],
        "alpha_txt": record["alpha_txt"],
        "reference_size": len(pairs),
        "reference_mean_norm": {
            "img": float(np.linalg.norm(ref_img, axis=1).mean()),
            "txt": float(np.linalg.norm(ref_txt, axis=1).mean()),
        },
    }
    (out_dir / "train_summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary
