"""Tests of curate.selection.flyt (docs/algorithms.md §6)."""

import math

import pytest
import torch

torch.set_num_threads(1)

from curate.selection.flyt import LOGIT_SCALE_MAX, LOGIT_SCALE_MIN, clamp_logit_scale_, weighted_clip_loss  # noqa: E402


def _features(B, D, seed=0):
    g = torch.Generator().manual_seed(seed)
    img = torch.nn.functional.normalize(torch.randn(B, D, generator=g), dim=-1)
    txt = torch.nn.functional.normalize(torch.randn(B, D, generator=g), dim=-1)
    return img, txt


def test_hand_computed_two_examples():
    # img = txt = I, logit_scale = log(1) -> L = I; w = [.25, .75]. L is symmetric so
    # both directions are equal:
    #   row 0: .25 * log(.25e / (.25e + .75)) = .25 * log(.679570 / 1.429570) = .25 * -.743668
    #          = -.185917
    #   row 1: .75 * log(.75e / (.25 + .75e)) = .75 * log(2.038711 / 2.288711) = -.086753
    #   loss = -(-.185917 - .086753) = .272670
    eye = torch.eye(2, dtype=torch.float64)
    w = torch.tensor([0.25, 0.75], dtype=torch.float64)
    loss = weighted_clip_loss(eye, eye, torch.tensor(0.0, dtype=torch.float64), w)
    e = math.e
    expected = -(0.25 * math.log(0.25 * e / (0.25 * e + 0.75)) + 0.75 * math.log(0.75 * e / (0.25 + 0.75 * e)))
    assert expected == pytest.approx(0.272670, abs=1e-6)
    assert loss.item() == pytest.approx(expected, abs=1e-12)


def test_uniform_weights_equal_open_clip_loss():
    open_clip = pytest.importorskip("open_clip")
    img, txt = _features(16, 32)
    logit_scale = torch.tensor(math.log(1 / 0.07))
    ours = weighted_clip_loss(img, txt, logit_scale, torch.full((16,), 1 / 16))
    ref = open_clip.loss.ClipLoss()(img, txt, logit_scale.exp())
    assert ours.item() == pytest.approx(ref.item(), abs=1e-6)


def test_zero_weight_removes_the_example():
    img, txt = _features(8, 16, seed=1)
    ls = torch.tensor(2.5)
    w = torch.softmax(torch.randn(8, generator=torch.Generator().manual_seed(2)), 0)
    w[3] = 0.0
    keep = [0, 1, 2, 4, 5, 6, 7]
    full = weighted_clip_loss(img, txt, ls, w)
    removed = weighted_clip_loss(img[keep], txt[keep], ls, w[keep])  # other weights unchanged
    assert torch.isfinite(full)
    assert full.item() == pytest.approx(removed.item(), abs=1e-6)


def test_gradients_flow_to_weights_features_and_scale():
    img, txt = _features(6, 8, seed=3)
    img.requires_grad_(True)
    logits = torch.randn(6, generator=torch.Generator().manual_seed(4), requires_grad=True)
    ls = torch.tensor(2.0, requires_grad=True)
    loss = weighted_clip_loss(img, txt, ls, torch.softmax(logits, 0))
    loss.backward()
    for g in (logits.grad, img.grad, ls.grad):
        assert g is not None and torch.isfinite(g).all() and g.abs().sum() > 0
    # an exactly-zero weight still gives finite gradients
    w = torch.full((6,), 0.2, requires_grad=True)
    with torch.no_grad():
        w[0] = 0.0
    weighted_clip_loss(img.detach(), txt, ls.detach(), w).backward()
    assert torch.isfinite(w.grad).all()


def test_clamp_logit_scale_quirk_lower_bound_two():
    p = torch.nn.Parameter(torch.tensor(0.5))
    clamp_logit_scale_(p)
    assert p.item() == LOGIT_SCALE_MIN == 2.0
    p.data.fill_(10.0)
    clamp_logit_scale_(p)
    assert p.item() == pytest.approx(LOGIT_SCALE_MAX) and LOGIT_SCALE_MAX == pytest.approx(math.log(100))
