import numpy as np
import pandas as pd
import pytest

from curate.data.scorefiles import load_chunk_scores, save_scores
from curate.data.subset import u8u8_to_uids
from curate.registry import ConfigError
from curate.selection.methods import clean_uids, pool_uids, select
from tests.unit.pool_fixtures import uid, write_pool
from tests.unit.registry_fixtures import selection


def write_chunk_scores(folder, rows):
    paths = []
    for i, chunk in enumerate(rows):
        path = folder / f"{i:05d}.parquet"
        save_scores(
            pd.DataFrame(
                {"uid": [uid(u) for u, _ in chunk], "clip_score": np.array([s for _, s in chunk], np.float32)}
            ),
            path,
        )
        paths.append(path)
    return paths


def test_clip_score_keeps_the_top_fraction_by_the_datacomp_rule(tmp_path):
    # 10 scores 0.0 .. 0.9 over two chunks; fraction 0.3: n = 3, thr = sorted_desc[3] = 0.6,
    # so the scores >= 0.6 are kept: uids 6, 7, 8, 9 (n + 1 samples, docs/algorithms.md §1).
    paths = write_chunk_scores(tmp_path, [[(i, i / 10) for i in range(5)], [(i, i / 10) for i in range(5, 10)]])
    subset = select(selection("clip_score", fraction=0.3), {"scores": paths})
    assert sorted(u8u8_to_uids(subset)) == [uid(i) for i in (6, 7, 8, 9)]
    subset = select(selection("clip_score", threshold=0.75), {"scores": paths})
    assert sorted(u8u8_to_uids(subset)) == [uid(8), uid(9)]


def test_a_uid_scored_in_two_chunks_stops_the_selection(tmp_path):
    paths = write_chunk_scores(tmp_path, [[(1, 0.5)], [(1, 0.6)]])
    with pytest.raises(ValueError, match="more than one chunk"):
        load_chunk_scores(paths, "clip_score")


def test_no_filter_takes_every_uid_of_the_metadata(tmp_path):
    tars = write_pool(tmp_path, samples_per_shard=3, n_samples=5, corrupt={2})
    parquets = [p.with_suffix(".parquet") for p in tars]
    assert pool_uids(parquets) == [uid(i) for i in range(5)]
    assert len(select(selection("no_filter"), {"metadata": parquets})) == 5


def test_oracle_takes_the_clean_uids(tmp_path):
    truth = tmp_path / "truth.parquet"
    pd.DataFrame(
        {
            "uid": [uid(1), uid(2), uid(3)],
            "is_clean": [True, False, True],
            "noise_type": ["clean", "gibberish", "clean"],
        }
    ).to_parquet(truth)
    assert clean_uids([truth]) == [uid(1), uid(3)]
    assert sorted(u8u8_to_uids(select(selection("oracle"), {"ground_truth": [truth]}))) == [uid(1), uid(3)]


def test_unknown_method_is_refused():
    with pytest.raises(ConfigError, match="unknown selection method 'magic'"):
        select({"method": "magic"}, {})
