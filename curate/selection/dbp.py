"""Density-Based Pruning (DBP; Abbas et al., "Effective pruning of web-scale datasets based on
complexity of concept clusters", ICLR 2024, arXiv 2401.04578; docs/algorithms.md §11).

Every function here is numpy (faiss for k-means) over one pool's L2-normalised image embeddings:

1. :func:`semdedup_keep`: SemDeDup-style deduplication inside k-means clusters (a sample whose
   cosine similarity to a kept sample of its cluster exceeds ``1 - eps`` is dropped; the samples
   farthest from the centroid are visited first, so they are the ones kept).
2. :func:`cluster_complexity`: spherical k-means, then per cluster ``d_intra`` (the mean cosine
   distance of its members to its centroid) and ``d_inter`` (the mean cosine distance of its
   centroid to its ``n_neighbours`` nearest other centroids); complexity ``C = d_inter * d_intra``.
3. :func:`allocate`: the per-cluster quota ``N_j``: the box-constrained least-squares fit of
   ``softmax(C / T) * N`` (the authors' quadratic program) with ``sum N_j = N``.
4. :func:`dbp_keep`: the ``N_j`` hardest (least prototypical: farthest from the centroid)
   samples of each cluster.
"""

from __future__ import annotations

import numpy as np

from curate.selection.baselines import kmeans_centroids


def normalise(x) -> np.ndarray:
    """Rows scaled to unit L2 norm (a zero row stays zero), float32."""
    x = np.asarray(x, dtype=np.float32)
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return np.divide(x, norm, out=np.zeros_like(x), where=norm > 0)


def spherical_kmeans(features, n_clusters: int, n_iter: int = 20, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``(centroids, labels)`` of faiss k-means on the normalised features with unit-norm centroids
    (``spherical=True``), each sample assigned to its most similar centroid (cosine). Fewer points
    than ``n_clusters`` get as many clusters as points."""
    x = normalise(features)
    n_clusters = min(int(n_clusters), len(x))  # a small pool (the tiny one) cannot fill more clusters than points
    centroids = kmeans_centroids(x, n_clusters, n_iter=n_iter, seed=seed, spherical=True)
    centroids = normalise(centroids)
    labels = np.argmax(x @ centroids.T, axis=1).astype(np.int64) if len(x) else np.zeros(0, np.int64)
    return centroids, labels


def distance_to_centroid(features, centroids, labels) -> np.ndarray:
    """Cosine distance ``1 - <x_i, c_{label_i}>`` of each normalised sample to its centroid."""
    x = normalise(features)
    return (1.0 - np.einsum("ij,ij->i", x, np.asarray(centroids, np.float32)[labels])).astype(np.float64)


def semdedup_keep(features, labels, distances, eps: float, block: int = 4096) -> np.ndarray:
    """SemDeDup inside each cluster -> boolean keep-mask.

    The members of a cluster are visited from the farthest from its centroid to the nearest; a
    member is dropped when its cosine similarity to any member before it in that order (kept or
    not, as SemDeDup takes the maximum over the whole upper triangle) exceeds ``1 - eps``. ``eps``
    0 drops exact duplicates only. Similarities are computed ``block`` rows at a time.
    """
    x = normalise(features)
    labels = np.asarray(labels)
    distances = np.asarray(distances, dtype=np.float64)
    keep = np.ones(len(x), dtype=bool)
    for cluster in np.unique(labels):
        members = np.flatnonzero(labels == cluster)
        order = members[np.argsort(-distances[members], kind="stable")]
        xs = x[order]
        for a in range(1, len(order), block):
            rows = xs[a : a + block]
            sims = rows @ xs[: a + len(rows)].T  # each row against every member up to the block's end
            position = np.arange(a, a + len(rows))[:, None]
            sims[np.arange(a + len(rows))[None, :] >= position] = -np.inf  # only the earlier ones
            keep[order[a : a + len(rows)]] = ~(sims.max(axis=1) > 1.0 - eps)
    return keep


def cluster_complexity(centroids, labels, distances, n_neighbours: int = 20) -> tuple[np.ndarray, np.ndarray]:
    """``(d_inter, d_intra)`` per cluster.

    ``d_intra_j``: the mean cosine distance of cluster j's members to its centroid (NaN for an
    empty cluster). ``d_inter_j``: the mean of ``1 - <c_j, c_l>`` over the ``n_neighbours`` most
    similar other centroids (all of them when there are fewer).
    """
    c = normalise(centroids)
    k = len(c)
    labels = np.asarray(labels)
    distances = np.asarray(distances, dtype=np.float64)
    counts = np.bincount(labels, minlength=k)
    sums = np.bincount(labels, weights=distances, minlength=k)
    with np.errstate(invalid="ignore", divide="ignore"):
        d_intra = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
    sims = c @ c.T
    np.fill_diagonal(sims, -np.inf)
    m = min(int(n_neighbours), k - 1)
    if m < 1:
        return np.zeros(k), d_intra
    nearest = -np.sort(-sims, axis=1)[:, :m]
    d_inter = np.mean(1.0 - nearest, axis=1)
    return d_inter.astype(np.float64), d_intra.astype(np.float64)


def complexity_probabilities(d_inter, d_intra, temperature: float) -> np.ndarray:
    """``softmax(d_inter * d_intra / T)`` over the clusters, an undefined complexity (an empty
    cluster's) replaced by the mean of the defined ones."""
    c = np.asarray(d_inter, np.float64) * np.asarray(d_intra, np.float64)
    if np.isnan(c).all():
        c = np.zeros_like(c)
    c = np.where(np.isnan(c), np.nanmean(c), c)
    z = c / float(temperature)
    z = np.exp(z - z.max())
    return z / z.sum()


def allocate(probabilities, sizes, total: int, balance: float = 0.5) -> np.ndarray:
    """Per-cluster quotas ``N_j`` (int64): the solution of the authors' quadratic program

    ``min_x 1/2 |x|^2 - (p * total) . x``  s.t.  ``sum x = total``, ``lb_j <= x_j <= n_j``,

    i.e. the box-constrained least-squares fit to ``p * total``, then rounded by largest
    remainder so that the quotas sum to ``total`` exactly. ``lb_j =
    min(m, n_j - 1)`` with ``m = int(total / k * balance)`` (``balance`` 0: m = 1), so every
    cluster keeps a share before the complexity is heard. The minimiser is ``clip(p_j total +
    lam, lb_j, n_j)`` with the one ``lam`` that meets the sum (found by bisection). Empty clusters
    get 0. ``total`` above the pool keeps everything.
    """
    p = np.asarray(probabilities, np.float64)
    n = np.asarray(sizes, np.int64)
    k = len(p)
    if len(n) != k:
        raise ValueError(f"{k} probabilities but {len(n)} cluster sizes")
    if not 0.0 <= balance <= 1.0:
        raise ValueError(f"balance must be in [0, 1], got {balance}")
    total = int(total)
    if total >= int(n.sum()):
        return n.copy()
    m = int(total / k * balance) if balance > 0 else 1
    lb = np.where(n > 0, np.minimum(m, n - 1), 0).astype(np.float64)
    ub = n.astype(np.float64)
    if lb.sum() > total:  # the floors alone exceed the budget: fit without them
        lb = np.zeros(k)
    target = p * total

    def filled(lam: float) -> np.ndarray:
        return np.clip(target + lam, lb, ub)

    lo, hi = -target.max() - 1.0, float(ub.max()) + 1.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if filled(mid).sum() < total:
            lo = mid
        else:
            hi = mid
    return largest_remainder(filled(hi), total, ub)


def largest_remainder(x, total: int, upper) -> np.ndarray:
    """Integers near ``x`` that sum to ``total``: every ``floor(x_j)``, plus one for the largest
    fractional parts (first index on ties) while the sum is short, never above ``upper``."""
    x = np.asarray(x, np.float64)
    out = np.floor(x + 1e-9).astype(np.int64)  # a bisection's 2.9999999999 is 3
    room = out < np.asarray(upper, np.int64)
    short = max(int(total) - int(out.sum()), 0)
    order = [j for j in np.argsort(-(x - out), kind="stable") if room[j]]
    out[order[:short]] += 1
    return out


def dbp_keep(labels, distances, quotas) -> np.ndarray:
    """Boolean keep-mask: the ``quotas[j]`` members of each cluster j farthest from its centroid
    (the authors' ``which_to_keep: hard``; ties by position)."""
    labels = np.asarray(labels)
    distances = np.asarray(distances, dtype=np.float64)
    keep = np.zeros(len(labels), dtype=bool)
    for cluster, quota in enumerate(np.asarray(quotas, np.int64)):
        members = np.flatnonzero(labels == cluster)
        order = members[np.argsort(-distances[members], kind="stable")]
        keep[order[: max(int(quota), 0)]] = True
    return keep


def density_based_pruning(
    features,
    fraction: float,
    n_clusters: int,
    temperature: float = 0.5,
    n_neighbours: int = 20,
    balance: float = 0.5,
    dedup_eps: float | None = None,
    dedup_clusters: int | None = None,
    n_iter: int = 20,
    seed: int = 0,
) -> tuple[np.ndarray, dict]:
    """DBP over ``features`` (one row per candidate sample) -> ``(keep-mask, summary)``.

    With ``dedup_eps``, SemDeDup runs first (its own spherical k-means with ``dedup_clusters``
    clusters, ``n_clusters`` when not given) and DBP clusters the survivors; the kept count is ``int(fraction * survivors)``, as the authors'
    ``prune_ratio * total_dataset_size`` of the deduplicated set.
    """
    x = normalise(features)
    keep = np.ones(len(x), dtype=bool)
    summary: dict = {"candidates": int(len(x))}
    if dedup_eps is not None:
        centroids, labels = spherical_kmeans(x, dedup_clusters or n_clusters, n_iter=n_iter, seed=seed)
        keep = semdedup_keep(x, labels, distance_to_centroid(x, centroids, labels), dedup_eps)
        summary["after_dedup"] = int(keep.sum())
    idx = np.flatnonzero(keep)
    y = x[idx]
    centroids, labels = spherical_kmeans(y, n_clusters, n_iter=n_iter, seed=seed)
    distances = distance_to_centroid(y, centroids, labels)
    d_inter, d_intra = cluster_complexity(centroids, labels, distances, n_neighbours)
    probabilities = complexity_probabilities(d_inter, d_intra, temperature)
    sizes = np.bincount(labels, minlength=len(centroids))
    quotas = allocate(probabilities, sizes, int(fraction * len(y)), balance)
    kept = dbp_keep(labels, distances, quotas)
    out = np.zeros(len(x), dtype=bool)
    out[idx[kept]] = True
    summary |= {"kept": int(out.sum()), "clusters": int(len(centroids))}
    return out, summary
