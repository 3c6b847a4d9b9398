"""The weighted CLIP loss (FLYT, docs/algorithms.md §6), shared by FLYT's mixers, the weighted-CLIP
trainer and BLIP's contrastive term: uniform weights give the standard CLIP loss; a zero weight
removes the example from the batch."""

from __future__ import annotations

import math

import torch


def _direction_loss(L: torch.Tensor, w: torch.Tensor, log_w: torch.Tensor, log_w_own: torch.Tensor) -> torch.Tensor:
    # lse_i = log sum_j w_j exp(L_ij); zero weights enter as log w_j = -inf
    lse = torch.logsumexp(L + log_w[None, :], dim=1)
    inner = log_w_own + torch.diagonal(L) - lse  # log(w_i e^{L_ii} / sum_j w_j e^{L_ij})
    term = torch.where(w > 0, w * inner, torch.zeros_like(inner))
    return -term.sum()


def weighted_clip_loss(
    image_features: torch.Tensor,
    text_features: torch.Tensor,
    logit_scale: torch.Tensor,
    weights: torch.Tensor,
) -> torch.Tensor:
    """FLYT's weighted CLIP loss (docs/algorithms.md §6).

    ``L = exp(logit_scale) * image_features @ text_features.T`` where ``logit_scale`` is
    the model's LOG parameter (this function exponentiates it; open_clip's ``ClipLoss``
    takes the exponentiated value instead). Per direction (images -> texts uses ``L``,
    texts -> images uses ``L.T``)::

        loss = -sum_i w_i * log(w_i * exp(L_ii) / sum_j w_j * exp(L_ij))

    a SUM over the batch (the weights also sit in the denominator); the total is the
    mean of the two directions. ``weights`` (shape ``B``) are non-negative and sum to 1
    (a softmax output). With ``w_i = 1/B`` the ``log w`` terms cancel and the loss is the
    standard CLIP loss (mean cross-entropy); a zero weight removes that example from the
    batch (its row term is 0 and it drops out of every denominator). Features are used
    as given (normalise them first, as open_clip models do).

    Gradients flow to the features, ``logit_scale`` and ``weights``. At an exact zero
    weight the true derivative of ``w log w`` is -inf; the implementation returns a
    finite gradient there (NaN-free "double where"), softmax weights are never 0.
    """
    if weights.ndim != 1 or weights.shape[0] != image_features.shape[0]:
        raise ValueError(f"weights must have shape ({image_features.shape[0]},), got {tuple(weights.shape)}")
    L = logit_scale.exp() * image_features @ text_features.T
    w = weights.to(L.dtype)
    pos = w > 0
    safe = torch.where(pos, w, torch.ones_like(w))
    log_safe = torch.log(safe)
    log_w = torch.where(pos, log_safe, torch.full_like(w, -math.inf))
    loss_i = _direction_loss(L, w, log_w, log_safe)
    loss_t = _direction_loss(L.T, w, log_w, log_safe)
    return (loss_i + loss_t) / 2
