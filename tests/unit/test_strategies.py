"""MoS's data strategies as selections (docs/algorithms.md §5): filtering, sample weighting, re-captioning."""

import json
import tarfile

import numpy as np
import pandas as pd
import pytest

from curate.data.reshard import WEIGHT_KEY, reshard
from curate.data.scorefiles import save_scores
from curate.data.subset import u8u8_to_uids, uids_to_u8u8
from curate.registry import ConfigError
from curate.selection.methods import chunk_scores, score_source, select
from curate.selection.strategies import (
    lowest_mask,
    read_uid_column,
    recaption_table,
    recaption_uids,
    sample_weights,
    weights_table,
)
from tests.unit.pool_fixtures import uid, write_pool
from tests.unit.registry_fixtures import selection


def write_scores(folder, scores, column="clip_score"):
    """Two chunk files of scores for uid(0..len-1)."""
    folder.mkdir(parents=True, exist_ok=True)
    half = len(scores) // 2
    paths = []
    for i, (a, b) in enumerate([(0, half), (half, len(scores))]):
        path = folder / f"{i:05d}.parquet"
        frame = pd.DataFrame({"uid": [uid(u) for u in range(a, b)], column: np.asarray(scores[a:b], np.float32)})
        save_scores(frame, path, [column]) if column != "clip_score" else save_scores(frame, path)
        paths.append(path)
    return paths


SCORES = [0.30, 0.10, 0.25, 0.05, 0.40, 0.20, 0.15, 0.35, 0.12, 0.28]


def test_drop_lowest_drops_exactly_rho_by_the_keep_exactly_rule(tmp_path):
    paths = write_scores(tmp_path / "s", SCORES)
    kept = u8u8_to_uids(select(selection("drop_lowest", scorer="a", rho=0.3), {"scores": paths}))
    # round(10 * 0.7) = 7 kept: every score but the three lowest (0.05, 0.10, 0.12)
    assert sorted(kept) == sorted(uid(i) for i in range(10) if i not in (1, 3, 8))


def test_drop_lowest_breaks_ties_by_pool_order_and_keeps_at_least_one():
    scores = np.array([1.0, 0.5, 0.5, 0.5])
    # keep round(4 * 0.5) = 2: the 1.0 and the first 0.5 (stable sort)
    assert lowest_mask(scores, 0.5).tolist() == [False, False, True, True]
    assert lowest_mask(np.array([0.1, 0.2]), 0.9).tolist() == [True, False]
    assert not lowest_mask(scores, 0.0).any()
    with pytest.raises(ValueError):
        lowest_mask(scores, 1.0)


def test_drop_lowest_on_a_fusion_reads_the_fused_column(tmp_path):
    paths = write_scores(tmp_path / "f", SCORES, column="score")
    kept = u8u8_to_uids(select(selection("drop_lowest", "score", fusion="mos", rho=0.1), {"scores": paths}))
    assert sorted(kept) == sorted(uid(i) for i in range(10) if i != 3)


def test_a_strategy_takes_exactly_one_score_source(user_config):
    from curate.workflow.config import check_config

    assert score_source(selection("drop_lowest", scorer="a", rho=0.1)) == ("scorer", "a")
    assert score_source(selection("drop_lowest", fusion="m", rho=0.1)) == ("fusion", "m")
    for both_or_none in ({"scorer": "tiny-clip-clean", "fusion": "mos"}, {}):
        config = dict(
            user_config,
            selections={**user_config["selections"], "x": {"method": "drop_lowest", "rho": 0.1, **both_or_none}},
        )
        with pytest.raises(ConfigError, match=r"selections\.x: a drop_lowest selection takes exactly one"):
            check_config(config)


def test_sample_weighting_keeps_every_sample_with_its_pool_normalised_weight(tmp_path):
    paths = write_scores(tmp_path / "s", SCORES)
    kept = u8u8_to_uids(select(selection("sample_weighting", scorer="a"), {"scores": paths}))
    assert sorted(kept) == [uid(i) for i in range(10)]
    w = sample_weights(np.array(SCORES))
    expected = (np.array(SCORES) - 0.05) / (0.40 - 0.05 + 1e-8)
    np.testing.assert_allclose(w, expected)
    assert w.min() == 0.0 and 0.0 <= w.max() <= 1.0 and w[4] == pytest.approx(1.0)
    table = weights_table([uid(i) for i in range(10)], np.array(SCORES))
    table.to_parquet(tmp_path / "w.parquet", index=False)
    assert read_uid_column(tmp_path / "w.parquet", "weight")[uid(4)] == pytest.approx(1.0)


def test_recaption_names_exactly_the_lowest_rho_in_pool_order():
    uids = [uid(i) for i in range(10)]
    assert recaption_uids(uids, np.array(SCORES), 0.3) == [uid(1), uid(3), uid(8)]
    # complement of drop_lowest's kept set, whatever rho
    for rho in (0.1, 0.25, 0.5):
        low = set(recaption_uids(uids, np.array(SCORES), rho))
        assert len(low) == len(uids) - max(1, min(round(len(uids) * (1 - rho)), len(uids)))


def test_recaption_selection_keeps_every_scored_sample(tmp_path):
    paths = write_scores(tmp_path / "s", SCORES)
    kept = u8u8_to_uids(select(selection("recaption", scorer="a", rho=0.3, captioner="c"), {"scores": paths}))
    assert sorted(kept) == [uid(i) for i in range(10)]


def read_reshard(out_dir):
    samples = {}
    for path in sorted(out_dir.glob("*.tar")):
        with tarfile.open(path) as tar:
            for member in tar:
                key, ext = member.name.split(".", 1)
                samples.setdefault(key, {})[ext] = tar.extractfile(member).read()
    return samples


def test_reshard_writes_weights_and_replaces_captions(tmp_path):
    pool = write_pool(tmp_path / "pool", samples_per_shard=3, n_samples=6)
    subset = uids_to_u8u8([uid(i) for i in range(6)] + [uid(2)])
    weights = {uid(i): i / 5 for i in range(6)}
    captions = {uid(1): "a blue circle"}
    meta = reshard(subset, pool, tmp_path / "out", samples_per_shard=4, weights=weights, captions=captions)
    assert meta["weighted"] and meta["recaptioned"] == 1
    samples = read_reshard(tmp_path / "out")
    assert len(samples) == 7
    for key, parts in samples.items():
        fields = json.loads(parts["json"])
        assert fields[WEIGHT_KEY] == pytest.approx(weights[fields["uid"]])
        if fields["uid"] == uid(1):
            assert parts["txt"] == b"a blue circle" and fields["original_caption"] == "a red square number 1"
        else:
            assert parts["txt"].decode() == f"a red square number {int(fields['uid'], 16)}"
            assert "original_caption" not in fields


def test_reshard_refuses_a_subset_uid_without_a_weight(tmp_path):
    pool = write_pool(tmp_path / "pool", samples_per_shard=3, n_samples=6)
    with pytest.raises(ValueError, match="no weight"):
        reshard(uids_to_u8u8([uid(0), uid(1)]), pool, tmp_path / "out", weights={uid(0): 1.0})


def test_recaption_table_takes_each_uids_first_caption_in_the_given_order(tmp_path):
    files = []
    for c, rows in enumerate(
        [[(0, ["a blue circle", "a circle"]), (1, [" two red squares "])], [(2, ["a green star", "x"])]]
    ):
        path = tmp_path / f"{c:05d}.parquet"
        pd.DataFrame(
            {
                "uid": pd.Series([uid(u) for u, _ in rows], dtype=object),
                "text": pd.Series(["alt"] * len(rows), dtype=object),
                "captions": pd.Series([caps for _, caps in rows], dtype=object),
            }
        ).to_parquet(path, index=False)
        files.append(path)
    table = recaption_table([uid(2), uid(0), uid(1)], files)
    assert table["uid"].tolist() == [uid(2), uid(0), uid(1)]
    assert table["caption"].tolist() == ["a green star", "a blue circle", "two red squares"]
    assert recaption_table([uid(2), uid(0), uid(1)], files).equals(table)
    with pytest.raises(ValueError, match="no caption"):
        recaption_table([uid(7)], files)


def test_recaption_end_to_end_replaces_exactly_the_lowest_rho(tmp_path):
    """Scores -> lowest rho -> captions -> reshard: exactly those samples get a new caption."""
    pool = write_pool(tmp_path / "pool", samples_per_shard=5, n_samples=10)
    paths = write_scores(tmp_path / "s", SCORES)
    params = selection("recaption", scorer="a", rho=0.3, captioner="c")
    subset = select(params, {"scores": paths})
    uids, scores = chunk_scores(params, {"scores": paths})
    cap_file = tmp_path / "captions.parquet"
    pd.DataFrame(
        {
            "uid": pd.Series(uids, dtype=object),
            "text": pd.Series(["alt"] * 10, dtype=object),
            "captions": pd.Series([[f"caption {u[-2:]}"] for u in uids], dtype=object),
        }
    ).to_parquet(cap_file)
    table = recaption_table(recaption_uids(uids, scores, params["rho"]), [cap_file])
    reshard(subset, pool, tmp_path / "out", captions=dict(zip(table["uid"], table["caption"])))
    texts = {json.loads(p["json"])["uid"]: p["txt"].decode() for p in read_reshard(tmp_path / "out").values()}
    replaced = {u for u, t in texts.items() if t.startswith("caption")}
    assert replaced == {uid(1), uid(3), uid(8)}
    assert len(texts) == 10
