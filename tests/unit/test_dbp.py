"""Density-Based Pruning (docs/algorithms.md §11): SemDeDup, the cluster complexities, the quota
program, the hardest-first pick, and the selection over chunk embeddings and a CLIP prefilter."""

import numpy as np
import pandas as pd
import pytest

from curate.data.scorefiles import save_embeddings, save_scores
from curate.data.subset import u8u8_to_uids
from curate.selection import dbp
from curate.selection.methods import select
from curate.selection.sampling import top_fraction
from tests.unit.pool_fixtures import uid
from tests.unit.registry_fixtures import selection


def unit(*angles_deg):
    a = np.radians(angles_deg)
    return np.stack([np.cos(a), np.sin(a)], axis=1).astype(np.float32)


def test_allocate_is_the_box_constrained_fit_of_the_softmax_shares():
    # p * total = [8.4, 2.4, 1.2]; floor m = int(12 / 3 * 0.5) = 2 lifts the third to 2, and the
    # shift lam = -0.4 brings the sum back to 12: [8.0, 2.0, 2.0]
    assert dbp.allocate(np.array([0.7, 0.2, 0.1]), [10, 10, 10], 12, balance=0.5).tolist() == [8, 2, 2]
    # no balance: floor 1, lam = 0 fits exactly: [6.6, 3.3, 1.1], whose floors [6, 3, 1] are one
    # short: the largest fractional part (0.6) gets it
    assert dbp.allocate(np.array([0.6, 0.3, 0.1]), [10, 10, 10], 11, balance=0.0).tolist() == [7, 3, 1]
    # equal shares of 10 over 3 clusters: 3.33 each; rounding each would keep 9, the largest
    # remainder keeps exactly 10 (the tie to the first)
    assert dbp.allocate(np.full(3, 1 / 3), [10, 10, 10], 10, balance=0.0).tolist() == [4, 3, 3]
    # a cluster cannot give more than it has: [10.4, 1.3, 1.3] caps the first at 5 and lam = 2.7
    # shares the excess: [5, 4, 4]
    assert dbp.allocate(np.array([0.8, 0.1, 0.1]), [5, 10, 10], 13, balance=0.0).tolist() == [5, 4, 4]
    # an empty cluster gets nothing; a budget above the pool keeps everything
    assert dbp.allocate(np.array([0.5, 0.5]), [0, 4], 2).tolist() == [0, 2]
    assert dbp.allocate(np.array([0.5, 0.5]), [3, 4], 10).tolist() == [3, 4]


def test_largest_remainder_meets_the_total_below_the_caps():
    assert dbp.largest_remainder([1.5, 1.5, 1.0], 4, [9, 9, 9]).tolist() == [2, 1, 1]
    # the largest fraction's cluster is full: the next one takes the unit
    assert dbp.largest_remainder([1.9, 1.5, 0.6], 4, [1, 9, 9]).tolist() == [1, 2, 1]
    # a value a hair under an integer is that integer
    assert dbp.largest_remainder([2.9999999999, 1.0], 4, [9, 9]).tolist() == [3, 1]


def test_complexity_is_d_inter_times_d_intra():
    centroids = unit(0, 90, 180)
    labels = np.array([0, 0, 1, 1, 2])
    distances = np.array([0.1, 0.3, 0.05, 0.05, 0.0])
    d_inter, d_intra = dbp.cluster_complexity(centroids, labels, distances, n_neighbours=1)
    # each centroid's nearest other one: 0 -> 90 deg (1 - cos 90 = 1), 1 -> 0 or 180 (1), 2 -> 90 (1)
    np.testing.assert_allclose(d_inter, [1.0, 1.0, 1.0], atol=1e-6)
    np.testing.assert_allclose(d_intra, [0.2, 0.05, 0.0])
    d_inter2, _ = dbp.cluster_complexity(centroids, labels, distances, n_neighbours=2)
    # centroid 0: 90 deg (1) and 180 deg (2) -> 1.5; centroid 1: 1 and 1 -> 1
    np.testing.assert_allclose(d_inter2, [1.5, 1.0, 1.5], atol=1e-6)
    p = dbp.complexity_probabilities(d_inter, d_intra, temperature=0.1)
    expected = np.exp(np.array([0.2, 0.05, 0.0]) / 0.1)
    np.testing.assert_allclose(p, expected / expected.sum())


def test_an_empty_cluster_takes_the_mean_complexity():
    p = dbp.complexity_probabilities(np.array([1.0, 1.0, 1.0]), np.array([0.2, np.nan, 0.4]), temperature=1.0)
    np.testing.assert_allclose(p, np.exp([0.2, 0.3, 0.4]) / np.exp([0.2, 0.3, 0.4]).sum())


def test_semdedup_keeps_the_member_farthest_from_the_centroid():
    x = unit(0, 0.1, 10, 20)  # 0 and 0.1 deg are near duplicates (cos = 0.9999985)
    labels = np.zeros(4, np.int64)
    distances = np.array([0.2, 0.3, 0.1, 0.0])  # the 0.1 deg one is farther from the centroid
    keep = dbp.semdedup_keep(x, labels, distances, eps=1e-4)
    assert keep.tolist() == [False, True, True, True]
    # eps 0 keeps everything that is not exactly identical; duplicates in other clusters are not compared
    assert dbp.semdedup_keep(x, labels, distances, eps=0.0).all()
    assert dbp.semdedup_keep(x, np.array([0, 1, 0, 0]), distances, eps=1e-4).all()
    # blocks give the same answer as one pass
    assert dbp.semdedup_keep(x, labels, distances, eps=1e-4, block=1).tolist() == keep.tolist()


def test_dbp_keep_takes_the_hardest_of_each_cluster():
    labels = np.array([0, 0, 0, 1, 1])
    distances = np.array([0.1, 0.5, 0.3, 0.2, 0.9])
    assert dbp.dbp_keep(labels, distances, [2, 1]).tolist() == [False, True, True, False, True]


def test_denser_clusters_are_pruned_harder():
    rng = np.random.default_rng(0)
    # two clusters of 200: a tight one (spread 0.02) and a loose one (spread 0.3), far apart
    tight = np.array([1.0, 0, 0]) + rng.normal(scale=0.02, size=(200, 3))
    loose = np.array([0, 0, 1.0]) + rng.normal(scale=0.3, size=(200, 3))
    x = np.concatenate([tight, loose]).astype(np.float32)
    keep, summary = dbp.density_based_pruning(x, 0.5, 2, temperature=0.01, balance=0.0)
    assert summary["kept"] == keep.sum() == 200
    assert keep[200:].sum() > keep[:200].sum()  # the loose (complex) concept keeps more
    # with uniform shares (a huge temperature) both keep about half
    keep_uniform, _ = dbp.density_based_pruning(x, 0.5, 2, temperature=1e6, balance=0.0)
    assert abs(int(keep_uniform[:200].sum()) - 100) <= 1


def test_selection_prefilters_by_clip_score_and_deduplicates(tmp_path):
    rng = np.random.default_rng(1)
    n = 60
    x = rng.normal(size=(n, 4)).astype(np.float32)
    x[1] = x[0]  # an exact duplicate
    uids = [uid(i) for i in range(n)]
    for c in range(2):  # two chunks
        save_embeddings(tmp_path / f"{c}.npz", uids[c * 30 : (c + 1) * 30], x[c * 30 : (c + 1) * 30], x[:30, :0])
    scores = np.linspace(1.0, 0.0, n).astype(np.float32)  # uid 0 best, uid 59 worst
    save_scores(pd.DataFrame({"uid": uids, "clip_score": scores}), tmp_path / "s.parquet")
    params = selection(
        "density_based_pruning",
        fraction=0.5,
        n_clusters=4,
        scorer="clip",
        prefilter_fraction=0.5,
        dedup_eps=0.0,
    )
    inputs = {"embeddings": [tmp_path / "0.npz", tmp_path / "1.npz"], "scores": [tmp_path / "s.parquet"]}
    kept = u8u8_to_uids(select(params, inputs))
    candidates = sorted(top_fraction(scores, 0.5))  # DataComp's top-half rule (§1): 31 of 60 here
    assert set(kept) <= {uids[i] for i in candidates}
    assert not {uids[0], uids[1]} <= set(kept)  # the duplicate pair keeps at most one
    assert len(kept) == int(0.5 * (len(candidates) - 1))  # half of the deduplicated candidates


def test_prefilter_needs_both_keys():
    from curate.registry import ConfigError
    from curate.selection.methods import SELECTIONS

    entry = SELECTIONS.complete(
        {"method": "density_based_pruning", "embeddings": "e", "fraction": 0.5, "n_clusters": 2, "scorer": "clip"},
        "selections.x",
    )
    with pytest.raises(ConfigError, match="prefilter"):
        SELECTIONS.of(entry).check({}, "selections.x", entry)


def test_selection_without_prefilter_keeps_the_farthest_from_one_centroid(tmp_path):
    # five unit vectors at 0, 10, 20, 30 and 40 deg: one cluster's centroid is the 20 deg direction,
    # so keeping 40 % (quota int(0.4 * 5) = 2) keeps the two farthest, 0 and 40 deg
    x = unit(0, 10, 20, 30, 40)
    uids = [uid(i) for i in range(5)]
    save_embeddings(tmp_path / "0.npz", uids[:2], x[:2], x[:2, :0])
    save_embeddings(tmp_path / "1.npz", uids[2:], x[2:], x[2:, :0])
    params = selection("density_based_pruning", fraction=0.4, n_clusters=1)
    kept = u8u8_to_uids(select(params, {"embeddings": [tmp_path / "0.npz", tmp_path / "1.npz"]}))
    assert sorted(kept) == sorted([uids[0], uids[4]])
