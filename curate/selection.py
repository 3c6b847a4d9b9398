"""Turn a selection's config entry and its inputs into a DataComp subset of uids.

Methods available so far:
- ``no_filter``: every uid in the pool's metadata (DataComp's baseline).
- ``clip_score``: one scorer's CLIP score, top ``fraction`` by the DataComp rule (ALGORITHMS §1)
  or ``score >= threshold``.
- ``oracle``: the synthetic pool's ground-truth clean uids (an upper bound; only synthetic pools).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from curate.sampling import threshold as keep_above_threshold
from curate.sampling import top_fraction
from curate.score import load_scores
from curate.subset import uids_to_u8u8

METHODS = ("no_filter", "clip_score", "oracle")


def pool_uids(metadata_parquets: list) -> list[str]:
    """All uids listed in a pool's per-shard metadata; rows without a uid are not samples one can select."""
    frames = [pd.read_parquet(path, columns=["uid"]) for path in metadata_parquets]
    uids = pd.concat(frames, ignore_index=True)["uid"] if frames else pd.Series([], dtype=object)
    return [uid for uid in uids if isinstance(uid, str) and uid]


def clean_uids(ground_truth_parquets: list) -> list[str]:
    frames = [pd.read_parquet(path, columns=["uid", "is_clean"]) for path in ground_truth_parquets]
    truth = pd.concat(frames, ignore_index=True)
    return truth.loc[truth["is_clean"].astype(bool), "uid"].tolist()


def load_chunk_scores(score_files: list, column: str = "clip_score") -> tuple[list[str], np.ndarray]:
    frames = [load_scores(path) for path in score_files]
    scores = pd.concat(frames, ignore_index=True)
    duplicated = scores["uid"].duplicated()
    if duplicated.any():
        raise ValueError(f"uid {scores['uid'][duplicated].iloc[0]} is scored in more than one chunk of {Path(score_files[0]).parent}")
    return scores["uid"].tolist(), scores[column].to_numpy(np.float64)


def select_clip_score(uids: list[str], scores: np.ndarray, fraction: float | None = None, threshold: float | None = None) -> list[str]:
    if (fraction is None) == (threshold is None):
        raise ValueError("clip_score needs exactly one of fraction or threshold")
    kept = top_fraction(scores, fraction) if fraction is not None else keep_above_threshold(scores, threshold)
    return [uids[i] for i in np.sort(kept)]


def select(method: str, params: dict, inputs: dict) -> np.ndarray:
    """The subset (u8,u8, unsorted) for one selection; `inputs` holds the file lists the rule gathered."""
    if method == "no_filter":
        uids = pool_uids(inputs["metadata"])
    elif method == "oracle":
        uids = clean_uids(inputs["ground_truth"])
    elif method == "clip_score":
        all_uids, scores = load_chunk_scores(inputs["scores"])
        uids = select_clip_score(all_uids, scores, params.get("fraction"), params.get("threshold"))
    else:
        raise ValueError(f"unknown selection method {method!r}; known: {', '.join(METHODS)}")
    return uids_to_u8u8(uids)
