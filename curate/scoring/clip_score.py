"""CLIP score of pool samples: cosine of the L2-normalised image and text embeddings.

One chunk of pool shards at a time (`score_chunk`); bad samples are skipped and counted by
`curate.data.shards.iter_pool_samples`, a NaN score is skipped and counted here. Score files are
parquet with a ``uid`` column (32 hex characters, unique) and float32 score columns without NaN;
`save_scores` / `load_scores` check that and fail naming the file.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from curate.data.scorefiles import save_embeddings

log = logging.getLogger(__name__)


def score_chunk(
    model_source: str,
    shard_paths: list,
    batch_size: int = 256,
    device: str = "cpu",
    pretrained: str | None = None,
    embeddings_path=None,
) -> tuple[pd.DataFrame, dict]:
    """CLIP-score every kept sample of the pool shards `shard_paths` with the model
    `model_source` (see `curate.scoring.clip.load_model`).

    Returns ``(DataFrame[uid: str, clip_score: float32], report)``: one row per kept sample in
    reading order; `report` is the `SkipReport` as a dict, plus ``skipped.nan_score`` (samples
    whose score came out NaN, dropped) and ``model``. With ``embeddings_path``, the L2-normalised
    image and text embeddings of the scored rows are saved there too (`save_embeddings`), the
    input of the embedding-based scores (s-CLIPLoss, NormSim, the image-based baseline).
    """
    from curate.data.shards import SkipReport, iter_pool_batches
    from curate.scoring.clip import encode, load_model

    model, preprocess, tokenizer = load_model(model_source, device=device, pretrained=pretrained)
    report = SkipReport()
    uids: list[str] = []
    scores: list[np.ndarray] = []
    image_embs: list[np.ndarray] = []
    text_embs: list[np.ndarray] = []
    for batch in iter_pool_batches(shard_paths, report, batch_size, desc="clip score"):
        img, txt = encode(model, preprocess, tokenizer, [s.image for s in batch], [s.text for s in batch], batch_size)
        scores.append(np.einsum("ij,ij->i", img, txt).astype(np.float32))
        if embeddings_path is not None:
            image_embs.append(np.asarray(img, dtype=np.float32))
            text_embs.append(np.asarray(txt, dtype=np.float32))
        uids.extend(s.uid for s in batch)
    values = np.concatenate(scores) if scores else np.zeros(0, np.float32)
    df = pd.DataFrame({"uid": pd.Series(uids, dtype=object), "clip_score": values})
    nan = np.isnan(values)
    result = report.as_dict()
    result["skipped"]["nan_score"] = int(nan.sum())
    if nan.any():
        log.warning(
            "%d samples got a NaN CLIP score and are dropped (e.g. uid %s)", int(nan.sum()), df.uid[nan].iloc[0]
        )
        df = df[~nan].reset_index(drop=True)
        result["kept"] = int(len(df))
    result["model"] = str(model_source)
    if embeddings_path is not None:
        dim = image_embs[0].shape[1] if image_embs else 0
        img = np.concatenate(image_embs) if image_embs else np.zeros((0, dim), np.float32)
        txt = np.concatenate(text_embs) if text_embs else np.zeros((0, dim), np.float32)
        save_embeddings(embeddings_path, df["uid"].tolist(), img[~nan], txt[~nan])
    return df, result
