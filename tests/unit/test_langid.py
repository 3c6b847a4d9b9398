"""Tests of curate.scoring.langid: fastText language identification and the synthetic detector."""

from collections import Counter

import numpy as np
import pytest

from curate.scoring.langid import (
    accuracy_english,
    is_english,
    load_langid,
    predict_languages,
    synthetic_langid_corpus,
    train_langid,
)

N_TRAIN = 600


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    path = tmp_path_factory.mktemp("langid") / "langid.bin"
    model = train_langid(path, seed=0, n_per_language=N_TRAIN)
    return path, model


def test_corpus_counts_and_splits():
    c = synthetic_langid_corpus(0, 50)
    assert Counter(lang for lang, _ in c) == {"en": 50, "de": 50, "es": 50, "fr": 50, "und": 50}
    assert synthetic_langid_corpus(0, 50) == c  # seeded
    held = synthetic_langid_corpus(0, 50, split=1)
    assert held != c
    no_gib = synthetic_langid_corpus(0, 20, gibberish_label=None)
    assert "und" not in {lang for lang, _ in no_gib}


def test_heldout_english_accuracy(trained):
    _, model = trained
    held = synthetic_langid_corpus(0, 400, split=1)  # a draw the model never saw
    assert accuracy_english(model, held) >= 0.95
    langs = predict_languages(model, [t for _, t in held])
    truth = [lang for lang, _ in held]
    assert np.mean(np.array(langs) == np.array(truth)) >= 0.9
    # the pool's gibberish is not called English
    gib = [t for lang, t in held if lang == "und"]
    assert not is_english(model, gib).mean() > 0.05


def test_round_trip_through_file(trained, tmp_path):
    path, model = trained
    assert path.is_file()
    loaded = load_langid(path)
    texts = ["two small red circles on the left", "ein rotes Quadrat links", "un cercle bleu"]
    assert predict_languages(loaded, texts) == predict_languages(model, texts)
    assert predict_languages(loaded, texts)[0] == "en"
    # save_model / load_model again keeps the predictions
    loaded.save_model(str(tmp_path / "again.bin"))
    assert predict_languages(load_langid(tmp_path / "again.bin"), texts) == predict_languages(model, texts)
    with pytest.raises(FileNotFoundError):
        load_langid(tmp_path / "missing.bin")


def test_predict_newlines_and_non_strings(trained):
    _, model = trained
    # DataComp replaces newlines by spaces (fastText's predict refuses "\n")
    assert predict_languages(model, ["a pair of\nblue squares"]) == predict_languages(model, ["a pair of blue squares"])
    out = predict_languages(model, [None, "", float("nan")])
    assert len(out) == 3 and all(isinstance(x, str) for x in out)
    mask = is_english(model, ["three green stars", "drei grüne Sterne"])
    assert mask.dtype == bool and mask.tolist() == [True, False]
    # batching does not change the result
    texts = ["three green stars", "drei grüne Sterne", "tres estrellas verdes"]
    assert predict_languages(model, texts, batch_size=1) == predict_languages(model, texts)


def test_training_is_deterministic(trained, tmp_path):
    path, _ = trained
    again = tmp_path / "again.bin"
    train_langid(again, seed=0, n_per_language=N_TRAIN, verify=False)
    assert again.read_bytes() == path.read_bytes()


def test_multithreaded_training_refused(tmp_path):
    with pytest.raises(ValueError, match="thread"):
        train_langid(tmp_path / "x.bin", seed=0, n_per_language=10, thread=2)
