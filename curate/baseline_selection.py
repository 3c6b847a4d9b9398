"""DataComp's baselines (ALGORITHMS §2) as selection methods of the workflow: they read a pool's
metadata (per-shard parquet: uid, text, original size), a fastText language detector, and for
the image-based ones a CLIP scorer's chunk embeddings, its scores and the downstream set's
image embeddings; the filters themselves are the pure functions of `curate.baselines`.

Methods (config ``selections.<name>.method``):
- ``basic_filter``: English, > 2 words, > 5 characters, ``min_side`` and ``max_aspect`` of the
  original image (DataComp: 200 px and 3.0; the synthetic pool's images are 64-160 px).
- ``text_based``: English and some token whose first WordNet synset is an ImageNet-21k synset
  (``concepts: wordnet``), or the synthetic world's analogue (``concepts: synthetic``).
- ``image_based``: k-means on the caption-filtered pool image embeddings, targets = clusters
  hit by the downstream set (argmax dot), keep caption-filtered samples in target clusters.
- ``image_based_clip_score``: the image-based mask AND the CLIP-score top ``fraction`` computed on
  the whole unfiltered pool.
- ``laion2b``: English AND CLIP score >= ``threshold`` (DataComp: gcld3's English and B/32 >= 0.28;
  the workflow's language test is the fastText detector for every method).
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from curate import baselines
from curate.langid import is_english, load_langid

log = logging.getLogger(__name__)

BASELINE_METHODS = ("basic_filter", "text_based", "image_based", "image_based_clip_score", "laion2b")


def pool_metadata(parquets: list) -> pd.DataFrame:
    """``uid, text, original_width, original_height`` of every listed sample of a pool (rows
    without a uid cannot be selected and are left out). The text is DataComp's ``text`` column,
    else img2dataset's ``caption``."""
    frames = []
    for path in parquets:
        frame = pd.read_parquet(path)
        text = "text" if "text" in frame.columns else "caption"
        frames.append(pd.DataFrame({
            "uid": frame["uid"], "text": frame[text].fillna("").astype(str),
            "original_width": frame["original_width"], "original_height": frame["original_height"],
        }))
    meta = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(
        columns=["uid", "text", "original_width", "original_height"])
    keep = meta["uid"].map(lambda u: isinstance(u, str) and bool(u))
    return meta[keep].reset_index(drop=True)


def _load_embeddings(paths: list) -> tuple[list[str], np.ndarray]:
    from curate.score import load_embeddings

    uids, images = [], []
    for path in paths:
        chunk_uids, image, _ = load_embeddings(path)
        uids += chunk_uids
        images.append(image)
    return uids, (np.concatenate(images) if images else np.zeros((0, 0), np.float32))


def _target_embeddings(path) -> np.ndarray:
    with np.load(path, allow_pickle=False) as z:
        return z["image"].astype(np.float32)


def image_based_mask(meta: pd.DataFrame, english: np.ndarray, embedding_files: list, target_file,
                     n_clusters: int, seed: int = 0, n_iter: int = 20) -> tuple[list[str], np.ndarray]:
    """``(uids, keep)`` of the image-based filter over the samples that have an embedding (a
    sample whose image did not decode has none and is never kept)."""
    uids, features = _load_embeddings(embedding_files)
    caption_ok = pd.Series(baselines.caption_filter_for_image_based(meta["text"].tolist(), english),
                           index=meta["uid"])
    mask = caption_ok.reindex(uids, fill_value=False).to_numpy(bool)
    keep = baselines.image_based_filter(features, mask, _target_embeddings(target_file), n_clusters,
                                        n_iter=n_iter, seed=seed)
    return uids, keep


def _scores(score_files: list) -> pd.Series:
    from curate.selection import load_chunk_scores

    uids, scores = load_chunk_scores(score_files)
    return pd.Series(scores, index=uids)


def select_baseline(method: str, params: dict, inputs: dict) -> list[str]:
    """The uids a DataComp baseline keeps; `inputs` as gathered by the workflow (``metadata``
    parquets, ``langid`` model, and as the method needs ``embeddings``, ``target``, ``scores``)."""
    if method not in BASELINE_METHODS:
        raise ValueError(f"unknown baseline {method!r}; known: {', '.join(BASELINE_METHODS)}")
    meta = pool_metadata(inputs["metadata"])
    english = is_english(load_langid(inputs["langid"]), meta["text"].tolist())
    log.info("%s: %d of %d listed samples are English", method, int(english.sum()), len(meta))
    if method == "basic_filter":
        keep = baselines.basic_filter(meta["text"].tolist(), meta["original_width"], meta["original_height"], english,
                                      min_side=params.get("min_side", 200), max_aspect=params.get("max_aspect", 3.0))
        return meta["uid"][keep].tolist()
    if method == "text_based":
        if params.get("concepts", "wordnet") == "synthetic":
            lookup, targets = baselines.vocabulary_lookup(baselines.synthetic_concepts()), baselines.synthetic_targets()
        else:
            raise ValueError("text_based with WordNet concepts needs the ImageNet-21k synset list "
                             "(`baselines.wordnet_lookup` + `offsets_from_wnids`); not configured here")
        keep = baselines.text_based_filter(meta["text"].tolist(), english, lookup, targets)
        return meta["uid"][keep].tolist()
    if method == "laion2b":
        scores = _scores(inputs["scores"]).reindex(meta["uid"])
        keep = baselines.laion2b_filter(english, scores.to_numpy(np.float64), params.get("threshold", 0.28))
        return meta["uid"][keep].tolist()
    uids, keep = image_based_mask(meta, english, inputs["embeddings"], inputs["target"],
                                  params["n_clusters"], params.get("seed", 0), params.get("n_iter", 20))
    if method == "image_based_clip_score":
        scores = _scores(inputs["scores"])
        pool = scores.index.tolist()
        clip_keep = pd.Series(baselines.image_based_and_clip_score(scores.to_numpy(), np.ones(len(pool), bool),
                                                                    params.get("fraction", 0.3)), index=pool)
        keep = keep & clip_keep.reindex(uids, fill_value=False).to_numpy(bool)
    return [u for u, k in zip(uids, keep) if k]
