"""Tests of curate.scoring.embedding_scores (docs/algorithms.md §6: s-CLIPLoss, NormSim_inf, linear classifiers)."""

import math

import numpy as np
import pytest
import torch

torch.set_num_threads(1)

from curate.scoring.embedding_scores import (  # noqa: E402
    S_CLIP_LOSS_BATCH_SIZE,
    S_CLIP_LOSS_TEMPERATURE,
    concat_embeddings,
    linear_classifier_score,
    normsim_inf,
    s_clip_loss,
    train_linear_classifier,
)


def _unit(rng, n, d):
    x = rng.normal(size=(n, d))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def _reference_s_clip_loss(img, txt, tau):
    """The definition written out with python floats: C_ii - tau/2 (lse_j C_ij/tau + lse_j C_ji/tau)."""
    C = np.asarray(img, np.float64) @ np.asarray(txt, np.float64).T
    n = len(C)
    out = []
    for i in range(n):
        r = math.log(sum(math.exp(C[i, j] / tau) for j in range(n)))
        c = math.log(sum(math.exp(C[j, i] / tau) for j in range(n)))
        out.append(C[i, i] - tau / 2 * (r + c))
    return np.array(out)


def test_s_clip_loss_three_examples_by_hand():
    # img = e1, e2, (.6, .8); txt = e1, (.6, .8), e2  ->  C = img @ txt.T =
    #   [[1, .6, 0], [0, .8, 1], [.6, 1, .8]],  tau = 0.5, one batch of 3.
    # i=0: row exp(C/tau) = e^2 + e^1.2 + e^0 = 11.709173, log = 2.460373; column 0 is the same
    #      s0 = 1 - .25 * (2.460373 + 2.460373) = -0.230186
    # i=1: row [0, 1.6, 2] -> log(1 + 4.953032 + 7.389056) = 2.590924
    #      col [1.2, 1.6, 2] -> log(3.320117 + 4.953032 + 7.389056) = 2.751251
    #      s1 = .8 - .25 * 5.342174 = -0.535544;  i=2 is symmetric to i=1 (row/col swapped)
    img = np.array([[1, 0], [0, 1], [0.6, 0.8]], np.float32)
    txt = np.array([[1, 0], [0.6, 0.8], [0, 1]], np.float32)
    got = s_clip_loss(img, txt, batch_size=3, seed=0, temperature=0.5)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, [-0.230186, -0.535544, -0.535544], atol=2e-6)
    np.testing.assert_allclose(got, _reference_s_clip_loss(img, txt, 0.5), atol=1e-6)
    # one batch holding the whole pool: the shuffle does not matter
    np.testing.assert_allclose(s_clip_loss(img, txt, batch_size=3, seed=7, temperature=0.5), got, atol=1e-7)


def test_s_clip_loss_defaults_and_batch_of_one():
    assert S_CLIP_LOSS_TEMPERATURE == 0.01 and S_CLIP_LOSS_BATCH_SIZE == 32768
    rng = np.random.default_rng(0)
    img, txt = _unit(rng, 7, 5), _unit(rng, 7, 5)
    # a batch of one: C_ii - tau/2 (C_ii/tau + C_ii/tau) = 0
    np.testing.assert_allclose(s_clip_loss(img, txt, batch_size=1), 0.0, atol=1e-6)
    # default tau = 0.01 equals the written-out definition (lse kept stable)
    np.testing.assert_allclose(s_clip_loss(img, txt), _reference_s_clip_loss(img, txt, 0.01), atol=1e-5)
    # the sums include j = i, so R_i >= C_ii and s_i <= 0
    assert (s_clip_loss(img, txt) <= 1e-6).all()


def test_s_clip_loss_random_batches_follow_the_seeded_permutation():
    rng = np.random.default_rng(1)
    img, txt = _unit(rng, 7, 4), _unit(rng, 7, 4)
    tau = 0.2
    perm = np.random.default_rng(3).permutation(7)
    expected = np.empty(7)
    for idx in (perm[:3], perm[3:6], perm[6:]):  # batches of 3, the last one smaller
        expected[idx] = _reference_s_clip_loss(img[idx], txt[idx], tau)
    np.testing.assert_allclose(s_clip_loss(img, txt, batch_size=3, seed=3, temperature=tau), expected, atol=1e-6)
    # n_repeats averages independent partitions drawn from the same generator
    r = np.random.default_rng(3)
    parts = []
    for _ in range(2):
        p = r.permutation(7)
        e = np.empty(7)
        for idx in (p[:3], p[3:6], p[6:]):
            e[idx] = _reference_s_clip_loss(img[idx], txt[idx], tau)
        parts.append(e)
    got = s_clip_loss(img, txt, batch_size=3, seed=3, temperature=tau, n_repeats=2)
    np.testing.assert_allclose(got, np.mean(parts, axis=0), atol=1e-6)


def test_s_clip_loss_rejects_bad_input():
    with pytest.raises(ValueError):
        s_clip_loss(np.zeros((3, 2)), np.zeros((4, 2)))
    with pytest.raises(ValueError):
        s_clip_loss(np.zeros((3, 2)), np.zeros((3, 2)), batch_size=0)


def test_normsim_inf_is_the_max_similarity_in_chunks():
    # hand case: the pool image equal to a target scores 1; e1 vs targets {e2, (.6,.8)} -> .6
    pool = np.array([[1, 0], [0, 1], [-1, 0]], np.float32)
    target = np.array([[0, 1], [0.6, 0.8]], np.float32)
    np.testing.assert_allclose(normsim_inf(pool, target), [0.6, 1.0, 0.0], atol=1e-7)
    rng = np.random.default_rng(2)
    pool, target = _unit(rng, 11, 6), _unit(rng, 9, 6)
    brute = (pool @ target.T).max(axis=1)
    got = normsim_inf(pool, target, chunk_size=4, target_chunk_size=2)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, brute, atol=1e-6)
    with pytest.raises(ValueError):
        normsim_inf(pool, target[:, :3])


def _clusters(seed, n_pos=60, n_neg=240, d=6):
    rng = np.random.default_rng(seed)
    direction = np.zeros(d)
    direction[0] = 1.0
    pos = rng.normal(size=(n_pos, d)) * 0.5 + 1.5 * direction
    neg = rng.normal(size=(n_neg, d)) * 0.5 - 1.5 * direction
    norm = lambda x: (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)  # noqa: E731
    return norm(pos), norm(neg)


def test_linear_classifier_separates_toy_clusters_deterministically():
    pos, neg = _clusters(0)
    w, b = train_linear_classifier(pos, neg, seed=0, epochs=8, lr=0.05, weight_decay=0.0, batch_size=32, warmup_steps=5)
    assert w.shape == (6,) and w.dtype == np.float32 and isinstance(b, float)
    w2, b2 = train_linear_classifier(
        pos, neg, seed=0, epochs=8, lr=0.05, weight_decay=0.0, batch_size=32, warmup_steps=5
    )
    np.testing.assert_array_equal(w, w2)
    assert b == b2
    assert w[0] > 0 and w[0] > np.abs(w[1:]).max()  # the separating direction
    s_pos, s_neg = linear_classifier_score(pos, w, b), linear_classifier_score(neg, w, b)
    acc = ((s_pos > 0).sum() + (s_neg < 0).sum()) / (len(pos) + len(neg))
    assert acc > 0.97
    # a different seed changes the batches, not the outcome
    w3, _ = train_linear_classifier(pos, neg, seed=1, epochs=8, lr=0.05, batch_size=32, warmup_steps=5)
    assert not np.array_equal(w, w3) and w3[0] > 0


def test_linear_classifier_score_is_affine_and_chunked():
    rng = np.random.default_rng(4)
    X = rng.normal(size=(10, 3)).astype(np.float32)
    w = np.array([1.0, -2.0, 0.5], np.float32)
    got = linear_classifier_score(X, w, 0.25, chunk_size=3)
    np.testing.assert_allclose(got, X @ w + 0.25, atol=1e-6)
    # hand: [1, 1, 2] . [1, -2, .5] + .25 = 1 - 2 + 1 + .25 = .25
    assert linear_classifier_score(np.array([[1, 1, 2]]), w, 0.25)[0] == pytest.approx(0.25)


def test_concat_embeddings_for_the_cc2m_classifier():
    img = np.ones((2, 3), np.float32)
    txt = np.zeros((2, 3), np.float32)
    out = concat_embeddings(img, txt)
    assert out.shape == (2, 6)
    np.testing.assert_array_equal(out[:, :3], 1)
    np.testing.assert_array_equal(out[:, 3:], 0)
