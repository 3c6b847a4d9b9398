"""SIEVE: caption-based alignment scores (docs/algorithms.md §4).

The captioner and the sentence encoder run elsewhere (rules/caption, rules/score);
this module holds the pure parts: medium-phrase masking and the score from
L2-normalised sentence embeddings.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

import numpy as np

__all__ = [
    "MEDIUM_PHRASES",
    "mask_medium_phrases",
    "is_empty_after_masking",
    "sieve_scores",
    "sieve_scores_from_texts",
]

#: Medium phrases, removed in THIS order (§4). Order matters: "a photo of" must go
#: before "a photo" and "photo", "an image of" before "an image" and "image".
MEDIUM_PHRASES: tuple[str, ...] = (
    "an image of",
    "a photo of",
    "stock photo",
    "photo stock",
    "a photo",
    "an image",
    "image",
    "photo",
)

_PATTERNS = tuple(re.compile(re.escape(p), re.IGNORECASE) for p in MEDIUM_PHRASES)


def mask_medium_phrases(text: str) -> str:
    """Remove the medium phrases from ``text`` (§4) **(quirk)**.

    Each phrase of :data:`MEDIUM_PHRASES`, in order, is removed everywhere it occurs as a
    case-insensitive PLAIN SUBSTRING (one left-to-right pass per phrase, non-overlapping),
    with no word boundaries and no whitespace clean-up, as the authors' code does:
    ``"A Photo of a cat" -> " a cat"``, ``"photographer" -> "grapher"``,
    ``"imagery" -> "ry"``. The case of the remaining text is kept (the sentence encoder,
    all-MiniLM-L6-v2, lower-cases anyway).
    """
    for pat in _PATTERNS:
        text = pat.sub("", text)
    return text


def is_empty_after_masking(text: str) -> bool:
    """True when masking (:func:`mask_medium_phrases`) leaves exactly nothing **(quirk)**: the
    authors zero a best caption of length 0 only; one left as whitespace (``"an image of a
    photo"`` -> ``" "``) is not empty and keeps its cosine."""
    return mask_medium_phrases(text) == ""


def _cosines(alt_emb, caption_embs) -> np.ndarray:
    a = np.asarray(alt_emb)
    c = np.asarray(caption_embs)
    if a.ndim != 2 or c.ndim != 3 or c.shape[0] != a.shape[0] or c.shape[2] != a.shape[1]:
        raise ValueError(f"expected alt N x D and captions N x K x D, got {a.shape} and {c.shape}")
    dtype = np.result_type(a.dtype, c.dtype, np.float32)
    return np.einsum("nkd,nd->nk", c.astype(dtype, copy=False), a.astype(dtype, copy=False))


def sieve_scores(alt_emb, caption_embs, caption_empty=None, raw_alt_emb=None, raw_caption_embs=None):
    """Sieve score of each sample (§4) -> ``(max, mean, argmax)``.

    ``alt_emb``: ``N x D`` sentence embeddings of the masked alt-texts; ``caption_embs``:
    ``N x K x D`` embeddings of the K masked captions; both already L2-normalised
    (all-MiniLM-L6-v2 output is), so the dot product is the cosine similarity (no
    re-normalisation here). ``cos_ik = <caption_ik, alt_i>``.

    Returns float arrays ``max_k cos_ik`` (the Sieve score), the mean over the K captions
    and the int64 index of the best caption (first on ties). ``caption_empty`` (``N x K``
    bool): a caption that is exactly empty after masking. If the BEST caption is empty, the
    score is 0 (§4); the mean and argmax are unchanged. ``raw_alt_emb`` / ``raw_caption_embs``:
    the embeddings of the UNMASKED texts; when given, the mean is over their cosines, as the
    authors' captioning step writes it; else over the masked ones.
    """
    cos = _cosines(alt_emb, caption_embs)
    best = np.argmax(cos, axis=1).astype(np.int64)
    score = cos[np.arange(cos.shape[0]), best].copy()
    if (raw_alt_emb is None) != (raw_caption_embs is None):
        raise ValueError("give both raw_alt_emb and raw_caption_embs, or neither")
    raw = cos if raw_alt_emb is None else _cosines(raw_alt_emb, raw_caption_embs)
    if raw.shape != cos.shape:
        raise ValueError(f"unmasked cosines {raw.shape} do not match the masked ones {cos.shape}")
    mean = raw.mean(axis=1)
    if caption_empty is not None:
        empty = np.asarray(caption_empty, dtype=bool)
        if empty.shape != cos.shape:
            raise ValueError(f"caption_empty must be {cos.shape}, got {empty.shape}")
        score[empty[np.arange(cos.shape[0]), best]] = 0
    return score, mean, best


def sieve_scores_from_texts(
    alt_texts: Sequence[str],
    captions: Sequence[Sequence[str]],
    encode: Callable[[list[str]], np.ndarray],
):
    """Mask, embed and score texts: ``(max, mean, argmax)`` as :func:`sieve_scores`.

    ``captions[i]`` holds the K captions of sample i (prompt already stripped);
    ``encode`` maps a list of strings to L2-normalised ``len x D`` embeddings (e.g.
    ``SentenceTransformer.encode(..., normalize_embeddings=True)``).
    """
    N = len(alt_texts)
    if len(captions) != N:
        raise ValueError(f"{N} alt-texts but {len(captions)} caption lists")
    K = len(captions[0]) if N else 0
    if any(len(c) != K for c in captions):
        raise ValueError("every sample needs the same number of captions")
    masked_alt = [mask_medium_phrases(t) for t in alt_texts]
    raw_caps = [t for cs in captions for t in cs]
    masked_caps = [mask_medium_phrases(t) for t in raw_caps]
    empty = np.array([len(m) == 0 for m in masked_caps], dtype=bool).reshape(N, K)
    alt_emb = np.asarray(encode(masked_alt))
    cap_emb = np.asarray(encode(masked_caps))
    raw_alt_emb = _unmasked(list(alt_texts), masked_alt, alt_emb, encode)
    raw_cap_emb = _unmasked(raw_caps, masked_caps, cap_emb, encode)
    return sieve_scores(alt_emb, cap_emb.reshape(N, K, -1), empty, raw_alt_emb, raw_cap_emb.reshape(N, K, -1))


def _unmasked(raw: list[str], masked: list[str], masked_emb: np.ndarray, encode) -> np.ndarray:
    """Embeddings of the unmasked texts: a text masking left unchanged reuses its embedding, the
    others are encoded (the mean over captions is the authors' captioning step's, unmasked)."""
    changed = [i for i, (r, m) in enumerate(zip(raw, masked)) if r != m]
    if not changed:
        return masked_emb
    out = np.array(masked_emb, copy=True)
    out[changed] = np.asarray(encode([raw[i] for i in changed]))
    return out


def sieve_alignment(
    encoder, alt_texts: Sequence[str], captions_per_sample: Sequence[Sequence[str]], batch_size: int = 256
) -> dict:
    """Sieve scores of N samples (§4) -> ``{"max", "mean", "argmax", "best_caption"}``.

    Through `curate.scoring.sieve.sieve_scores_from_texts`: the alt-text and every caption are masked
    with ``mask_medium_phrases``, encoded with `encode_sentences` (L2-normalised, so dot =
    cosine) and scored with ``sieve_scores``:
    ``max`` = max_k cos (0 when the best caption is exactly empty after masking), ``mean`` over
    the K unmasked captions against the unmasked alt-text, ``argmax`` the best caption's index (first on ties), ``best_caption`` that
    caption as generated (unmasked). Every sample needs the same number K >= 1 of captions.
    """
    from curate.scoring.sentence import encode_sentences

    N = len(alt_texts)
    if len(captions_per_sample) != N:
        raise ValueError(f"{N} alt-texts but {len(captions_per_sample)} caption lists")
    if N == 0:
        return {
            "max": np.zeros(0, np.float32),
            "mean": np.zeros(0, np.float32),
            "argmax": np.zeros(0, np.int64),
            "best_caption": [],
        }
    K = len(captions_per_sample[0])
    if K == 0 or any(len(c) != K for c in captions_per_sample):
        raise ValueError("every sample needs the same number (>= 1) of captions")
    mx, mean, best = sieve_scores_from_texts(
        [str(t) for t in alt_texts],
        [[str(c) for c in cs] for cs in captions_per_sample],
        lambda texts: encode_sentences(encoder, texts, batch_size),
    )
    return {
        "max": mx.astype(np.float32),
        "mean": mean.astype(np.float32),
        "argmax": best,
        "best_caption": [str(captions_per_sample[i][int(best[i])]) for i in range(N)],
    }


def sieve_score_frame(encoder, captions, batch_size: int = 256, num_captions: int | None = None):
    """The Sieve score file of one chunk from its captions file (`curate.scoring.captioning.
    caption_pool_chunk`): ``DataFrame[uid, sieve_score, sieve_mean, best_caption]``, where
    ``sieve_score`` is the max alignment (§4; 0 when the best caption is exactly empty after
    masking), ``sieve_mean`` the mean over the unmasked captions and ``best_caption`` the best
    caption as generated. ``num_captions``: score with the first k captions of each sample only
    (SIEVE Table 5's 1, 2 and 4 captions, from the same 8 sampled captions); None: all of them.
    """
    import pandas as pd

    per_sample = [list(c) for c in captions["captions"]]
    if num_captions is not None:
        short = [len(c) for c in per_sample if len(c) < num_captions]
        if short:
            raise ValueError(f"num_captions={num_captions}, but a sample has only {short[0]} captions")
        per_sample = [c[:num_captions] for c in per_sample]
    result = sieve_alignment(encoder, captions["text"].tolist(), per_sample, batch_size=batch_size)
    return pd.DataFrame(
        {
            "uid": pd.Series(captions["uid"].tolist(), dtype=object),
            "sieve_score": result["max"],
            "sieve_mean": result["mean"],
            "best_caption": pd.Series(result["best_caption"], dtype=object),
        }
    )
