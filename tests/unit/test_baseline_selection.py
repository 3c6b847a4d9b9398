"""DataComp's baselines as workflow selections: from pool metadata, a trained language detector,
chunk embeddings and score files to the kept uids."""

import numpy as np
import pandas as pd
import pytest

from curate.data.scorefiles import save_embeddings, save_scores
from curate.data.shards import ShardWriter
from curate.data.subset import u8u8_to_uids
from curate.scoring.langid import train_langid
from curate.selection.baselines import image_based_mask, pool_metadata
from curate.selection.methods import SELECTIONS, select
from tests.unit.pool_fixtures import jpg_bytes, uid
from tests.unit.registry_fixtures import selection

TEXTS = {
    0: ("a red circle on a grey background", (100, 100)),
    1: ("ein roter kreis auf grauem hintergrund", (100, 100)),  # not English
    2: ("circle", (100, 100)),  # too short for basic_filter
    3: ("a blue square in the middle of it", (20, 100)),  # too small
    4: ("a green triangle next to a wall", (400, 100)),  # aspect 4 > 3
    5: ("a yellow star on a white background", (60, 80)),
    6: ("some amber colour and nothing else", (90, 90)),  # English, names no shape
}


@pytest.fixture(scope="module")
def pool(tmp_path_factory):
    root = tmp_path_factory.mktemp("pool")
    folder = root / "shards" / "00000"
    with ShardWriter(folder, 0, 10) as writer:
        for i, (text, (w, h)) in TEXTS.items():
            writer.write(
                jpg_bytes((10 * i, 0, 0)),
                text,
                {"uid": uid(i), "url": f"http://x/{i}", "original_width": w, "original_height": h},
            )
        writer.write(jpg_bytes((0, 0, 0)), "a sample without its uid", {"url": "http://x/none"})
    langid = root / "lid.bin"
    train_langid(langid, seed=0, n_per_language=300)
    return {"metadata": sorted(folder.glob("*.parquet")), "langid": langid, "root": root}


def test_pool_metadata_lists_samples_with_uids(pool):
    meta = pool_metadata(pool["metadata"])
    assert meta["uid"].tolist() == [uid(i) for i in TEXTS]
    assert meta["text"][1] == TEXTS[1][0]
    assert meta["original_width"][4] == 400


def test_basic_filter_keeps_english_long_enough_and_well_shaped(pool):
    kept = select_baseline("basic_filter", {"min_side": 32}, pool)
    assert kept == [uid(0), uid(5), uid(6)]
    # DataComp's 200 px minimum drops every sample of this pool
    assert select_baseline("basic_filter", {}, pool) == []


def test_text_based_needs_english_and_a_shape_word(pool):
    kept = select_baseline("text_based", {"concepts": "synthetic"}, pool)
    # "circle" alone is English enough for fastText? Whatever it says, sample 1 (German) and
    # sample 6 (no shape) are out and every kept one names a shape.
    assert uid(0) in kept and uid(1) not in kept and uid(6) not in kept
    assert set(kept) <= {uid(i) for i in (0, 2, 3, 4, 5)}


def test_laion2b_is_english_and_a_score_threshold(pool, tmp_path):
    scores = tmp_path / "scores.parquet"
    values = np.array([0.5, 0.9, 0.1, 0.3, 0.28, 0.27, 0.6], np.float32)
    save_scores(pd.DataFrame({"uid": [uid(i) for i in TEXTS], "clip_score": values}), scores)
    kept = select_baseline("laion2b", {"threshold": 0.28}, dict(pool, scores=[scores]))
    assert uid(1) not in kept  # 0.9 but German
    assert {uid(0), uid(3), uid(4), uid(6)} <= set(kept) and uid(5) not in kept


def test_image_based_keeps_caption_filtered_samples_in_target_clusters(pool, tmp_path):
    # two well-separated groups of pool embeddings; the downstream set sits on group A only
    a, b = np.array([1.0, 0, 0, 0]), np.array([0, 0, 1.0, 0])
    rng = np.random.default_rng(0)
    groups = {0: a, 1: a, 2: a, 3: b, 4: b, 5: a, 6: b}
    feats = np.stack([groups[i] + 0.01 * rng.normal(size=4) for i in TEXTS]).astype(np.float32)
    feats /= np.linalg.norm(feats, axis=1, keepdims=True)
    embeddings = save_embeddings(tmp_path / "e.npz", [uid(i) for i in TEXTS], feats, feats)
    target = tmp_path / "target.npz"
    np.savez(target, image=np.stack([a, a]).astype(np.float16))
    meta = pool_metadata(pool["metadata"])
    english = np.array([True, False, True, True, True, True, True])
    uids, keep = image_based_mask(meta, english, [embeddings], target, n_clusters=2)
    # group A: 1 is German, 2 ("circle") is one fastText token: the caption filter needs two
    assert [u for u, k in zip(uids, keep) if k] == [uid(0), uid(5)]
    scores = tmp_path / "scores.parquet"
    values = np.array([0.9, 0.8, 0.1, 0.7, 0.6, 0.5, 0.4], np.float32)
    save_scores(pd.DataFrame({"uid": [uid(i) for i in TEXTS], "clip_score": values}), scores)
    inputs = dict(pool, embeddings=[embeddings], target=target, scores=[scores])
    params = {"n_clusters": 2, "fraction": 0.3}
    base = select_baseline("image_based", {"n_clusters": 2}, inputs)
    both = select_baseline("image_based_clip_score", params, inputs)
    # the CLIP top 30 % of the WHOLE pool (n = 2, threshold = 3rd best = 0.7) keeps 0, 1, 3
    assert set(both) == set(base) & {uid(0), uid(1), uid(3)} == {uid(0)}
    subset = select(selection("image_based_clip_score", **params), inputs)
    assert sorted(u8u8_to_uids(subset)) == sorted(both)


def select_baseline(method: str, params: dict, inputs: dict) -> list[str]:
    entry = selection(method, **params)
    return SELECTIONS[method].run(entry, inputs)
