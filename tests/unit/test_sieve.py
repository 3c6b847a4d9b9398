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


def test_empty_after_masking():
    assert is_empty_after_masking("A photo of ")
    assert is_empty_after_masking("")
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
