"""Tests of curate.selection.sampling (docs/algorithms.md §1, §7)."""

import numpy as np
import pytest

from curate.selection.sampling import keep_ratio, threshold, top_fraction


# ------------------------------------------------------------------ §1 top_fraction
def test_top_fraction_hand_computed():
    s = np.array([0.1, 0.9, 0.5, 0.7, 0.3, 0.8, 0.2, 0.6, 0.4, 0.0])
    # N = 10, fraction 0.3 -> n = int(3.0) = 3; sorted desc = .9 .8 .7 .6 ...; thr = [3] = .6
    # keep s >= .6 -> indices 1 (.9), 3 (.7), 5 (.8), 7 (.6): n + 1 = 4 samples
    assert top_fraction(s, 0.3).tolist() == [1, 3, 5, 7]


def test_top_fraction_keeps_n_plus_one_plus_ties():
    s = np.array([5.0, 4.0, 3.0, 3.0, 3.0, 1.0])
    # n = int(6 * 0.34) = int(2.04) = 2; sorted desc = 5 4 3 3 3 1; thr = 3
    # keeps 5, 4 and all three 3s = 5 samples (n + 1 = 3 plus 2 ties)
    assert top_fraction(s, 0.34).tolist() == [0, 1, 2, 3, 4]
    # fraction 0 -> n = 0 -> thr = max -> the max is kept (quirk)
    assert top_fraction(s, 0.0).tolist() == [0]


def test_top_fraction_random_property():
    rng = np.random.default_rng(1)
    s = rng.integers(0, 50, 1000).astype(float)
    for frac in (0.0, 0.1, 0.3, 0.5, 0.999):
        n = int(len(s) * frac)
        thr = -np.sort(-s)[n]
        kept = top_fraction(s, frac)
        assert kept.tolist() == np.flatnonzero(s >= thr).tolist()
        assert len(kept) >= n + 1


def test_top_fraction_keep_all():
    s = np.array([3.0, 1.0, 2.0])
    assert top_fraction(s, 1.0).tolist() == [0, 1, 2]  # n = N: keep all
    assert top_fraction(s, 2.0).tolist() == [0, 1, 2]
    assert top_fraction(np.array([]), 0.3).tolist() == []
    with pytest.raises(ValueError):
        top_fraction(s, -0.1)


def test_top_fraction_nan_never_kept():
    s = np.array([np.nan, 0.9, 0.1, np.nan, 0.5])
    # N = 5, n = int(5 * 0.4) = 2; desc with NaN last = .9 .5 .1 nan nan; thr = .1
    assert top_fraction(s, 0.4).tolist() == [1, 2, 4]
    # n = int(5 * 0.8) = 4 -> sorted[4] is NaN: keep every valid score, never NaN
    assert top_fraction(s, 0.8).tolist() == [1, 2, 4]
    assert top_fraction(s, 1.0).tolist() == [1, 2, 4]


def test_threshold():
    s = np.array([0.3, np.nan, 0.28, 0.27999, 0.5])
    assert threshold(s, 0.28).tolist() == [0, 2, 4]


# ------------------------------------------------------------------ §1 keep_ratio
def test_keep_ratio_hand_computed_and_stable_ties():
    s = np.array([0.5, 0.9, 0.5, 0.1, 0.5])
    # N = 5, ratio 0.6 -> round(3.0) = 3; stable desc order = 1 (.9), 0, 2, 4 (.5s), 3
    # first 3 = {1, 0, 2}: the tie at .5 is broken by the lower index
    assert keep_ratio(s, 0.6).tolist() == [0, 1, 2]
    # ratio 0.5 -> round(2.5) = 2 (banker's rounding) -> {1, 0}
    assert keep_ratio(s, 0.5).tolist() == [0, 1]
    # ratio 0.7 -> round(3.5) = 4 -> {1, 0, 2, 4}
    assert keep_ratio(s, 0.7).tolist() == [0, 1, 2, 4]
    # ratio 0 -> max(1, 0) = 1 ; ratio 5 -> min(25, 5) = 5
    assert keep_ratio(s, 0.0).tolist() == [1]
    assert keep_ratio(s, 5.0).tolist() == [0, 1, 2, 3, 4]


def test_keep_ratio_exact_count_property():
    rng = np.random.default_rng(2)
    s = rng.integers(0, 20, 997).astype(np.float32)
    for r in (0.01, 0.1, 0.333, 0.5, 0.9, 1.0):
        kept = keep_ratio(s, r)
        k = max(1, min(round(len(s) * r), len(s)))
        assert len(kept) == k == len(set(kept.tolist()))
        # Python sorted(reverse=True) is stable -> same set
        ref = sorted(range(len(s)), key=lambda i: s[i], reverse=True)[:k]
        assert kept.tolist() == sorted(ref)


def test_keep_ratio_nan_ranks_last_never_kept():
    s = np.array([np.nan, 0.2, 0.8])
    # N = 3, ratio 0.5 -> round(1.5) = 2 -> {2 (.8), 1 (.2)}
    assert keep_ratio(s, 0.5).tolist() == [1, 2]
    # ratio 1 -> k = 3 but only 2 valid scores: the NaN is never kept
    assert keep_ratio(s, 1.0).tolist() == [1, 2]


# ------------------------------------------------------------------ §7 SCS
from curate.selection.sampling import hcs, scs, scs_reference  # noqa: E402


def _round_freqs(fn, s, n, alpha, G, seeds, **kw):
    """Frequency with which each index is drawn in each round, over many seeds."""
    rounds = -(-n // G)
    F = np.zeros((rounds, len(s)))
    for seed in seeds:
        o = fn(s, n, alpha, G, seed, **kw)
        assert len(o) == n
        for r in range(rounds):
            b = o[r * G : (r + 1) * G]
            assert len(np.unique(b)) == len(b)
            F[r, b] += 1
    return F / len(seeds)


def _z(A, B, R):
    se = np.sqrt((A * (1 - A) + B * (1 - B)) / R)
    with np.errstate(invalid="ignore", divide="ignore"):
        z = np.where(se > 0, (A - B) / np.where(se > 0, se, 1), np.where(A == B, 0.0, np.inf))
    return np.abs(z).max(), float((z**2).mean())


def test_scs_first_round_inclusion_matches_exact_probability():
    # p = softmax(log [4, 2, 1, 1]) = [.5, .25, .125, .125]; G = 2 without replacement:
    # P(0 in round) = p0 + sum_{j != 0} p_j * p0 / (1 - p_j)
    #              = .5 + .25*.5/.75 + 2 * .125*.5/.875 = .5 + .166667 + .142857 = .809524
    s = np.log([4.0, 2.0, 1.0, 1.0])
    p = np.exp(s) / np.exp(s).sum()
    exact = [p[i] + sum(p[j] * p[i] / (1 - p[j]) for j in range(4) if j != i) for i in range(4)]
    assert exact[0] == pytest.approx(0.809524, abs=1e-6)
    R = 4000
    F = _round_freqs(scs, s, 2, 0.15, 2, range(R))[0]
    se = np.sqrt(np.array(exact) * (1 - np.array(exact)) / R)
    assert np.all(np.abs(F - exact) < 4.5 * se)


@pytest.mark.parametrize("window", [None, 3])
def test_scs_matches_naive_reference_in_distribution(window):
    # N = 10, G = 3, n = 14: 5 rounds, the last one truncated to 2; alpha = 0.7 makes the
    # penalty matter. Per (round, index) inclusion frequencies over 1500 seeds are
    # compared with the naive softmax + choice(replace=False) reference.
    rng = np.random.default_rng(0)
    s = rng.normal(size=10) * 1.5
    R = 1500
    A = _round_freqs(scs_reference, s, 14, 0.7, 3, range(R))
    B = _round_freqs(scs, s, 14, 0.7, 3, range(10**6, 10**6 + R), window=window)
    zmax, z2 = _z(A, B, R)
    assert zmax < 4.5 and z2 < 1.6, (zmax, z2)
    # the comparison has power: ignoring the penalty is detected
    C = _round_freqs(scs, s, 14, 0.0, 3, range(R), window=window)
    assert _z(A, C, R)[1] > 3


def test_scs_extreme_score_range_and_penalties_match_reference():
    # items 650+ nats below the max are parked (probability 0) and come back once the
    # penalties (alpha = 100 per draw) bring the top items down; NaN / -inf never drawn.
    s = np.array([0.0, 0.5, -300.0, -310.0, -1000.0, -1001.0, -5.0, np.nan, -np.inf])
    ref_s = np.where(np.isnan(s), -np.inf, s)
    R = 500
    A = _round_freqs(scs_reference, ref_s, 24, 100.0, 2, range(R))
    B = _round_freqs(scs, s, 24, 100.0, 2, range(R), window=1)
    zmax, _ = _z(A, B, R)
    assert zmax < 4.5
    assert B[:, 7:].sum() == 0


def test_scs_exact_n_no_repeat_within_batch_windows():
    rng = np.random.default_rng(3)
    s = rng.normal(size=1000) * 2
    G, n = 64, 1000 + 37
    for window in (None, 1, 100):
        o = scs(s, n, 0.5, G, seed=1, window=window)
        assert o.shape == (n,) and o.dtype == np.int64
        assert o.min() >= 0 and o.max() < 1000
        for r in range(0, n, G):
            b = o[r : r + G]
            assert len(np.unique(b)) == len(b)
        # repeats across batches do happen for high scores
        assert len(np.unique(o)) < n


def test_scs_seed_determinism():
    s = np.random.default_rng(4).normal(size=500)
    a = scs(s, 700, 0.15, 50, seed=7)
    b = scs(s, 700, 0.15, 50, seed=7)
    c = scs(s, 700, 0.15, 50, seed=8)
    assert a.tobytes() == b.tobytes()
    assert not np.array_equal(a, c)
    g = scs(s, 700, 0.15, 50, seed=np.random.default_rng(7))
    assert g.tobytes() == a.tobytes()


def test_scs_alpha_zero_is_iid_softmax_for_single_draw_batches():
    # alpha = 0, G = 1: every round is one draw from the same softmax(s) -> multinomial
    s = np.log(np.array([5.0, 3.0, 1.0, 1.0]))  # p = [.5, .3, .1, .1]
    n = 6000
    o = scs(s, n, 0.0, 1, seed=0)
    counts = np.bincount(o, minlength=4)
    p = np.array([0.5, 0.3, 0.1, 0.1])
    chi2 = float((((counts - n * p) ** 2) / (n * p)).sum())
    assert chi2 < 16.3  # chi-square, 3 dof, p = 0.001


def test_scs_huge_batch_takes_every_item_each_round():
    s = np.array([3.0, -1.0, np.nan, 0.0, 2.0])
    # G = 100 >= 4 drawable items -> each full round draws all of them; the last round
    # (n = 3*4 + 2) draws 2 distinct ones; index 2 (NaN) never appears.
    o = scs(s, 14, 0.15, 100, seed=0)
    for r in range(3):
        assert sorted(o[4 * r : 4 * r + 4].tolist()) == [0, 1, 3, 4]
    assert len(set(o[12:].tolist())) == 2 and 2 not in o.tolist()


def test_scs_edge_cases():
    s = np.array([0.0, 1.0])
    assert scs(s, 0, 0.15, 10, 0).shape == (0,)
    with pytest.raises(ValueError):
        scs(np.array([0.0, np.inf]), 2, 0.15, 1, 0)
    with pytest.raises(ValueError):
        scs(np.array([np.nan, np.nan]), 2, 0.15, 1, 0)
    with pytest.raises(ValueError):
        scs(s, 2, -0.1, 1, 0)
    with pytest.raises(ValueError):
        scs(s, 2, 0.1, 0, 0)
    # integer scores are fine
    assert scs(np.array([1, 2, 3]), 5, 0.5, 2, 0).shape == (5,)


# ------------------------------------------------------------------ §7 HCS
def test_hcs_cap_and_count():
    s = np.array([5.0, 0.0, 0.0, -1.0, np.nan])
    o = hcs(s, 9, 3, seed=0)
    assert o.shape == (9,)
    c = np.bincount(o, minlength=5)
    assert c.max() <= 3 and c[4] == 0
    assert c[0] == 3  # p0 = .98: it reaches its cap
    assert hcs(s, 9, 3, seed=0).tobytes() == o.tobytes()
    assert len(set(hcs(s, 4, 1, seed=1).tolist())) == 4  # cap 1 = without replacement
    with pytest.raises(ValueError):
        hcs(s, 13, 3, seed=0)  # 4 drawable items * cap 3 = 12 < 13


def _hcs_sequential(s, n, cap, seed):
    rng = np.random.default_rng(seed)
    p = np.exp(s - s.max())
    p /= p.sum()
    c = np.zeros(len(s), int)
    out = []
    while len(out) < n:
        i = rng.choice(len(s), p=p)
        if c[i] < cap:  # a capped index is no longer drawn: reject and redraw
            c[i] += 1
            out.append(i)
    return np.array(out)


def test_hcs_matches_sequential_rejection_in_distribution():
    s = np.array([2.0, 0.0, 0.0, -1.0])
    R, n, cap = 1500, 6, 2
    A = np.zeros((n, 4))
    B = np.zeros((n, 4))
    for seed in range(R):
        A[np.arange(n), _hcs_sequential(s, n, cap, seed)] += 1
        B[np.arange(n), hcs(s, n, cap, seed + 10**6)] += 1
    zmax, _ = _z(A / R, B / R, R)
    assert zmax < 4.5
