"""Tests of curate.scoring.sieve (docs/algorithms.md §4)."""

import numpy as np
import pytest

from curate.scoring.sieve import (
    MEDIUM_PHRASES,
    is_empty_after_masking,
    mask_medium_phrases,
    sieve_scores,
    sieve_scores_from_texts,
)


def test_phrase_list_and_order():
    assert list(MEDIUM_PHRASES) == [
        "an image of",
        "a photo of",
        "stock photo",
        "photo stock",
        "a photo",
        "an image",
        "image",
        "photo",
    ]


@pytest.mark.parametrize(
    "text,expected",
    [
        ("A Photo of a cat", " a cat"),  # case-insensitive, no whitespace clean-up
        ("photographer", "grapher"),  # plain substring: "photo" inside a word
        ("imagery", "ry"),
        ("a photograph", "graph"),  # "a photo" goes before "photo"
        ("an image of a photo of x", "  x"),  # "an image of" then "a photo of"
        ("Stock Photo: dog", ": dog"),
        ("photo stock image", " "),  # "photo stock" -> " image" -> " "
        ("IMAGE", ""),
        ("a dog on grass", "a dog on grass"),
        ("phophototo", "photo"),  # one pass per phrase: the re-joined "photo" stays
    ],
)
def test_mask_medium_phrases(text, expected):
    assert mask_medium_phrases(text) == expected


def test_empty_after_masking_means_exactly_empty():
    assert is_empty_after_masking("A photo of")
    assert is_empty_after_masking("imagephoto")
    assert is_empty_after_masking("")
    assert not is_empty_after_masking("A photo of ")  # " " is left: not empty (quirk)
    assert not is_empty_after_masking("an image of a photo")  # " "
    assert not is_empty_after_masking("a photo of a cat")


def test_sieve_scores_hand_computed():
    alt = np.array([[1.0, 0.0], [0.0, 1.0]])
    caps = np.array(
        [
            [[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]],  # cos with [1, 0]: 1, 0, .6
            [[0.6, 0.8], [1.0, 0.0], [0.0, -1.0]],  # cos with [0, 1]: .8, 0, -1
        ]
    )
    mx, mean, best = sieve_scores(alt, caps)
    assert mx.tolist() == pytest.approx([1.0, 0.8])
    assert mean.tolist() == pytest.approx([1.6 / 3, -0.2 / 3])
    assert best.tolist() == [0, 0]
    # the best caption of sample 0 is empty after masking -> score 0; sample 1's best
    # caption is not empty (its empty ones are not the best) -> unchanged
    empty = np.array([[True, False, False], [False, True, True]])
    mx2, mean2, best2 = sieve_scores(alt, caps, empty)
    assert mx2.tolist() == pytest.approx([0.0, 0.8])
    assert mean2.tolist() == mean.tolist() and best2.tolist() == [0, 0]
    with pytest.raises(ValueError):
        sieve_scores(alt, caps, empty[:, :2])


def test_sieve_scores_from_texts_masks_before_encoding():
    seen = []

    def encode(texts):
        seen.extend(texts)
        # toy normalised embedding: [has "cat", has "dog"] normalised, else [0, 0]
        v = np.array([[float("cat" in t), float("dog" in t)] for t in texts])
        nrm = np.linalg.norm(v, axis=1, keepdims=True)
        return np.divide(v, nrm, out=np.zeros_like(v), where=nrm > 0)

    mx, mean, best = sieve_scores_from_texts(
        ["A photo of a cat", "dog image"], [["a photo of", "cat"], ["a dog", "a cat"]], encode
    )
    assert seen[:2] == [" a cat", "dog "]
    # sample 0: captions "" (empty, cos 0) and "cat" (cos 1) -> best 1, score 1
    # sample 1: "a dog" cos 1, "a cat" cos 0 -> 1
    assert mx.tolist() == [1.0, 1.0] and best.tolist() == [1, 0]
    mx, _, best = sieve_scores_from_texts(["cat"], [["image", "photo"]], encode)
    assert mx.tolist() == [0.0]  # best caption is empty -> 0


def _toy_encode(seen=None):
    """Toy L2-normalised embeddings: [has "cat", has "dog", has "photo"], normalised, [0, 0, 0]
    for none (as a sentence encoder's output for a text with no content, here exactly zero)."""

    def encode(texts):
        if seen is not None:
            seen.extend(texts)
        v = np.array([[float("cat" in t), float("dog" in t), float("photo" in t.lower())] for t in texts])
        nrm = np.linalg.norm(v, axis=1, keepdims=True)
        return np.divide(v, nrm, out=np.zeros_like(v), where=nrm > 0)

    return encode


def test_a_best_caption_left_as_whitespace_keeps_its_cosine_only_an_exactly_empty_one_scores_0():
    """The authors' scoring script zeroes the score when the best masked caption has length 0;
    "an image of a photo" masks to " ", which is encoded and keeps its cosine."""

    def encode(texts):  # " " (whitespace left by masking) embeds like the masked alt-text " "
        return np.array([[1.0, 0.0] if t.strip() == "" else [0.0, 1.0] for t in texts])

    # alt "a photo of" -> "" (embeds [1, 0]); caption "an image of a photo" -> " " ([1, 0]): cos 1,
    # caption "dog" ([0, 1]): cos 0. Best = the whitespace caption, kept: 1.0
    mx, _, best = sieve_scores_from_texts(["a photo of"], [["an image of a photo", "dog"]], encode)
    assert best.tolist() == [0] and mx.tolist() == [1.0]
    # caption "an image of" -> "" exactly: the best caption is empty -> 0
    mx, _, best = sieve_scores_from_texts(["a photo of"], [["an image of", "dog"]], encode)
    assert best.tolist() == [0] and mx.tolist() == [0.0]


def test_sieve_mean_is_over_the_unmasked_captions_and_alt_text():
    """The authors' mean comes from their captioning step, which compares the unmasked captions
    with the unmasked alt-text; the max uses the masked texts. Toy axes [cat, dog, photo]:
    alt "a cat photo" -> masked "a cat " = [1, 0, 0]; unmasked [1, 0, 1]/sqrt2.
    captions "a cat photo" (masked [1,0,0], unmasked [1,0,1]/sqrt2) and "a dog" ([0,1,0] both).
    masked cosines: 1, 0 -> max 1; unmasked cosines: 1, 0 -> mean 0.5 (masked would be 0.5 too),
    so a third caption "photo" tells them apart: masked "" ([0,0,0], cos 0), unmasked [0,0,1]
    (cos 1/sqrt2): mean (1 + 0 + 1/sqrt2) / 3 unmasked, against (1 + 0 + 0) / 3 masked."""
    seen = []
    mx, mean, best = sieve_scores_from_texts(["a cat photo"], [["a cat photo", "a dog", "photo"]], _toy_encode(seen))
    assert mx.tolist() == pytest.approx([1.0]) and best.tolist() == [0]
    assert mean.tolist() == pytest.approx([(1 + 0 + 1 / np.sqrt(2)) / 3])
    # only the texts masking changed are encoded a second time, unmasked
    assert seen == ["a cat ", "a cat ", "a dog", "", "a cat photo", "a cat photo", "photo"]
