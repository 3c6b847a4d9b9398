"""MoS's three data strategies (docs/algorithms.md §5), each on one score per sample: a scorer's
raw score or a fusion's fused score.

- ``drop_lowest``: keep exactly ``max(1, min(round(N * (1 - rho)), N))`` samples, the highest after
  a stable descending sort (MoS's keep rule, `curate.selection.sampling.keep_ratio`).
- ``sample_weighting``: the subset is every scored sample; its loss weight is the score min-max
  normalised over the pool, ``(s - min) / (max - min + 1e-8)`` in [0, 1] (:func:`weights_table`,
  written beside the subset and into the reshard).
- ``recaption``: the subset is every scored sample; the lowest ``rho`` (the complement of
  ``drop_lowest``'s kept set) get a captioner's caption instead of their alt-text
  (:func:`recaption_uids` says which; :func:`recaption_table` takes the first sampled caption of
  each from the pool's caption files, the caption rule's output that Sieve also reads).
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from curate.selection.fusion import minmax
from curate.selection.sampling import keep_ratio

log = logging.getLogger(__name__)

WEIGHT_COLUMN = "weight"
CAPTION_COLUMN = "caption"


def lowest_mask(scores: np.ndarray, rho: float) -> np.ndarray:
    """True for the lowest ``rho`` of the samples: those MoS's keep rule with ``1 - rho`` drops."""
    if not 0.0 <= float(rho) < 1.0:
        raise ValueError(f"rho must be in [0, 1), got {rho}")
    scores = np.asarray(scores, dtype=np.float64)
    low = np.ones(scores.shape[0], dtype=bool)
    low[keep_ratio(scores, 1.0 - float(rho))] = False
    return low


def drop_lowest(uids: list[str], scores: np.ndarray, rho: float) -> list[str]:
    return [uid for uid, low in zip(uids, lowest_mask(scores, rho)) if not low]


def sample_weights(scores: np.ndarray) -> np.ndarray:
    """Per-sample loss weights: the scores min-max normalised over the pool (§5), in [0, 1]."""
    scores = np.asarray(scores, dtype=np.float64)
    if scores.size == 0:
        return scores.copy()
    return np.clip(minmax(scores), 0.0, 1.0)


def weights_table(uids: list[str], scores: np.ndarray) -> pd.DataFrame:
    """``DataFrame[uid, weight (float64)]`` of a sample_weighting selection."""
    return pd.DataFrame({"uid": pd.Series(list(uids), dtype=object), WEIGHT_COLUMN: sample_weights(scores)})


def recaption_uids(uids: list[str], scores: np.ndarray, rho: float) -> list[str]:
    """The uids whose alt-text a recaption selection replaces (the lowest ``rho``), in pool order."""
    return [uid for uid, low in zip(uids, lowest_mask(scores, rho)) if low]


def first_captions(caption_files: list) -> dict:
    """``{uid: first sampled caption}`` over a pool's caption files (columns uid, captions)."""
    out: dict = {}
    for path in caption_files:
        frame = pd.read_parquet(path, columns=["uid", "captions"])
        for uid, captions in zip(frame["uid"].tolist(), frame["captions"].tolist()):
            if uid in out:
                raise ValueError(f"uid {uid} is captioned twice ({path})")
            if captions is None or len(captions) == 0:
                raise ValueError(f"uid {uid} has no caption in {path}")
            out[uid] = str(captions[0]).strip()
    return out


def recaption_table(uids: list[str], caption_files: list) -> pd.DataFrame:
    """The new caption of every uid of `uids` (in that order). A uid without a caption stops
    with an error: the captioner saw every sample the scorers scored."""
    captions = first_captions(caption_files)
    missing = [uid for uid in uids if uid not in captions]
    if missing:
        raise ValueError(f"{len(missing)} uids to re-caption have no caption, e.g. {missing[:3]}")
    table = pd.DataFrame(
        {
            "uid": pd.Series(list(uids), dtype=object),
            "caption": pd.Series([captions[uid] for uid in uids], dtype=object),
        }
    )
    empty = int((table["caption"] == "").sum())
    if empty:
        log.warning("%d new captions are empty", empty)
    return table


def read_uid_column(path, column: str) -> dict:
    """``{uid: value}`` of a weights or captions file (parquet with ``uid`` and `column`)."""
    frame = pd.read_parquet(path)
    if "uid" not in frame.columns or column not in frame.columns:
        raise ValueError(f"{path}: needs columns uid and {column}, has {list(frame.columns)}")
    if frame["uid"].duplicated().any():
        raise ValueError(f"{path}: uid {frame['uid'][frame['uid'].duplicated()].iloc[0]} appears twice")
    return dict(zip(frame["uid"].tolist(), frame[column].tolist()))
