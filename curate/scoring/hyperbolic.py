"""The Lorentz model of hyperbolic space and HYPE's three scores (docs/algorithms.md §6.7).

HYPE (Kim et al., "HYPE: Hyperbolic Entailment Filtering for Underspecified Images and Texts",
ECCV 2024) scores an image-text pair with a hyperbolic CLIP in the style of MERU (Desai et al.,
"Hyperbolic Image-Text Representations", ICML 2023). The encoders output vectors ``v`` of the
tangent space at the hyperboloid's vertex; the exponential map lifts them onto the hyperboloid
of curvature ``-c``, kept as its *space* components ``x`` (the time component follows from the
hyperboloid: ``x_time = sqrt(1/c + |x|^2)``):

- ``exp_map0(v, c) = sinh(sqrt(c) |v|) v / (sqrt(c) |v|)``;
- Lorentzian inner product ``<x, y>_L = x . y - x_time y_time``;
- geodesic distance ``d_L(x, y) = arcosh(-c <x, y>_L) / sqrt(c)``;
- half-aperture of the entailment cone at ``x`` (MERU, ``K = 0.1``):
  ``aper(x) = arcsin(2K / (sqrt(c) |x|))``;
- exterior angle at ``x`` of the triangle (origin, x, y):
  ``ext(x, y) = arccos((y_time + x_time c <x, y>_L) / (|x| sqrt((c <x, y>_L)^2 - 1)))``;
- entailment ``ent(x, y) = ext(x, y) - aper(x)``: how far ``y`` lies outside the cone of ``x``
  (negative inside). MERU trains with ``max(0, ent(text, image))``.

HYPE's scores of a pair ``(i, t)`` (the authors' released code, ``hyperbolic.py``):

- ``-d_L(i, t)``, the negative Lorentzian distance (its ``similarity``);
- image specificity ``eps_i = mean_r ent(t_r, i)`` over the reference set's texts ``t_r``;
- text specificity ``eps_t = mean_r ent(t, i_r)`` over the reference set's images ``i_r``.

Every function takes the tangent vectors (the encoders' outputs scaled by the model's
``alpha``), as HYPE's code does, and computes in float32 on the device of its input, with the
authors' numerical guards (the ``sinh`` argument clamped to ``[1e-8, asinh(2**15)]``, the
``arcsin`` and ``arccos`` arguments to ``[-1 + 1e-8, 1 - 1e-8]``, ``1e-8`` added to the cone
denominators). One guard differs: the ``arcosh`` argument of the distance is clamped to ``>= 1``
(MERU's), where HYPE's code clamps it to ``>= 1e-8``; ``-c <x, y>_L >= 1`` holds exactly, so the
two agree wherever HYPE's is defined and this one is never NaN when rounding takes the argument
a hair below 1 (a pair of identical points).
"""

from __future__ import annotations

import math

import torch

#: MERU's and HYPE's minimum radius ``K`` of the entailment cones (``hyperbolic.py``: ``K = 0.1``).
CONE_K = 0.1
_EPS = 1e-8
_SINH_MAX = math.asinh(2**15)
#: Reference rows compared with a block of samples at once (bounds the ``n x R`` matrices).
REFERENCE_BLOCK = 4096

__all__ = [
    "CONE_K",
    "exp_map0",
    "time_component",
    "lorentz_inner",
    "pair_distance",
    "neg_lorentzian_distance",
    "half_aperture",
    "distance_matrix",
    "exterior_angle",
    "paired_exterior_angle",
    "entailment",
    "image_specificity",
    "text_specificity",
    "hype_scores",
]


def _tensor(x, device=None) -> torch.Tensor:
    t = torch.as_tensor(x, device=device)
    return t.float()


def _curv(c, like: torch.Tensor) -> torch.Tensor:
    c = torch.as_tensor(c, dtype=torch.float32, device=like.device)
    if not bool((c > 0).all()):
        raise ValueError(f"the curvature parameter c must be positive, got {c}")
    return c


def exp_map0(v, c) -> torch.Tensor:
    """Space components of the exponential map at the vertex of the tangent vectors ``v``
    (rows), on the hyperboloid of curvature ``-c``."""
    v = _tensor(v)
    c = _curv(c, v)
    r = torch.sqrt(c) * torch.linalg.vector_norm(v, dim=-1, keepdim=True)
    return torch.sinh(torch.clamp(r, min=_EPS, max=_SINH_MAX)) * v / torch.clamp(r, min=_EPS)


def time_component(x, c) -> torch.Tensor:
    """``sqrt(1/c + |x|^2)`` of space components ``x`` (rows), keeping the last axis."""
    x = _tensor(x)
    return torch.sqrt(1.0 / _curv(c, x) + torch.sum(x * x, dim=-1, keepdim=True))


def lorentz_inner(x, y, c) -> torch.Tensor:
    """Pairwise Lorentzian inner products ``<x_a, y_b>_L`` of space components (rows of ``x``
    against rows of ``y``): an ``len(x) x len(y)`` matrix."""
    x, y = _tensor(x), _tensor(y)
    return x @ y.T - time_component(x, c) * time_component(y, c).T


def pair_distance(x, y, c) -> torch.Tensor:
    """Geodesic distance of each row pair ``(x_k, y_k)`` of space components (not a matrix)."""
    x, y = _tensor(x), _tensor(y)
    c = _curv(c, x)
    inner = torch.sum(x * y, dim=-1) - (time_component(x, c) * time_component(y, c))[:, 0]
    return torch.acosh(torch.clamp(-c * inner, min=1.0)) / torch.sqrt(c)


def distance_matrix(x, y, c, min_cosh: float = 1.0) -> torch.Tensor:
    """Geodesic distances of every row of ``x`` to every row of ``y`` (space components): the
    ``len(x) x len(y)`` matrix MERU's contrastive loss takes the negative of. ``min_cosh`` is the
    floor of the ``arcosh`` argument (1; a training loss passes a hair above 1, where the
    derivative of ``arcosh`` is finite)."""
    x, y = _tensor(x), _tensor(y)
    c = _curv(c, x)
    return torch.acosh(torch.clamp(-c * lorentz_inner(x, y, c), min=min_cosh)) / torch.sqrt(c)


def neg_lorentzian_distance(image_tangent, text_tangent, c) -> torch.Tensor:
    """HYPE's ``-d_L`` of each pair: minus the geodesic distance between the lifted image and
    text of the same row."""
    return -pair_distance(exp_map0(image_tangent, c), exp_map0(text_tangent, c), c)


def half_aperture(x, c, k: float = CONE_K) -> torch.Tensor:
    """Half-aperture of the entailment cone at each row of space components ``x`` (radians, in
    ``(0, pi/2)``; the cone of a point within ``2K/sqrt(c)`` of the vertex is capped just below
    ``pi/2``)."""
    x = _tensor(x)
    c = _curv(c, x)
    arg = 2 * k / (torch.sqrt(c) * torch.linalg.vector_norm(x, dim=-1) + _EPS)
    return torch.asin(torch.clamp(arg, -1 + _EPS, 1 - _EPS))


def exterior_angle(x, y, c) -> torch.Tensor:
    """Exterior angle at ``x_a`` of the hyperbolic triangle (vertex, ``x_a``, ``y_b``) for every
    row pair: a ``len(x) x len(y)`` matrix of radians in ``(0, pi)``."""
    x, y = _tensor(x), _tensor(y)
    c = _curv(c, x)
    inner = lorentz_inner(x, y, c)
    x_norm = torch.linalg.vector_norm(x, dim=-1, keepdim=True)
    numerator = time_component(y, c).T + time_component(x, c) * c * inner
    denominator = x_norm * torch.sqrt(torch.clamp((c * inner) ** 2 - 1, min=_EPS)) + _EPS
    return torch.acos(torch.clamp(numerator / denominator, -1 + _EPS, 1 - _EPS))


def paired_exterior_angle(x, y, c) -> torch.Tensor:
    """`exterior_angle` of each row pair ``(x_k, y_k)`` only (a vector): MERU's ``oxy_angle``."""
    x, y = _tensor(x), _tensor(y)
    c = _curv(c, x)
    x_time, y_time = time_component(x, c)[:, 0], time_component(y, c)[:, 0]
    inner = torch.sum(x * y, dim=-1) - x_time * y_time
    numerator = y_time + x_time * c * inner
    denominator = torch.linalg.vector_norm(x, dim=-1) * torch.sqrt(torch.clamp((c * inner) ** 2 - 1, min=_EPS)) + _EPS
    return torch.acos(torch.clamp(numerator / denominator, -1 + _EPS, 1 - _EPS))


def entailment(x, y, c, k: float = CONE_K) -> torch.Tensor:
    """``ext(x_a, y_b) - aper(x_a)`` for every row pair of space components: how far ``y_b``
    lies outside the entailment cone of ``x_a`` (negative: inside)."""
    return exterior_angle(x, y, c) - half_aperture(x, c, k)[:, None]


def _mean_over_reference(rows, reference, c, rows_entail: bool, block: int = REFERENCE_BLOCK) -> torch.Tensor:
    """Mean over the reference rows of ``ent(ref, row)`` (``rows_entail`` False) or
    ``ent(row, ref)`` (True), blocked over the reference set."""
    total = torch.zeros(rows.shape[0], dtype=torch.float32, device=rows.device)
    for a in range(0, reference.shape[0], block):
        ref = reference[a : a + block]
        if rows_entail:
            total += entailment(rows, ref, c).sum(dim=1)
        else:
            total += entailment(ref, rows, c).sum(dim=0)
    return total / reference.shape[0]


def image_specificity(image_tangent, reference_text_tangent, c) -> torch.Tensor:
    """HYPE's ``eps_i`` of each image: the mean over the reference texts ``t_r`` of
    ``ent(t_r, image)``, how far the image lies outside their cones."""
    ref = exp_map0(reference_text_tangent, c)
    if ref.shape[0] == 0:
        raise ValueError("the reference set has no texts")
    return _mean_over_reference(exp_map0(image_tangent, c), ref, c, rows_entail=False)


def text_specificity(text_tangent, reference_image_tangent, c) -> torch.Tensor:
    """HYPE's ``eps_t`` of each text: the mean over the reference images ``i_r`` of
    ``ent(text, i_r)``, how far they lie outside the text's cone."""
    ref = exp_map0(reference_image_tangent, c)
    if ref.shape[0] == 0:
        raise ValueError("the reference set has no images")
    return _mean_over_reference(exp_map0(text_tangent, c), ref, c, rows_entail=True)


def hype_scores(image_tangent, text_tangent, reference_image, reference_text, c) -> dict[str, torch.Tensor]:
    """The three HYPE scores of each pair (rows of ``image_tangent`` and ``text_tangent``):
    ``{"neg_lorentzian_distance", "image_specificity", "text_specificity"}``, float32."""
    image_tangent, text_tangent = _tensor(image_tangent), _tensor(text_tangent)
    if image_tangent.shape != text_tangent.shape:
        raise ValueError(f"image {tuple(image_tangent.shape)} and text {tuple(text_tangent.shape)} rows differ")
    device = image_tangent.device
    return {
        "neg_lorentzian_distance": neg_lorentzian_distance(image_tangent, text_tangent, c),
        "image_specificity": image_specificity(image_tangent, _tensor(reference_text, device), c),
        "text_specificity": text_specificity(text_tangent, _tensor(reference_image, device), c),
    }
