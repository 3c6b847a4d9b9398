"""Scores of every kind as fusion inputs: Sieve + CLIP, M-FLYT heads, embedding scores, and
the per-scorer score columns the fuse rules hand to the fusions."""

import copy
import json

import numpy as np
import pandas as pd
import pytest
import torch

from curate.data.scorefiles import load_embeddings, load_scores, save_embeddings, save_scores
from curate.registry import ConfigError
from curate.scoring.embedding_scores import embedding_score_frame, normsim_inf, s_clip_loss
from curate.scoring.kinds import score_column
from curate.selection.flyt import MixingHead
from curate.selection.pool_fusion import (
    FUSED_COLUMN,
    fuse_chunk,
    fuse_matrix,
    fusion_statistics,
    head_inputs,
    load_score_matrix,
    split_chunk_files,
)
from curate.workflow.config import check_config
from tests.unit.pool_fixtures import uid
from tests.unit.registry_fixtures import fusion as complete_fusion
from tests.unit.registry_fixtures import scorer as complete_scorer

FLYT = {"reference": {"scorer": "clip"}, "downstream": {"dataset": "d"}, "hparams": {}}


@pytest.fixture
def sieve_and_clip(tmp_path):
    """Two chunks of a Sieve scorer (column sieve_score) and a CLIP scorer (clip_score)."""
    rng = np.random.default_rng(1)
    files = []
    for c, ids in enumerate([range(0, 6), range(6, 15)]):
        ids = list(ids)
        sieve = tmp_path / "sieve" / f"{c:05d}.parquet"
        clip = tmp_path / "clip" / f"{c:05d}.parquet"
        save_scores(
            pd.DataFrame(
                {
                    "uid": [uid(i) for i in ids],
                    "sieve_score": rng.uniform(0, 1, len(ids)).astype(np.float32),
                    "sieve_mean": rng.uniform(0, 1, len(ids)).astype(np.float32),
                    "best_caption": [f"caption {i}" for i in ids],
                }
            ),
            sieve,
            ["sieve_score", "sieve_mean"],
            text_columns=("best_caption",),
        )
        save_scores(
            pd.DataFrame(
                {"uid": [uid(i) for i in ids], "clip_score": rng.normal(0.3, 0.1, len(ids)).astype(np.float32)}
            ),
            clip,
        )
        files.append([sieve, clip])
    return files


def test_score_files_keep_text_columns_beside_the_scores(sieve_and_clip):
    frame = pd.read_parquet(sieve_and_clip[0][0])
    assert list(frame.columns) == ["uid", "sieve_score", "sieve_mean", "best_caption"]
    assert frame["best_caption"].tolist()[:2] == ["caption 0", "caption 1"]
    assert load_scores(sieve_and_clip[0][0], ["sieve_score"])["sieve_score"].dtype == np.float32


def test_each_score_file_is_read_by_its_own_column(sieve_and_clip):
    uids, S = load_score_matrix(sieve_and_clip[1], ["sieve_score", "clip_score"])
    assert uids == [uid(i) for i in range(6, 15)]
    assert S[:, 0].tolist() == pd.read_parquet(sieve_and_clip[1][0])["sieve_score"].astype(np.float64).tolist()
    with pytest.raises(ValueError, match="2 score files but 1 score columns"):
        load_score_matrix(sieve_and_clip[1], ["sieve_score"])
    with pytest.raises(ValueError, match="missing score columns"):
        load_score_matrix(sieve_and_clip[1], ["clip_score", "clip_score"])


def test_sieve_clip_is_the_mean_of_pool_minmax_scores_chunked_or_not(sieve_and_clip):
    fusion = complete_fusion("sieve_clip", ["sieve", "clip"], a=0.5)
    columns = ["sieve_score", "clip_score"]
    stats = json.loads(json.dumps(fusion_statistics(sieve_and_clip, fusion, columns)))
    chunked = pd.concat([fuse_chunk(fusion, stats, row, columns) for row in sieve_and_clip], ignore_index=True)
    S = np.concatenate([load_score_matrix(row, columns)[1] for row in sieve_and_clip])
    mm = (S - S.min(axis=0)) / (S.max(axis=0) - S.min(axis=0))
    np.testing.assert_allclose(chunked[FUSED_COLUMN], (0.5 * mm[:, 0] + 0.5 * mm[:, 1]).astype(np.float32), rtol=1e-6)
    # a = 0.25 weighs CLIP a quarter; the pool's best sample on both scores gets exactly 1
    lopsided = fuse_matrix(S, dict(fusion, a=0.25), stats)
    np.testing.assert_allclose(lopsided, 0.75 * mm[:, 0] + 0.25 * mm[:, 1])
    assert fuse_matrix(np.array([S.max(axis=0)]), fusion, stats)[0] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="for a fusion of 2 scorers"):
        fuse_matrix(S[:, :1], fusion, stats)


def test_mflyt_fuses_by_the_head_on_pool_standardised_scores(sieve_and_clip):
    fusion = complete_fusion("mflyt", ["sieve", "clip"], **FLYT)
    columns = ["sieve_score", "clip_score"]
    stats = fusion_statistics(sieve_and_clip, fusion, columns)
    head = MixingHead(2)
    with torch.no_grad():
        head.linear.weight.copy_(torch.tensor([[2.0, -1.0]]))
        head.linear.bias.fill_(0.5)
    S = np.concatenate([load_score_matrix(row, columns)[1] for row in sieve_and_clip])
    z = (S - S.mean(axis=0)) / S.std(axis=0, ddof=1)
    chunked = pd.concat([fuse_chunk(fusion, stats, row, columns, head) for row in sieve_and_clip], ignore_index=True)
    np.testing.assert_allclose(chunked[FUSED_COLUMN], 2 * z[:, 0] - z[:, 1] + 0.5, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="needs its trained head"):
        fuse_chunk(fusion, stats, sieve_and_clip[0], columns)


def test_each_scorer_kind_names_its_score_column():
    assert score_column(complete_scorer("open_clip", source="pretrained", model="m")) == "clip_score"
    assert score_column(complete_scorer("sieve", captioner="c", sentence_encoder="e")) == "sieve_score"
    assert score_column(complete_scorer("embedding", method="normsim_inf", embeddings="c", target="s")) == "normsim_inf"
    assert score_column(complete_scorer("blip_itm", model="m", head="itc")) == "itc_score"
    with pytest.raises(ConfigError, match="unknown scorer kind 'hype'"):
        score_column({"library": "hype"})


def test_embeddings_round_trip_float16(tmp_path):
    rng = np.random.default_rng(0)
    img = rng.normal(size=(4, 8)).astype(np.float32)
    txt = rng.normal(size=(4, 8)).astype(np.float32)
    path = save_embeddings(tmp_path / "e" / "00000.npz", [uid(i) for i in range(4)], img, txt)
    uids, img2, txt2 = load_embeddings(path)
    assert uids == [uid(i) for i in range(4)] and img2.dtype == np.float32
    np.testing.assert_allclose(img2, img, atol=2e-3)
    with pytest.raises(ValueError, match="3 uids"):
        save_embeddings(tmp_path / "bad.npz", [uid(i) for i in range(3)], img, txt)


def test_embedding_score_frames_are_the_scores():
    rng = np.random.default_rng(2)
    img = rng.normal(size=(50, 6))
    img /= np.linalg.norm(img, axis=1, keepdims=True)
    txt = rng.normal(size=(50, 6))
    txt /= np.linalg.norm(txt, axis=1, keepdims=True)
    uids = [uid(i) for i in range(50)]
    params = complete_scorer("embedding", method="s_clip_loss", embeddings="c", batch_size=16)
    frame = embedding_score_frame("s_clip_loss", uids, img, txt, params, seed=3)
    assert list(frame.columns) == ["uid", "s_clip_loss"]
    np.testing.assert_array_equal(frame["s_clip_loss"], s_clip_loss(img, txt, batch_size=16, seed=3))
    target = img[:5]
    frame = embedding_score_frame("normsim_inf", uids, img, txt, target_emb=target)
    np.testing.assert_array_equal(frame["normsim_inf"], normsim_inf(img, target))
    assert frame["normsim_inf"][:5].tolist() == pytest.approx([1.0] * 5, abs=1e-6)  # in the target set
    with pytest.raises(ValueError, match="target"):
        embedding_score_frame("normsim_inf", uids, img, txt)
    with pytest.raises(ValueError, match="unknown embedding score"):
        embedding_score_frame("hype", uids, img, txt)


@pytest.mark.parametrize(
    "path, value, key",
    [
        (("scorers", "sieve-tiny", "captioner"), "blip-none", "scorers.sieve-tiny.captioner"),
        (("scorers", "sieve-tiny", "sentence_encoder"), "minilm-none", "scorers.sieve-tiny.sentence_encoder"),
        (("scorers", "normsim-clean", "embeddings"), "nothing", "scorers.normsim-clean.embeddings"),
        (("scorers", "normsim-clean", "embeddings"), "sieve-tiny", "not a CLIP scorer"),
        (("fusions", "mflyt", "reference", "selection"), "nothing", "fusions.mflyt.reference.selection"),
        (("fusions", "mflyt", "downstream", "dataset"), "nothing", "fusions.mflyt.downstream.dataset"),
        (("scorers", "normsim-clean", "target"), "nothing", "scorers.normsim-clean.target"),
        (("captioners", "tiny-blip", "curated_set"), "nothing", "captioners.tiny-blip.curated_set"),
    ],
)
def test_references_of_the_new_kinds_are_checked(user_config, path, value, key):
    check_config(user_config)
    broken = copy.deepcopy(user_config)
    entry = broken
    for part in path[:-1]:
        entry = entry[part]
    entry[path[-1]] = value
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        check_config(broken)


def test_eflyt_scores_a_chunk_by_its_head_over_normalised_embeddings(tmp_path):
    from curate.selection.flyt import GLUHead

    rng = np.random.default_rng(3)
    img = rng.normal(size=(5, 4)).astype(np.float32)
    txt = rng.normal(size=(5, 4)).astype(np.float32)
    path = save_embeddings(tmp_path / "00000.npz", [uid(i) for i in range(5)], img, txt)
    fusion = complete_fusion("eflyt", ["clip"], **FLYT)
    uids, X = head_inputs(fusion, None, embedding_files=[path, path])
    assert uids == [uid(i) for i in range(5)] * 2 and X.shape == (10, 8)
    np.testing.assert_allclose(np.linalg.norm(X[:, :4], axis=1), 1, rtol=1e-5)
    torch.manual_seed(0)
    head = GLUHead(8, hidden=3)
    frame = fuse_chunk(fusion, {}, [], [], head, embeddings=path)
    with torch.no_grad():
        expected = head(torch.from_numpy(X[:5])).reshape(-1).numpy()
    np.testing.assert_allclose(frame[FUSED_COLUMN], expected, rtol=1e-6)


def test_classifier_scores_separate_the_positives_from_the_pool():
    from curate.scoring.embedding_scores import classifier_features, train_pool_classifier

    rng = np.random.default_rng(4)
    pool_img = rng.normal(size=(300, 4)).astype(np.float32)
    pool_txt = rng.normal(size=(300, 4)).astype(np.float32)
    positives = (pool_img[:40] + np.array([3, 0, 0, 0], np.float32), pool_txt[:40] + np.array([0, 3, 0, 0], np.float32))
    assert classifier_features("image_classifier", *positives).shape == (40, 4)
    assert classifier_features("image_text_classifier", *positives).shape == (40, 8)
    with pytest.raises(ValueError, match="not a classifier"):
        classifier_features("normsim_inf", *positives)
    params = {"steps": 300, "lr": 0.05, "warmup_steps": 10, "seed": 0}
    # the positives differ from the pool along image dimension 0 and text dimension 1 (= column 5
    # of [image | text]): the weights find exactly those
    for method, directions in (("image_classifier", {0}), ("image_text_classifier", {0, 5})):
        w, b = train_pool_classifier(method, (pool_img, pool_txt), positives, params)
        assert set(np.argsort(-np.abs(w))[: len(directions)]) == directions and (w[list(directions)] > 0).all()
        frame = embedding_score_frame(method, [uid(i) for i in range(40)], *positives, classifier=(w, b))
        pool_scores = embedding_score_frame(
            method, [uid(i) for i in range(300)], pool_img, pool_txt, classifier=(w, b)
        )[method]
        assert frame[method].mean() > pool_scores.mean() + 1
        again = train_pool_classifier(method, (pool_img, pool_txt), positives, params)
        np.testing.assert_array_equal(again[0], w)
    with pytest.raises(ValueError, match="needs its classifier"):
        embedding_score_frame("image_classifier", [uid(0)], pool_img[:1], pool_txt[:1])


def test_mflyt_inputs_are_the_pool_standardised_scores_of_every_chunk(sieve_and_clip):
    flat = [path for row in sieve_and_clip for path in row]
    assert split_chunk_files(flat, 2) == sieve_and_clip
    with pytest.raises(ValueError, match="whole chunks"):
        split_chunk_files(flat[:3], 2)
    columns = ["sieve_score", "clip_score"]
    fusion = complete_fusion("mflyt", ["sieve", "clip"], **FLYT)
    stats = fusion_statistics(sieve_and_clip, fusion, columns)
    uids, Z = head_inputs(fusion, stats, sieve_and_clip, columns)
    S = np.concatenate([load_score_matrix(row, columns)[1] for row in sieve_and_clip])
    assert uids == [uid(i) for i in range(15)]
    np.testing.assert_allclose(Z, (S - S.mean(axis=0)) / S.std(axis=0, ddof=1), rtol=1e-12)
