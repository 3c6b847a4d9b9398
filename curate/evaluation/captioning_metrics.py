"""CIDEr of generated captions against reference captions (pycocoevalcap's CIDEr-D), with COCO
caption-style tokenisation that needs no Java."""

from __future__ import annotations

import re


def cider_tokens(text: str) -> str:
    """COCO-caption style tokenisation without Java: lower case, punctuation removed."""
    return " ".join(re.findall(r"[a-z0-9]+", text.lower()))


def cider(references: list[list[str]], candidates: list[str]) -> float:
    """Corpus CIDEr-D (pycocoevalcap's ``Cider``, sigma 6, x10) of one candidate per image
    against that image's references."""
    from pycocoevalcap.cider.cider import Cider

    if len(references) != len(candidates) or not candidates:
        raise ValueError("cider needs one candidate per image and at least one image")
    gts = {i: [cider_tokens(r) for r in refs] for i, refs in enumerate(references)}
    res = {i: [cider_tokens(c)] for i, c in enumerate(candidates)}
    score, _ = Cider().compute_score(gts, res)
    return float(score)
