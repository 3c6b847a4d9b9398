"""Tests of curate.selection.baselines (docs/algorithms.md §2, DataComp baselines)."""

import sys

import numpy as np
import pytest

from curate.selection.baselines import (
    assign_argmax_dot,
    basic_filter,
    caption_filter_for_image_based,
    image_based_and_clip_score,
    image_based_filter,
    image_based_keep,
    image_based_targets,
    kmeans_centroids,
    laion2b_filter,
    offsets_from_wnids,
    synthetic_concepts,
    synthetic_targets,
    text_based_filter,
    vocabulary_lookup,
    wordnet_lookup,
)

T = np.ones(1, dtype=bool)


# ------------------------------------------------------------------ basic_filter
def _basic(text, w=300, h=300, en=True, **kw):
    return bool(basic_filter([text], [w], [h], np.array([en]), **kw)[0])


def test_basic_filter_hand_computed():
    assert _basic("a red circle on grey")
    # len(text) > 5: "ab c d" has 6 characters and 3 words -> passes; "a b c" has 5 -> fails
    assert _basic("ab c d")
    assert not _basic("a b c")
    # len(text.split()) > 2: two words fail however long
    assert not _basic("a b")
    assert not _basic("longword anotherlongword")
    # whitespace counts in len(text), not in split()
    assert not _basic("a  b  ")  # 6 chars but 2 words
    # language
    assert not _basic("a red circle on grey", en=False)
    # non-string text counts as "" and fails
    assert not basic_filter([None], [300], [300], T)[0]


def test_basic_filter_size_and_aspect():
    text = "a red circle on grey"
    assert _basic(text, 200, 600)  # min 200 >= 200, 600 / 200 = 3.0 <= 3
    assert _basic(text, 600, 200)
    assert not _basic(text, 200, 601)  # aspect 3.005 > 3
    assert not _basic(text, 601, 200)
    assert not _basic(text, 199, 300)  # min side < 200
    assert not _basic(text, 300, 199)
    # min_side is a parameter (the synthetic pool uses a small one)
    assert _basic(text, 40, 100, min_side=32)
    assert not _basic(text, 31, 40, min_side=32)
    assert not _basic(text, 40, 121, min_side=32)  # 121 / 40 > 3
    # missing / zero size fails, even with min_side 0
    assert not _basic(text, np.nan, 300)
    assert not _basic(text, 0, 0, min_side=0)


def test_basic_filter_vectorised_and_validated():
    texts = ["one two three", "x y", "one two three", "one two three"]
    keep = basic_filter(texts, [300, 300, 100, 300], [300, 300, 300, 300], np.array([1, 1, 1, 0], bool))
    assert keep.dtype == bool and keep.tolist() == [True, False, False, False]
    with pytest.raises(ValueError, match="english"):
        basic_filter(texts, [1] * 4, [1] * 4, np.ones(3, bool))
    with pytest.raises(ValueError, match="boolean"):
        basic_filter(texts, [1] * 4, [1] * 4, np.ones(4))


# ------------------------------------------------------------------ laion2b
def test_laion2b_filter():
    en = np.array([True, True, False, True, True])
    s = np.array([0.28, 0.2799, 0.9, np.nan, 0.5])
    assert laion2b_filter(en, s).tolist() == [True, False, False, False, True]
    assert laion2b_filter(en, s, threshold=0.5).tolist() == [False, False, False, False, True]


# ------------------------------------------------------------------ text_based
def test_text_based_filter_hand_computed():
    lookup = vocabulary_lookup({"dog": 2084071, "orange": 7747607, "run": 1926311})
    targets = {2084071}
    texts = ["a happy Dog", "an orange", "dog", "a cat", "dogs,", "a dog"]
    en = np.array([True, True, True, True, True, False])
    keep = text_based_filter(texts, en, lookup, targets)
    # lower-cased like nltk; "dogs," is not a vocabulary entry (no punctuation stripping);
    # a non-English sample is never kept
    assert keep.tolist() == [True, False, True, False, False, False]


def test_text_based_filter_first_synset_only():
    # the lookup returns only the FIRST synset's offset: a token whose first sense is not a
    # target does not match, even if a later sense would
    first_sense = {"orange": 7747607}  # the fruit; the colour's synset would be another offset
    keep = text_based_filter(["an orange ball"], T, vocabulary_lookup(first_sense), {4960277})
    assert not keep[0]


def test_synthetic_concepts_and_targets():
    c = synthetic_concepts()
    t = synthetic_targets()
    assert len(t) == 6
    assert c["circle"] == c["circles"] == c["disc"] == c["discs"] and c["circle"] in t
    assert c["box"] == c["square"] and c["lozenges"] == c["diamond"]
    assert c["red"] == c["crimson"] and c["red"] not in t
    assert c["star"] in t and "shape" not in c and "sign" not in c
    assert len({c[w] for w in c}) == 6 + 8
    assert synthetic_concepts() == c  # stable
    assert all(0 <= v < 10**8 for v in c.values())


def test_text_based_on_synthetic_captions():
    from curate.data.synthetic.captions import canonical_caption, non_english_caption
    from curate.data.synthetic.world import random_scene, rng_for

    rng = rng_for(0, 99, 0)
    scenes = [random_scene(rng) for _ in range(100)]
    texts = [canonical_caption(s) for s in scenes]
    lookup, targets = vocabulary_lookup(synthetic_concepts()), synthetic_targets()
    # every canonical caption names its shape by a one-word concept
    assert text_based_filter(texts, np.ones(100, bool), lookup, targets).all()
    # colour words alone are not targets; a comma glued to the shape word hides it (quirk)
    assert text_based_filter(
        ["red circles, two of them", "two red circles"], np.ones(2, bool), lookup, targets
    ).tolist() == [False, True]
    # French "un triangle rouge" contains a target word but is not English
    fr = [non_english_caption(s, rng)[0] for s in scenes[:10]]
    assert not text_based_filter(fr, np.zeros(10, bool), lookup, targets).any()


def test_wordnet_lookup_clear_error_without_nltk(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "nltk", None)
    monkeypatch.setitem(sys.modules, "nltk.corpus", None)
    monkeypatch.setitem(sys.modules, "nltk.corpus.reader.wordnet", None)
    with pytest.raises(ImportError, match="WordNet lookup needs nltk"):
        wordnet_lookup(tmp_path)


def test_offsets_from_wnids():
    assert offsets_from_wnids(["n01440764", "n02084071\n", ""]) == {1440764, 2084071}
    with pytest.raises(ValueError, match="WordNet id"):
        offsets_from_wnids(["dog"])


# ------------------------------------------------------------------ caption filter (image_based)
def test_caption_filter_differs_from_basic():
    texts = ["ab cdef", "abcdefgh", "a b", "hello\n", "one two three"]
    en = np.ones(5, bool)
    cap = caption_filter_for_image_based(texts, en)  # fasttext.tokenize
    # 2 tokens suffice (basic_filter needs 3 words); 1 token fails; 3 chars fail len > 5;
    # fastText tokenizes "\n" as "</s>": "hello\n" = 2 tokens, 6 chars -> passes (quirk)
    assert cap.tolist() == [True, False, False, True, True]
    basic = basic_filter(texts, [300] * 5, [300] * 5, en)
    assert basic.tolist() == [False, False, False, False, True]
    assert not caption_filter_for_image_based(["ab cdef"], np.zeros(1, bool))[0]
    # injected tokenizer
    assert not caption_filter_for_image_based(["ab cdef"], T, tokenize=lambda t: [t])[0]


# ------------------------------------------------------------------ image_based
def test_argmax_dot_is_not_l2_nearest():
    centroids = np.array([[1.0, 0.0], [3.0, 3.0]], dtype=np.float32)  # the second is long
    x = np.array([[1.0, 0.1], [0.0, 1.0], [-1.0, -1.0]], dtype=np.float32)
    dot = assign_argmax_dot(x, centroids)
    l2 = np.argmin(((x[:, None, :] - centroids[None]) ** 2).sum(-1), axis=1)
    # x0 = (1, .1): L2-nearest is centroid 0 (distance .1), but <x0, c1> = 3.3 > <x0, c0> = 1
    assert l2[0] == 0 and dot[0] == 1
    assert dot.tolist() == [1, 1, 0]
    assert dot.dtype == np.int64
    # batching does not change the result; ties go to the lowest id
    assert assign_argmax_dot(x, centroids, batch_size=1).tolist() == dot.tolist()
    assert assign_argmax_dot([[1.0, 1.0]], [[1.0, 0.0], [0.0, 1.0]]).tolist() == [0]


def _two_blobs(n_per=40, seed=0):
    rng = np.random.default_rng(seed)
    a = np.array([1.0, 0.0, 0.0, 0.0]) + 0.05 * rng.standard_normal((n_per, 4))
    b = np.array([0.0, 1.0, 0.0, 0.0]) + 0.05 * rng.standard_normal((n_per, 4))
    x = np.concatenate([a, b]).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


def test_kmeans_same_seed_same_centroids():
    x = _two_blobs(60)
    c1 = kmeans_centroids(x, 2, seed=0)
    c2 = kmeans_centroids(x, 2, seed=0)
    assert c1.dtype == np.float32 and c1.shape == (2, 4)
    assert np.array_equal(c1, c2)
    # L2 k-means finds the two blobs (centroids near e1 and e2, in some order)
    near = sorted(int(np.argmax(c)) for c in c1)
    assert near == [0, 1]
    with pytest.raises(ValueError, match="at least"):
        kmeans_centroids(x[:1], 2)


def test_kmeans_clusters_every_point_as_datacomp_raises_max_points_per_centroid():
    """DataComp sets faiss's max_points_per_centroid to 10 000 000. With one centroid k-means
    converges to the mean: x_i = (i, 0) for i = 0..299 gives (149.5, 0). faiss's default (256
    points per centroid) would train on a seeded subsample of 256 of the 300 points instead."""
    x = np.stack([np.arange(300, dtype=np.float32), np.zeros(300, np.float32)], axis=1)
    c = kmeans_centroids(x, 1, seed=0)
    assert c.tolist() == [[149.5, 0.0]]
    sub = kmeans_centroids(x, 1, seed=0, max_points_per_centroid=256)
    assert sub[0, 0] != 149.5  # the mean of a subsample


def test_image_based_two_cluster_toy():
    x = _two_blobs(40)  # samples 0-39 near e1, 40-79 near e2
    caption = np.ones(80, bool)
    caption[[3, 50]] = False  # one caption failure in each blob
    rng = np.random.default_rng(5)
    downstream = (np.array([1.0, 0.0, 0.0, 0.0]) + 0.05 * rng.standard_normal((10, 4))).astype(np.float32)
    keep = image_based_filter(x, caption, downstream, n_clusters=2)
    expected = np.zeros(80, bool)
    expected[:40] = True
    expected[3] = False  # in a target cluster but fails the caption filter
    assert keep.tolist() == expected.tolist()

    # the split API, chunk by chunk, gives the same mask
    centroids, targets = image_based_targets(x, caption, downstream, n_clusters=2)
    assert targets.dtype == np.int64 and len(targets) == 1
    chunks = [image_based_keep(x[a : a + 25], caption[a : a + 25], centroids, targets) for a in range(0, 80, 25)]
    assert np.concatenate(chunks).tolist() == keep.tolist()
    # k-means ran on the caption-filtered features only
    assert np.array_equal(centroids, kmeans_centroids(x[caption], 2, seed=0))
    # downstream features in both blobs -> both clusters are targets
    both = np.concatenate([downstream, x[45:46]])
    keep2 = image_based_filter(x, caption, both, n_clusters=2)
    assert keep2.tolist() == caption.tolist()


def test_image_based_and_clip_score_uses_unfiltered_threshold():
    s = np.array([10.0, 9, 8, 7, 6, 5, 4, 3, 2, 1])
    image_mask = np.array([1, 0, 0, 0, 0, 1, 1, 1, 1, 1], bool)
    # unfiltered pool: N = 10, n = int(3.0) = 3, thr = sorted_desc[3] = 7 -> s >= 7 = {0, 1, 2, 3}
    # intersected with the image mask -> {0}
    keep = image_based_and_clip_score(s, image_mask, fraction=0.3)
    assert np.flatnonzero(keep).tolist() == [0]
    # thresholding the FILTERED pool instead (6 scores 10 5 4 3 2 1: n = int(1.8) = 1,
    # thr = 5) would also keep index 5: the rule must not do that
    filtered = np.flatnonzero(image_mask)
    thr_filtered = -np.sort(-s[filtered])[int(len(filtered) * 0.3)]
    assert thr_filtered == 5.0 and (s[filtered] >= thr_filtered).sum() == 2
    # NaN scores never kept
    s2 = s.copy()
    s2[0] = np.nan
    assert not image_based_and_clip_score(s2, image_mask)[0]
