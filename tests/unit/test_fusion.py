"""Tests of curate.selection.fusion (docs/algorithms.md §4, §5, §6)."""

import numpy as np
import pytest

from curate.selection.fusion import (
    column_stats,
    in_weighted_sum,
    in_weighted_weights,
    minmax,
    mos,
    mos_sigma_range,
    row_std,
    sieve_clip_fusion,
    standardised_sum,
    weighted_sum,
    zscore,
)


def test_minmax_hand_computed():
    # (s - 1) / (5 - 1 + 1e-8)
    out = minmax(np.array([1.0, 3.0, 5.0]))
    assert out.tolist() == pytest.approx([0.0, 2 / (4 + 1e-8), 4 / (4 + 1e-8)], abs=0)
    S = np.array([[0.0, 10.0], [5.0, 30.0], [10.0, 20.0]])
    assert minmax(S) == pytest.approx(np.array([[0, 0], [0.5, 1], [1, 0.5]]), abs=1e-8)


def test_zscore_uses_unbiased_std():
    # mean 2.5; var (2.25 + .25 + .25 + 2.25) / 3 = 5/3; std 1.2909944
    z = zscore(np.array([1.0, 2.0, 3.0, 4.0]))
    assert z[0] == pytest.approx(-1.5 / np.sqrt(5 / 3), rel=1e-12)
    assert z[0] == pytest.approx(-1.1618950, abs=1e-6)
    X = np.random.default_rng(0).normal(size=(50, 3))
    assert zscore(X) == pytest.approx((X - X.mean(0)) / X.std(0, ddof=1), rel=1e-12)
    assert zscore(np.ones(4)).tolist() == [0, 0, 0, 0]  # constant column -> 0


def test_column_stats_streaming_equals_whole_and_is_stable():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(10_000, 3)) * [1.0, 1e-3, 100.0] + [0.0, 1e9, -5.0]
    st = column_stats(np.array_split(X, 13))
    assert st["n"].tolist() == [10_000] * 3
    assert st["mean"] == pytest.approx(X.mean(0), rel=1e-12)
    # offset 1e9 with std 1e-3: a naive sum of squares would lose every digit
    assert st["std"] == pytest.approx(X.std(0, ddof=1), rel=1e-6)
    assert st["min"].tolist() == X.min(0).tolist() and st["max"].tolist() == X.max(0).tolist()
    one = column_stats(iter([X[:5, 0], X[5:, 0]]))
    assert np.ndim(one["mean"]) == 0 and one["std"] == pytest.approx(X[:, 0].std(ddof=1))


def test_column_stats_ignores_nan_and_empty_chunks():
    X = np.array([[1.0, np.nan], [3.0, 2.0], [np.nan, 4.0]])
    st = column_stats([X[:1], X[1:1], X[1:]])
    # col 0: {1, 3}: mean 2, std sqrt(2); col 1: {2, 4}: mean 3, std sqrt(2)
    assert st["n"].tolist() == [2, 2] and st["n_nan"].tolist() == [1, 1]
    assert st["mean"].tolist() == [2.0, 3.0]
    assert st["std"] == pytest.approx([np.sqrt(2), np.sqrt(2)])
    assert st["min"].tolist() == [1.0, 2.0] and st["max"].tolist() == [3.0, 4.0]


def test_minmax_zscore_with_pool_stats():
    X = np.random.default_rng(2).random((100, 2))
    st = column_stats([X])
    assert np.array_equal(minmax(X[:10], st), minmax(X, st)[:10])
    assert np.array_equal(zscore(X[:10], st), zscore(X, st)[:10])


def test_mos_hand_computed():
    S = np.array([[0.0, 0.5, 1.0], [0.2, 0.2, 0.8]])
    # row 0: d = -(1/2)[1.5, 1.0, 1.5] = [-.75, -.5, -.75]; sigma = sqrt(1/6) = .408248
    # row 1: d = -(1/2)[.6, .6, 1.2] = [-.3, -.3, -.6];  sigma = sqrt(.08) = .282843
    # sigma_min = .282843, sigma_max = .408248 -> T0 = 1.5 (- 8e-8), T1 = .5
    # row 0 is symmetric around .5 -> MoS = .5
    # row 1: softmax([-.6, -.6, -1.2]) = [.392339, .392339, .215321]
    #        MoS = .2 * .784679 + .8 * .215321 = .329193
    assert row_std(S) == pytest.approx([np.sqrt(1 / 6), np.sqrt(0.08)], rel=1e-12)
    out = mos(S)
    assert out[0] == pytest.approx(0.5, abs=1e-12)
    assert out[1] == pytest.approx(0.329193, abs=1e-6)
    e = np.exp([-0.6, -0.6, -1.2])
    assert out[1] == pytest.approx((e * S[1]).sum() / e.sum(), rel=1e-12)


def test_mos_identical_columns_and_convexity():
    col = np.random.default_rng(3).random(20)
    S = np.repeat(col[:, None], 4, axis=1)
    assert mos(S) == pytest.approx(col, rel=0, abs=1e-15)
    X = np.random.default_rng(4).random((500, 8))
    out = mos(X)
    assert np.all(out >= X.min(1) - 1e-12) and np.all(out <= X.max(1) + 1e-12)
    # low temperature (tmin=tmax small) picks the densest score; huge T -> plain mean
    assert mos(X, tmin=1e6, tmax=1e6) == pytest.approx(X.mean(1), rel=1e-5)
    assert mos(X[:, :1]).tolist() == X[:, 0].tolist()


def test_mos_chunked_equals_unchunked_bit_for_bit():
    rng = np.random.default_rng(5)
    raw = rng.normal(size=(3001, 8)) * rng.random(8) + rng.random(8)
    chunks = np.array_split(raw, 7)
    st = column_stats(chunks)
    rng_sig = mos_sigma_range(minmax(c, st) for c in chunks)
    whole = mos(minmax(raw, st), sigma_range=rng_sig)
    parts = np.concatenate([mos(minmax(c, st), sigma_range=rng_sig) for c in np.array_split(raw, 11)])
    assert whole.tobytes() == parts.tobytes()
    # without an explicit range the whole-matrix range is used
    assert mos(minmax(raw, st)).tobytes() == whole.tobytes()


def test_mos_nan_row():
    S = np.array([[0.1, 0.2], [np.nan, 0.3], [0.9, 0.5]])
    out = mos(S)
    assert np.isnan(out[1]) and not np.isnan(out[[0, 2]]).any()
    assert mos_sigma_range([S]) == pytest.approx((0.05, 0.2))


def test_weighted_sums_and_in_weights():
    S = np.array([[1.0, 2.0, 3.0], [0.0, -1.0, 1.0]])
    # 1*.5 + 2*0 + 3*2 = 6.5 ; 0*.5 - 1*0 + 1*2 = 2
    assert weighted_sum(S, [0.5, 0.0, 2.0]).tolist() == [6.5, 2.0]
    # IN = [.6, .7, .8]: w_hat = [0, .5, 1]; r = 2 -> + 1/(2-1) = [1, 1.5, 2]
    assert in_weighted_weights([0.6, 0.7, 0.8], 2) == pytest.approx([1.0, 1.5, 2.0])
    # r = 4 -> + 1/3; ratio best/worst = r
    w = in_weighted_weights([0.6, 0.7, 0.8], 4)
    assert w == pytest.approx([1 / 3, 0.5 + 1 / 3, 4 / 3]) and w[2] / w[0] == pytest.approx(4)
    assert in_weighted_weights([0.5, 0.5], 8).tolist() == [1 / 7, 1 / 7]
    with pytest.raises(ValueError):
        in_weighted_weights([0.1, 0.2], 1)
    X = np.random.default_rng(6).normal(size=(40, 3))
    assert in_weighted_sum(X, [0.6, 0.7, 0.8], 2) == pytest.approx(zscore(X) @ [1.0, 1.5, 2.0])
    assert standardised_sum(X) == pytest.approx(zscore(X).sum(1))


def test_sieve_clip_fusion():
    sieve = np.array([0.0, 1.0, 2.0])
    clip = np.array([10.0, 30.0, 20.0])
    # mm(sieve) = [0, .5, 1]; mm(clip) = [0, 1, .5]; a = .5 -> [0, .75, .75]
    assert sieve_clip_fusion(sieve, clip).tolist() == [0.0, 0.75, 0.75]
    # a = .25 -> .75*[0,.5,1] + .25*[0,1,.5] = [0, .625, .875]
    assert sieve_clip_fusion(sieve, clip, a=0.25) == pytest.approx([0.0, 0.625, 0.875])
    # pool-wide stats: a chunk is normalised with the whole pool's min/max
    st = column_stats([np.column_stack([sieve, clip])])
    assert sieve_clip_fusion(sieve[1:], clip[1:], stats=st).tolist() == [0.75, 0.75]
