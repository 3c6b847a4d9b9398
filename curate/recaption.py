"""MoS re-captioning (ALGORITHMS §5): a captioner's caption for the samples a selection names.

`curate.selection.recaption_uids` says which samples (the lowest ``rho`` by a score). Their new
captions come from the pool's caption files (``captions/{pool}/{captioner}/{chunk}.parquet``,
the caption rule's output that Sieve also reads: per sample its alt-text and the captioner's
seeded nucleus samples); re-captioning takes the first sampled caption of each. `recaption_table`
returns ``DataFrame[uid, caption]``, which the reshard writes in place of their alt-text.
"""

from __future__ import annotations

import logging

import pandas as pd

log = logging.getLogger(__name__)


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
    table = pd.DataFrame({"uid": pd.Series(list(uids), dtype=object),
                          "caption": pd.Series([captions[uid] for uid in uids], dtype=object)})
    empty = int((table["caption"] == "").sum())
    if empty:
        log.warning("%d new captions are empty", empty)
    return table
