"""DataComp's filtering baselines (docs/algorithms.md §2), as pure numpy-in / numpy-out functions.

Every rule returns a boolean keep-mask aligned with its inputs; turning a mask into a DataComp
subset (uids, ``u8,u8``) is :mod:`curate.data.subset`'s job. Language identification is an input
(an ``english`` mask from :func:`curate.scoring.langid.is_english`, or gcld3 for LAION-2B), so the
rules are testable without a language model and can run chunk by chunk.

Rules and their quirks (reproduced on purpose; see docs/algorithms.md §2):

* :func:`basic_filter` — fastText English, ``len(text.split()) > 2``, ``len(text) > 5``,
  ``min(w, h) >= 200``, ``max(w, h) / min(w, h) <= 3``.
* :func:`laion2b_filter` — gcld3 English and CLIP B/32 score ``>= 0.28``.
* :func:`text_based_filter` — fastText English and some whitespace token whose FIRST WordNet
  synset's offset is in the ImageNet-21k synset set. The WordNet lookup is injected
  (:func:`wordnet_lookup` is the real one, nltk's reader over the fetched corpus, with
  :func:`read_wnids` of DataComp's ImageNet-21k id list; :func:`synthetic_concepts` the synthetic
  world's).
* :func:`caption_filter_for_image_based` — **(quirk)** the image-based baseline's caption filter
  is not basic_filter's: ``len(fasttext.tokenize(t)) > 1`` and ``len(t) > 5``.
* :func:`image_based_filter` — faiss k-means (L2, seed 0, 20 iterations) on the caption-filtered
  pool's image features; downstream (ImageNet-1k train) features and pool features are assigned
  to centroids by **(quirk)** argmax of the dot product, not by L2 distance.
* :func:`image_based_and_clip_score` — the L/14 top-30 % threshold is computed on the
  *unfiltered* pool, then intersected with the image-based mask.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from curate.data.scorefiles import load_chunk_scores, load_embeddings
from curate.selection.sampling import top_fraction

log = logging.getLogger(__name__)

__all__ = [
    "basic_filter",
    "laion2b_filter",
    "text_based_filter",
    "vocabulary_lookup",
    "load_wordnet",
    "wordnet_lookup",
    "read_wnids",
    "offsets_from_wnids",
    "synthetic_concepts",
    "synthetic_targets",
    "caption_filter_for_image_based",
    "kmeans_centroids",
    "MAX_POINTS_PER_CENTROID",
    "assign_argmax_dot",
    "image_based_targets",
    "image_based_keep",
    "image_based_filter",
    "image_based_and_clip_score",
]


# --------------------------------------------------------------------------- helpers
def _texts(texts) -> list[str]:
    """Texts as a list of str; a non-string entry (None / NaN from parquet) becomes ``""``."""
    return [t if isinstance(t, str) else "" for t in texts]


def _mask(x, n: int, name: str) -> np.ndarray:
    m = np.asarray(x)
    if m.ndim != 1 or m.shape[0] != n:
        raise ValueError(f"{name} must be a 1-D array of length {n}, got shape {m.shape}")
    if m.dtype != bool:
        raise ValueError(f"{name} must be boolean, got dtype {m.dtype}")
    return m


def _vector(x, n: int, name: str) -> np.ndarray:
    v = np.asarray(x, dtype=np.float64)
    if v.ndim != 1 or v.shape[0] != n:
        raise ValueError(f"{name} must be a 1-D array of length {n}, got shape {v.shape}")
    return v


def _features(x, name: str) -> np.ndarray:
    f = np.ascontiguousarray(np.asarray(x, dtype=np.float32))
    if f.ndim != 2:
        raise ValueError(f"{name} must be a 2-D (n, d) array, got shape {f.shape}")
    return f


# --------------------------------------------------------------------------- basic / laion2b
def basic_filter(
    texts: Sequence[str],
    original_widths,
    original_heights,
    english,
    min_side: int = 200,
    max_aspect: float = 3.0,
) -> np.ndarray:
    """DataComp ``basic_filter`` (docs/algorithms.md §2) -> boolean keep-mask.

    Keeps a sample iff all of:

    * ``english`` (fastText ``lid.176`` top-1 is ``en`` on the text with newlines replaced by
      spaces: :func:`curate.scoring.langid.is_english`);
    * ``len(text.split()) > 2`` (at least 3 whitespace-separated words);
    * ``len(text) > 5`` (at least 6 characters, counted on the raw text, whitespace included);
    * ``min(w, h) >= min_side`` of the ORIGINAL image (``original_width/height`` of the pool
      metadata, not the resized jpg);
    * ``max(w, h) / min(w, h) <= max_aspect`` (200 x 600 passes, 200 x 601 fails).

    ``min_side`` and ``max_aspect`` default to DataComp's 200 and 3.0; the synthetic pool
    (clean images 64-160 px) configures a smaller ``min_side``. A missing (NaN) or
    non-positive size fails; a non-string text counts as ``""`` and fails.
    """
    texts = _texts(texts)
    n = len(texts)
    eng = _mask(english, n, "english")
    w = _vector(original_widths, n, "original_widths")
    h = _vector(original_heights, n, "original_heights")
    words = np.fromiter((len(t.split()) > 2 for t in texts), dtype=bool, count=n)
    chars = np.fromiter((len(t) > 5 for t in texts), dtype=bool, count=n)
    lo = np.minimum(w, h)
    hi = np.maximum(w, h)
    with np.errstate(divide="ignore", invalid="ignore"):
        size_ok = (lo >= min_side) & (lo > 0)
        aspect_ok = (hi / np.where(lo > 0, lo, np.nan)) <= max_aspect
    return eng & words & chars & size_ok & aspect_ok


def laion2b_filter(english, clip_b32_scores, threshold: float = 0.28) -> np.ndarray:
    """DataComp's LAION-2B reproduction (docs/algorithms.md §2) -> boolean keep-mask.

    ``english AND clip_b32_similarity_score >= threshold`` (0.28). In DataComp the language
    test is **gcld3** (Google's CLD3), not fastText: the configured ``laion2b_filter`` passes
    gcld3's English mask (`curate.scoring.langid.gcld3_languages`); the tiny pool's ``laion2b``
    its synthetic fastText detector's. A NaN score is never kept.
    """
    s = np.asarray(clip_b32_scores, dtype=np.float64)
    if s.ndim != 1:
        raise ValueError(f"clip_b32_scores must be 1-D, got shape {s.shape}")
    eng = _mask(english, s.shape[0], "english")
    with np.errstate(invalid="ignore"):
        return eng & (s >= threshold)


# --------------------------------------------------------------------------- text_based
def text_based_filter(
    texts: Sequence[str],
    english,
    synset_offsets_of_token: Callable[[str], int | None],
    target_offsets: Iterable[int],
) -> np.ndarray:
    """DataComp ``text_based`` filter (docs/algorithms.md §2) -> boolean keep-mask.

    Keeps a sample iff it is English and SOME whitespace token of its text (``text.split()``,
    no punctuation stripping: ``"circles,"`` is looked up as is) has a first WordNet synset
    whose offset is in ``target_offsets`` (ImageNet-21k's synsets; see
    :func:`offsets_from_wnids`). ``synset_offsets_of_token(token)`` returns the offset of the
    token's FIRST synset or None: :func:`wordnet_lookup` for the real run (nltk's
    ``wordnet.synsets(token)[0].offset()``), :func:`vocabulary_lookup` over
    :func:`synthetic_concepts` for the synthetic pool.

    **(quirk)** only the first synset counts (``"orange"`` -> the fruit, never the colour), of
    any part of speech, and only its offset is compared (offsets are per-POS file positions, so
    a verb synset can collide with a noun offset), as in DataComp. Non-English samples are not
    looked up at all.
    """
    texts = _texts(texts)
    n = len(texts)
    eng = _mask(english, n, "english")
    targets = {int(t) for t in target_offsets}
    out = np.zeros(n, dtype=bool)
    for i, t in enumerate(texts):
        if not eng[i]:
            continue
        for tok in t.split():
            off = synset_offsets_of_token(tok)
            if off is not None and int(off) in targets:
                out[i] = True
                break
    return out


def vocabulary_lookup(mapping: Mapping[str, int], lowercase: bool = True) -> Callable[[str], int | None]:
    """A token -> offset lookup from a dict (the stand-in for WordNet's first synset).

    ``lowercase`` lower-cases the token first, as nltk's ``wordnet.synsets`` does. Punctuation
    is not stripped (WordNet does not strip it either). Unknown tokens give None.
    """
    table = {(k.lower() if lowercase else k): int(v) for k, v in mapping.items()}

    def lookup(token: str) -> int | None:
        return table.get(token.lower() if lowercase else token)

    return lookup


def load_wordnet(folder):
    """nltk's ``WordNetCorpusReader`` over the WordNet corpus in ``folder``: nltk_data's
    ``wordnet.zip`` as the ``wordnet`` models entry fetches and unpacks it (the corpus files -
    ``lexnames``, ``index.*``, ``data.*``, ``*.exc`` - in ``folder/wordnet/``, or in ``folder``
    itself). It is what ``nltk.corpus.wordnet`` reads after ``nltk.download("wordnet")``, which
    DataComp calls; nothing is downloaded here. The folder joins ``nltk.data.path``, the only
    places nltk reads corpora from."""
    import warnings
    from pathlib import Path

    try:
        import nltk.data
        from nltk.corpus.reader.wordnet import WordNetCorpusReader
    except ImportError as e:
        raise ImportError("text_based filter: the WordNet lookup needs nltk (requirements.lock pins it)") from e

    class Reader(WordNetCorpusReader):
        """nltk's reader, except that the corpus named "wordnet" (which nltk's reader opens by name
        through nltk_data to map WordNet 3.0 onto the loaded version, for its multilingual lookups)
        is this very corpus, not one found on nltk's data path."""

        def index_sense(self, version=None):
            return super().index_sense(None if version == "wordnet" else version)

    folder = Path(folder).resolve()
    root = folder / "wordnet" if (folder / "wordnet" / "lexnames").is_file() else folder
    if not (root / "lexnames").is_file():
        raise FileNotFoundError(f"{folder}: no WordNet corpus (lexnames, index.*, data.*) there or in wordnet/")
    # nltk reads corpora only under its data path (nltk.pathsec): the fetched folder is put there
    if str(folder) not in nltk.data.path:
        nltk.data.path.append(str(folder))
    with warnings.catch_warnings():  # "multilingual functions are not available": no Open Multilingual Wordnet
        warnings.simplefilter("ignore")
        return Reader(str(root), None)


def read_wnids(path) -> set[int]:
    """The WordNet offsets of a synset-id list, one id a line (ImageNet-21k's
    ``imagenet21k_wordnet_ids.txt`` as DataComp reads it); ``path`` may be the folder
    ``fetch_model`` put it in."""
    from pathlib import Path

    from curate.scoring.pretrained import fetched_file

    path = Path(path)
    if path.is_dir():
        path = fetched_file(path)
    return offsets_from_wnids(path.read_text().splitlines())


def wordnet_lookup(folder) -> Callable[[str], int | None]:
    """The real lookup: ``token -> wordnet.synsets(token)[0].offset()`` (or None), with nltk's
    WordNet reader over the corpus in ``folder`` (`load_wordnet`).

    nltk lower-cases the token and lemmatises it (``morphy``: "circles" -> "circle"); a word with
    senses in several parts of speech gives its nouns first, then verbs, adjectives, adverbs.
    Results are cached per token.
    """
    wordnet = load_wordnet(folder)
    cache: dict[str, int | None] = {}

    def lookup(token: str) -> int | None:
        if token not in cache:
            synsets = wordnet.synsets(token)
            cache[token] = int(synsets[0].offset()) if synsets else None
        return cache[token]

    return lookup


def offsets_from_wnids(wnids: Iterable[str]) -> set[int]:
    """ImageNet synset ids (``"n01440764"``) -> WordNet offsets (``1440764``)."""
    out = set()
    for w in wnids:
        w = w.strip()
        if not w:
            continue
        if len(w) != 9 or w[0] not in "nvasr" or not w[1:].isdigit():
            raise ValueError(f"not a WordNet id (like n01440764): {w!r}")
        out.add(int(w[1:]))
    return out


def _concept_id(kind: str, name: str) -> int:
    """A stable 8-digit pseudo-offset for a synthetic concept (crc32, independent of order)."""
    return zlib.crc32(f"synthetic.{kind}.{name}".encode()) % 100_000_000


def synthetic_concepts() -> dict[str, int]:
    """The synthetic world's WordNet analogue: object word -> concept id ("first synset offset").

    Shape words: every one-word shape synonym of the caption grammar, singular and plural
    (``circle``, ``circles``, ``disc``, ``box``, ``wedge``, ``rhombus`` ...), all of one shape
    mapping to that shape's concept (nltk lemmatises plurals the same way). Multi-word synonyms
    (``round shape``, ``plus sign``, ``three-sided shape``, ``five-pointed star``) add no
    entry: their tokens either are the shape's own name already (``star``) or name no shape
    (WordNet would not give "shape" or "sign" the circle's synset). Colour words: every colour synonym
    (``red``, ``crimson``, ``jet-black`` ...) mapping to the colour's concept, which is never a
    target. Ids are crc32-based 8-digit numbers: stable across runs and vocabulary order.
    """
    from curate.data.synthetic.captions import COLOUR_SYNONYMS, SHAPE_SYNONYMS

    out: dict[str, int] = {}
    for shape, forms in SHAPE_SYNONYMS.items():
        cid = _concept_id("shape", shape)
        for sing, plur in forms:
            if " " not in sing:
                out[sing] = cid
                out[plur] = cid
        out[shape] = cid
    for colour, words in COLOUR_SYNONYMS.items():
        cid = _concept_id("colour", colour)
        for w in words:
            out.setdefault(w, cid)
    ids = {}
    for word, cid in out.items():
        ids.setdefault(cid, set()).add(word)
    n_concepts = len(SHAPE_SYNONYMS) + len(COLOUR_SYNONYMS)
    if len(ids) != n_concepts:  # pragma: no cover - guards a crc32 collision
        raise RuntimeError("synthetic concept ids collide")
    return out


def synthetic_targets() -> set[int]:
    """The ImageNet-21k analogue: the concept ids of the synthetic world's shapes."""
    from curate.data.synthetic.world import SHAPES

    return {_concept_id("shape", s) for s in SHAPES}


# --------------------------------------------------------------------------- image_based
def caption_filter_for_image_based(
    texts: Sequence[str],
    english,
    tokenize: Callable[[str], list] | None = None,
) -> np.ndarray:
    """The image-based baseline's caption filter (docs/algorithms.md §2) -> boolean keep-mask.

    English AND ``len(tokenize(text)) > 1`` AND ``len(text) > 5``; ``tokenize`` defaults to
    ``fasttext.tokenize``. **(quirk)** this is not basic_filter's caption rule: two tokens
    suffice (basic_filter needs three words), and fastText's tokenizer emits ``"</s>"`` for a
    newline, so ``"hello\\n"`` has two tokens and passes the token test. The raw text (newlines
    kept) is tokenised; only the language test sees newlines replaced.
    """
    texts = _texts(texts)
    n = len(texts)
    eng = _mask(english, n, "english")
    if tokenize is None:
        import fasttext

        tokenize = fasttext.tokenize
    out = np.zeros(n, dtype=bool)
    for i, t in enumerate(texts):
        out[i] = bool(eng[i]) and len(t) > 5 and len(tokenize(t)) > 1
    return out


#: DataComp's image-based baseline raises faiss's ``max_points_per_centroid`` (256 by default,
#: beyond which faiss trains on a seeded subsample) to 10 000 000, so k-means sees every point.
MAX_POINTS_PER_CENTROID = 10_000_000


def kmeans_centroids(
    features,
    n_clusters: int,
    n_iter: int = 20,
    seed: int = 0,
    max_points_per_centroid: int = MAX_POINTS_PER_CENTROID,
    spherical: bool = False,
    **faiss_kwargs,
) -> np.ndarray:
    """faiss k-means (docs/algorithms.md §2, image_based) -> ``(n_clusters, d)`` float32 centroids.

    ``faiss.Kmeans(d, n_clusters, niter=n_iter, seed=seed, spherical=False,
    max_points_per_centroid=...)`` (L2 k-means unless ``spherical``, which renormalises the
    centroids after each iteration, as SemDeDup and DBP cluster; DataComp: 100 000 clusters, 20 iterations, seed 0,
    and ``max_points_per_centroid`` 10 000 000, so every point is clustered: with faiss's default
    of 256 it would train on a subsample of ``256 * n_clusters`` points) trained on ``features``
    as float32. Other faiss ``ClusteringParameters`` pass through ``faiss_kwargs``. The same seed
    and features give the same centroids. Needs ``n >= n_clusters``.
    """
    import faiss

    x = _features(features, "features")
    n, d = x.shape
    k = int(n_clusters)
    if k < 1:
        raise ValueError(f"n_clusters must be >= 1, got {k}")
    if n < k:
        raise ValueError(f"k-means needs at least n_clusters={k} points, got {n}")
    km = faiss.Kmeans(
        d,
        k,
        niter=int(n_iter),
        seed=int(seed),
        spherical=bool(spherical),
        verbose=False,
        max_points_per_centroid=int(max_points_per_centroid),
        **faiss_kwargs,
    )
    km.train(x)
    return np.ascontiguousarray(km.centroids, dtype=np.float32).reshape(k, d)


def assign_argmax_dot(features, centroids, batch_size: int = 65_536) -> np.ndarray:
    """Cluster id of each feature by **argmax of the dot product** (docs/algorithms.md §2 quirk).

    ``argmax_j <x_i, c_j>``, not the L2-nearest centroid the k-means itself used: the two
    agree only for centroids of equal norm, so a long centroid attracts features that lie
    nearer a short one. Ties go to the lowest centroid id (``np.argmax``). Computed in float32
    in batches of ``batch_size`` rows. Returns int64 ids.
    """
    x = _features(features, "features")
    c = _features(centroids, "centroids")
    if x.shape[1] != c.shape[1]:
        raise ValueError(f"features have dimension {x.shape[1]}, centroids {c.shape[1]}")
    out = np.empty(x.shape[0], dtype=np.int64)
    ct = np.ascontiguousarray(c.T)
    step = max(1, int(batch_size))
    for a in range(0, x.shape[0], step):
        out[a : a + step] = np.argmax(x[a : a + step] @ ct, axis=1)
    return out


def image_based_targets(
    pool_image_features,
    caption_mask,
    downstream_image_features,
    n_clusters: int,
    n_iter: int = 20,
    seed: int = 0,
    max_points_per_centroid: int = MAX_POINTS_PER_CENTROID,
) -> tuple[np.ndarray, np.ndarray]:
    """First half of the image-based baseline: ``(centroids, target_ids)``.

    k-means (:func:`kmeans_centroids`) on the pool features that pass the caption filter
    (``caption_mask``), then every downstream (ImageNet-1k train) feature is assigned by
    argmax dot (:func:`assign_argmax_dot`); ``target_ids`` (sorted int64, unique) are the hit
    centroids. At pool scale compute ``caption_mask`` per chunk and pass the gathered
    caption-filtered features with an all-True mask.
    """
    x = _features(pool_image_features, "pool_image_features")
    m = _mask(caption_mask, x.shape[0], "caption_mask")
    centroids = kmeans_centroids(
        x[m], n_clusters, n_iter=n_iter, seed=seed, max_points_per_centroid=max_points_per_centroid
    )
    hit = assign_argmax_dot(downstream_image_features, centroids)
    return centroids, np.unique(hit)


def image_based_keep(features_chunk, caption_mask_chunk, centroids, targets) -> np.ndarray:
    """Second half of the image-based baseline, one chunk at a time -> boolean keep-mask.

    Keep iff the sample passes the caption filter and its argmax-dot centroid is a target.
    """
    x = _features(features_chunk, "features_chunk")
    m = _mask(caption_mask_chunk, x.shape[0], "caption_mask_chunk")
    if x.shape[0] == 0:
        return np.zeros(0, dtype=bool)
    ids = assign_argmax_dot(x, centroids)
    return m & np.isin(ids, np.asarray(targets, dtype=np.int64))


def image_based_filter(
    pool_image_features,
    caption_mask,
    downstream_image_features,
    n_clusters: int,
    n_iter: int = 20,
    seed: int = 0,
    max_points_per_centroid: int = MAX_POINTS_PER_CENTROID,
) -> np.ndarray:
    """DataComp ``image_based`` filter (docs/algorithms.md §2) -> boolean keep-mask over the pool.

    :func:`image_based_targets` then :func:`image_based_keep` on the whole pool: k-means
    (faiss, L2, ``seed``) on the caption-filtered pool features; targets = centroids that some
    downstream feature hits by argmax dot; keep a sample iff it passes the caption filter and
    its own argmax-dot centroid is a target. DataComp: 100 000 clusters, L/14 image features,
    ImageNet-1k train as the downstream set.
    """
    centroids, targets = image_based_targets(
        pool_image_features,
        caption_mask,
        downstream_image_features,
        n_clusters,
        n_iter=n_iter,
        seed=seed,
        max_points_per_centroid=max_points_per_centroid,
    )
    return image_based_keep(pool_image_features, caption_mask, centroids, targets)


def image_based_and_clip_score(clip_scores_unfiltered_pool, image_based_mask, fraction: float = 0.3) -> np.ndarray:
    """``image_based ∩ clip_score`` (docs/algorithms.md §2) -> boolean keep-mask.

    The CLIP L/14 threshold is computed on the WHOLE, unfiltered pool first, by the §1 rule
    (:func:`curate.selection.sampling.top_fraction`: ``thr = sort_descending(s)[int(N * fraction)]``,
    keep ``s >= thr``), and only then intersected with the image-based mask; the threshold is
    not recomputed among the image-based survivors (which would keep a different, larger
    share of them). NaN scores are never kept.
    """
    s = np.asarray(clip_scores_unfiltered_pool)
    if s.ndim != 1:
        raise ValueError(f"clip scores must be 1-D, got shape {s.shape}")
    m = _mask(image_based_mask, s.shape[0], "image_based_mask")
    keep = np.zeros(s.shape[0], dtype=bool)
    keep[top_fraction(s, fraction)] = True
    return keep & m


# --------------------------------------------------------------------------------------------
# The baselines on a pool's files


def pool_metadata(parquets: list) -> pd.DataFrame:
    """``uid, text, original_width, original_height`` of every listed sample of a pool (rows
    without a uid cannot be selected and are left out). The text is DataComp's ``text`` column,
    else img2dataset's ``caption``."""
    frames = []
    for path in parquets:
        frame = pd.read_parquet(path)
        text = "text" if "text" in frame.columns else "caption"
        frames.append(
            pd.DataFrame(
                {
                    "uid": frame["uid"],
                    "text": frame[text].fillna("").astype(str),
                    "original_width": frame["original_width"],
                    "original_height": frame["original_height"],
                }
            )
        )
    meta = (
        pd.concat(frames, ignore_index=True)
        if frames
        else pd.DataFrame(columns=["uid", "text", "original_width", "original_height"])
    )
    keep = meta["uid"].map(lambda u: isinstance(u, str) and bool(u))
    return meta[keep].reset_index(drop=True)


def _load_embeddings(paths: list) -> tuple[list[str], np.ndarray]:

    uids, images = [], []
    for path in paths:
        chunk_uids, image, _ = load_embeddings(path)
        uids += chunk_uids
        images.append(image)
    return uids, (np.concatenate(images) if images else np.zeros((0, 0), np.float32))


def _target_embeddings(path) -> np.ndarray:
    with np.load(path, allow_pickle=False) as z:
        return z["image"].astype(np.float32)


def image_based_mask(
    meta: pd.DataFrame,
    english: np.ndarray,
    embedding_files: list,
    target_file,
    n_clusters: int,
    seed: int = 0,
    n_iter: int = 20,
    max_points_per_centroid: int = MAX_POINTS_PER_CENTROID,
) -> tuple[list[str], np.ndarray]:
    """``(uids, keep)`` of the image-based filter over the samples that have an embedding (a
    sample whose image did not decode has none and is never kept)."""
    uids, features = _load_embeddings(embedding_files)
    caption_ok = pd.Series(caption_filter_for_image_based(meta["text"].tolist(), english), index=meta["uid"])
    mask = caption_ok.reindex(uids, fill_value=False).to_numpy(bool)
    keep = image_based_filter(
        features,
        mask,
        _target_embeddings(target_file),
        n_clusters,
        n_iter=n_iter,
        seed=seed,
        max_points_per_centroid=max_points_per_centroid,
    )
    return uids, keep


def _scores(score_files: list, column: str) -> pd.Series:
    uids, scores = load_chunk_scores(score_files, column)
    return pd.Series(scores, index=uids)


def _english(meta: pd.DataFrame, params: dict, inputs: dict) -> np.ndarray:
    """The selection's language detector (its ``langid_models`` entry, ``params["langid_model"]``)
    on the pool's texts: fastText from its file or folder, gcld3 from its package."""
    from curate.scoring.langid import english_mask

    english = english_mask(params["langid_model"], inputs.get("langid"), meta["text"].tolist())
    log.info(
        "%s: %d of %d listed samples are English (%s)",
        params["method"],
        int(english.sum()),
        len(meta),
        params["langid_model"]["library"],
    )
    return english


# The baselines as selection methods (`curate.selection.methods.SELECTIONS`): each reads the pool's
# metadata parquets and language detector, and as it needs a CLIP scorer's scores or embeddings and
# the downstream set's image embeddings; returns the kept uids.


def select_basic_filter(params: dict, inputs: dict) -> list[str]:
    meta = pool_metadata(inputs["metadata"])
    english = _english(meta, params, inputs)
    keep = basic_filter(
        meta["text"].tolist(),
        meta["original_width"],
        meta["original_height"],
        english,
        min_side=params["min_side"],
        max_aspect=params["max_aspect"],
    )
    return meta["uid"][keep].tolist()


def select_text_based(params: dict, inputs: dict) -> list[str]:
    meta = pool_metadata(inputs["metadata"])
    english = _english(meta, params, inputs)
    if params["concepts"] == "synthetic":
        lookup, targets = vocabulary_lookup(synthetic_concepts()), synthetic_targets()
    else:  # DataComp's: nltk's WordNet and ImageNet-21k's synset ids, each a fetched `models` entry
        lookup, targets = wordnet_lookup(inputs["wordnet"]), read_wnids(inputs["synsets"])
    keep = text_based_filter(meta["text"].tolist(), english, lookup, targets)
    return meta["uid"][keep].tolist()


def select_laion2b(params: dict, inputs: dict) -> list[str]:
    meta = pool_metadata(inputs["metadata"])
    english = _english(meta, params, inputs)
    scores = _scores(inputs["scores"], params["score_column"]).reindex(meta["uid"])
    keep = laion2b_filter(english, scores.to_numpy(np.float64), params["threshold"])
    return meta["uid"][keep].tolist()


def select_image_based(params: dict, inputs: dict) -> list[str]:
    meta = pool_metadata(inputs["metadata"])
    english = _english(meta, params, inputs)
    uids, keep = image_based_mask(
        meta,
        english,
        inputs["embeddings"],
        inputs["target"],
        params["n_clusters"],
        params["seed"],
        params["n_iter"],
        params["max_points_per_centroid"],
    )
    if params["method"] == "image_based_clip_score":
        scores = _scores(inputs["scores"], params["score_column"])
        pool = scores.index.tolist()
        clip_keep = pd.Series(
            image_based_and_clip_score(scores.to_numpy(), np.ones(len(pool), bool), params["fraction"]), index=pool
        )
        keep = keep & clip_keep.reindex(uids, fill_value=False).to_numpy(bool)
    return [u for u, k in zip(uids, keep) if k]
