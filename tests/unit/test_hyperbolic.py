"""The Lorentz model and HYPE's scores (curate.scoring.hyperbolic; docs/algorithms.md §6.7)
against values computed by hand from closed forms of hyperbolic geometry."""

import math

import pytest
import torch

from curate.scoring import hyperbolic as H


def _t(rows):
    return torch.tensor(rows, dtype=torch.float32)


def test_exp_map0_hand_values():
    # c = 1: |exp0(v)| = sinh(|v|) in the direction of v
    x = H.exp_map0(_t([[1.0, 0.0], [0.0, 2.0], [3.0, 4.0]]), 1.0)
    assert x[0].tolist() == pytest.approx([math.sinh(1.0), 0.0], rel=1e-6)
    assert x[1].tolist() == pytest.approx([0.0, math.sinh(2.0)], rel=1e-6)
    assert x[2].tolist() == pytest.approx([0.6 * math.sinh(5.0), 0.8 * math.sinh(5.0)], rel=1e-6)
    # c = 4: sinh(2|v|) / 2 along v; the time component is cosh(2|v|) / 2
    x = H.exp_map0(_t([[0.5, 0.0]]), 4.0)
    assert x[0, 0].item() == pytest.approx(math.sinh(1.0) / 2, rel=1e-6)
    assert H.time_component(x, 4.0)[0, 0].item() == pytest.approx(math.cosh(1.0) / 2, rel=1e-6)
    # the vertex stays the vertex (the guarded 0/0)
    assert H.exp_map0(_t([[0.0, 0.0]]), 1.0).tolist() == [[0.0, 0.0]]


def test_points_lie_on_the_hyperboloid():
    torch.manual_seed(0)
    for c in (0.3, 1.0, 2.5):
        x = H.exp_map0(torch.randn(8, 5), c)
        # <x, x>_L = -1/c
        assert torch.diagonal(H.lorentz_inner(x, x, c)).tolist() == pytest.approx([-1 / c] * 8, rel=1e-4)


def test_distance_hand_values():
    c = 1.0
    a, b = H.exp_map0(_t([[1.0, 0.0]]), c), H.exp_map0(_t([[-1.0, 0.0]]), c)
    # opposite rays: 1 + 1
    assert H.pair_distance(a, b, c).item() == pytest.approx(2.0, rel=1e-5)
    # a right angle at the vertex (hyperbolic Pythagoras): cosh d = cosh 1 * cosh 2
    p, q = H.exp_map0(_t([[1.0, 0.0]]), c), H.exp_map0(_t([[0.0, 2.0]]), c)
    want = math.acosh(math.cosh(1.0) * math.cosh(2.0))
    assert H.pair_distance(p, q, c).item() == pytest.approx(want, rel=1e-5)
    assert H.distance_matrix(p, q, c)[0, 0].item() == pytest.approx(want, rel=1e-5)
    # from the vertex, exp0(v) lies |v| away whatever the curvature
    for c in (0.5, 1.0, 3.0):
        zero = _t([[0.0, 0.0, 0.0]])
        v = _t([[0.3, -0.4, 1.2]])
        assert H.pair_distance(zero, H.exp_map0(v, c), c).item() == pytest.approx(1.3, rel=1e-5)
    # c = 4 scales distances by 1/sqrt(c): opposite rays of tangent length 1 lie 2 apart
    a, b = H.exp_map0(_t([[1.0, 0.0]]), 4.0), H.exp_map0(_t([[-1.0, 0.0]]), 4.0)
    assert H.pair_distance(a, b, 4.0).item() == pytest.approx(2.0, rel=1e-5)


def test_distance_is_a_metric():
    torch.manual_seed(1)
    c = 0.7
    x, y, z = (H.exp_map0(torch.randn(16, 4), c) for _ in range(3))
    d = H.pair_distance
    assert torch.allclose(d(x, y, c), d(y, x, c))
    assert d(x, x, c).abs().max().item() < 5e-3  # arcosh is steep at 1: float32 rounding of -c<x,x>_L shows
    assert bool((d(x, z, c) <= d(x, y, c) + d(y, z, c) + 1e-4).all())
    # the matrix and the pairwise forms agree on the diagonal
    assert torch.allclose(torch.diagonal(H.distance_matrix(x, y, c)), d(x, y, c), atol=1e-5)


def test_neg_lorentzian_distance():
    it, tt = _t([[1.0, 0.0], [0.5, 0.0]]), _t([[0.0, 2.0], [0.5, 0.0]])
    got = H.neg_lorentzian_distance(it, tt, 1.0)
    assert got[0].item() == pytest.approx(-math.acosh(math.cosh(1.0) * math.cosh(2.0)), rel=1e-5)
    assert got[1].item() == pytest.approx(0.0, abs=2e-3)  # a pair of one point: the maximum, 0


def test_half_aperture_hand_values_and_narrowing():
    x = H.exp_map0(_t([[1.0, 0.0], [2.0, 0.0]]), 1.0)
    got = H.half_aperture(x, 1.0)
    assert got[0].item() == pytest.approx(math.asin(0.2 / math.sinh(1.0)), rel=1e-5)
    assert got[1].item() == pytest.approx(math.asin(0.2 / math.sinh(2.0)), rel=1e-5)
    # MERU/HYPE: the farther from the vertex (the more specific), the narrower the cone
    norms = torch.linspace(0.2, 4.0, 20)[:, None] * _t([[0.6, 0.8]])
    aper = H.half_aperture(H.exp_map0(norms, 1.0), 1.0)
    assert bool((aper[1:] < aper[:-1]).all())
    # within 2K/sqrt(c) of the vertex the cone is capped just below a half-space
    assert H.half_aperture(H.exp_map0(_t([[0.05, 0.0]]), 1.0), 1.0).item() == pytest.approx(math.pi / 2, abs=1e-3)


def test_exterior_angle_hand_values():
    c = 1.0
    x = H.exp_map0(_t([[1.0, 0.0]]), c)
    # y further out on x's ray: straight on, angle 0; y between the vertex and x: straight back, pi
    ys = H.exp_map0(_t([[2.0, 0.0], [0.5, 0.0]]), c)
    got = H.exterior_angle(x, ys, c)[0]
    assert got[0].item() == pytest.approx(0.0, abs=2e-3)
    assert got[1].item() == pytest.approx(math.pi, abs=2e-3)
    # right angle at the vertex, legs a=1 (to x), b=2 (to y): the interior angle A at x has
    # tan A = tanh b / sinh a; the exterior angle is pi - A
    y = H.exp_map0(_t([[0.0, 2.0]]), c)
    want = math.pi - math.atan(math.tanh(2.0) / math.sinh(1.0))
    assert H.exterior_angle(x, y, c)[0, 0].item() == pytest.approx(want, rel=1e-5)
    assert H.paired_exterior_angle(x, y, c)[0].item() == pytest.approx(want, rel=1e-5)


def test_entailment_sign_and_specificities_hand_values():
    c = 1.0
    generic_text = _t([[0.3, 0.0]])  # near the vertex: a wide cone
    image_inside = _t([[1.5, 0.1]])  # further out, nearly on its ray
    image_outside = _t([[0.0, 1.5]])  # off at a right angle
    t = H.exp_map0(generic_text, c)
    inside = H.entailment(t, H.exp_map0(image_inside, c), c)[0, 0].item()
    outside = H.entailment(t, H.exp_map0(image_outside, c), c)[0, 0].item()
    assert inside < 0 < outside
    # outside: pi - atan(tanh 1.5 / sinh 0.3) - asin(0.2 / sinh 0.3)
    want = math.pi - math.atan(math.tanh(1.5) / math.sinh(0.3)) - math.asin(0.2 / math.sinh(0.3))
    assert outside == pytest.approx(want, rel=1e-5)
    # eps_i of an image: the mean over the reference texts of ent(text_r, image)
    ref_text = torch.cat([generic_text, _t([[0.0, 0.3]])])
    eps_i = H.image_specificity(image_outside, ref_text, c).item()
    # the second reference text lies on the image's ray, nearer the vertex: exterior angle 0
    assert eps_i == pytest.approx((want + (0.0 - math.asin(0.2 / math.sinh(0.3)))) / 2, abs=2e-3)
    # eps_t of a text: the mean over the reference images of ent(text, image_r)
    ref_image = torch.cat([image_inside, image_outside])
    eps_t = H.text_specificity(generic_text, ref_image, c).item()
    assert eps_t == pytest.approx((inside + outside) / 2, rel=1e-5)


def test_hype_scores_blocks_and_shapes(monkeypatch):
    torch.manual_seed(2)
    img, txt, ref_i, ref_t = torch.randn(5, 6), torch.randn(5, 6), torch.randn(7, 6), torch.randn(9, 6)
    whole = H.hype_scores(img, txt, ref_i, ref_t, 0.8)
    monkeypatch.setattr(H, "REFERENCE_BLOCK", 2)
    blocked = {
        "image_specificity": H._mean_over_reference(
            H.exp_map0(img, 0.8), H.exp_map0(ref_t, 0.8), 0.8, rows_entail=False, block=2
        ),
        "text_specificity": H._mean_over_reference(
            H.exp_map0(txt, 0.8), H.exp_map0(ref_i, 0.8), 0.8, rows_entail=True, block=2
        ),
    }
    for name, value in blocked.items():
        assert torch.allclose(whole[name], value, atol=1e-5)
    assert set(whole) == {"neg_lorentzian_distance", "image_specificity", "text_specificity"}
    assert all(v.shape == (5,) and v.dtype == torch.float32 for v in whole.values())
    # an image's specificity does not depend on its text, nor a text's on its image
    other = H.hype_scores(img, torch.randn(5, 6), ref_i, ref_t, 0.8)
    assert torch.equal(other["image_specificity"], whole["image_specificity"])
    with pytest.raises(ValueError, match="rows differ"):
        H.hype_scores(img, txt[:3], ref_i, ref_t, 0.8)
    with pytest.raises(ValueError, match="positive"):
        H.exp_map0(img, 0.0)
