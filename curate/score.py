"""CLIP score of pool samples: cosine of the L2-normalised image and text embeddings.

One chunk of pool shards at a time (`score_chunk`); bad samples are skipped and counted by
`curate.shards.iter_pool_samples`, a NaN score is skipped and counted here. Score files are
parquet with a ``uid`` column (32 hex characters, unique) and float32 score columns without NaN;
`save_scores` / `load_scores` check that and fail naming the file.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

_UID_RE = re.compile(r"^[0-9a-f]{32}$")


def score_chunk(model_source: str, shard_paths: list, batch_size: int = 256, device: str = "cpu",
                pretrained: str | None = None, embeddings_path=None) -> tuple[pd.DataFrame, dict]:
    """CLIP-score every kept sample of the pool shards `shard_paths` with the model
    `model_source` (see `curate.clip.load_model`).

    Returns ``(DataFrame[uid: str, clip_score: float32], report)``: one row per kept sample in
    reading order; `report` is the `SkipReport` as a dict, plus ``skipped.nan_score`` (samples
    whose score came out NaN, dropped) and ``model``. With ``embeddings_path``, the L2-normalised
    image and text embeddings of the scored rows are saved there too (`save_embeddings`), the
    input of the embedding-based scores (s-CLIPLoss, NormSim, the image-based baseline).
    """
    from curate.clip import encode, load_model
    from curate.shards import SkipReport, iter_pool_batches

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
        log.warning("%d samples got a NaN CLIP score and are dropped (e.g. uid %s)",
                    int(nan.sum()), df.uid[nan].iloc[0])
        df = df[~nan].reset_index(drop=True)
        result["kept"] = int(len(df))
    result["model"] = str(model_source)
    if embeddings_path is not None:
        dim = image_embs[0].shape[1] if image_embs else 0
        img = np.concatenate(image_embs) if image_embs else np.zeros((0, dim), np.float32)
        txt = np.concatenate(text_embs) if text_embs else np.zeros((0, dim), np.float32)
        save_embeddings(embeddings_path, df["uid"].tolist(), img[~nan], txt[~nan])
    return df, result


def save_embeddings(path, uids: list[str], image, text) -> Path:
    """Row-aligned ``uid``, ``image`` and ``text`` embeddings (float16, as DataComp ships its
    features) in one ``.npz``, written atomically."""
    image = np.asarray(image)
    text = np.asarray(text)
    if not (len(uids) == len(image) == len(text)):
        raise ValueError(f"{path}: {len(uids)} uids, {len(image)} image and {len(text)} text embeddings")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, uid=np.asarray(uids, dtype="U32"), image=image.astype(np.float16),
             text=text.astype(np.float16))
    os.replace(tmp, path)
    return path


def load_embeddings(path) -> tuple[list[str], np.ndarray, np.ndarray]:
    """``(uids, image float32, text float32)`` saved by `save_embeddings`."""
    with np.load(path, allow_pickle=False) as z:
        return z["uid"].tolist(), z["image"].astype(np.float32), z["text"].astype(np.float32)


def check_scores(df: pd.DataFrame, path=None, score_columns: list[str] | None = None) -> None:
    """Raise ValueError (naming `path`) unless `df` has a ``uid`` column of unique 32-hex strings
    and float32 score columns (`score_columns`, default: every other column) without NaN."""
    where = f"score file {path}" if path is not None else "scores"
    if "uid" not in df.columns:
        raise ValueError(f"{where}: no 'uid' column (columns: {list(df.columns)})")
    columns = [c for c in df.columns if c != "uid"] if score_columns is None else list(score_columns)
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"{where}: missing score columns {missing}")
    if not columns:
        raise ValueError(f"{where}: no score column")
    uid = df["uid"]
    if len(df) and not (uid.dtype == object or pd.api.types.is_string_dtype(uid.dtype)):
        raise ValueError(f"{where}: column 'uid' has dtype {uid.dtype}, expected str")
    bad = [u for u in uid if not (isinstance(u, str) and _UID_RE.match(u))]
    if bad:
        raise ValueError(f"{where}: {len(bad)} uids are not 32 lowercase hex characters, e.g. {bad[0]!r}")
    duplicated = uid[uid.duplicated()]
    if len(duplicated):
        raise ValueError(f"{where}: {len(duplicated)} duplicate uids, e.g. {duplicated.iloc[0]}")
    for c in columns:
        if df[c].dtype != np.float32:
            raise ValueError(f"{where}: column {c!r} has dtype {df[c].dtype}, expected float32")
        n_nan = int(df[c].isna().sum())
        if n_nan:
            raise ValueError(f"{where}: column {c!r} has {n_nan} NaN scores")


def save_scores(df: pd.DataFrame, path, score_columns: list[str] | None = None,
                text_columns: tuple[str, ...] = ()) -> Path:
    """Check `df` (`check_scores`) and write it as parquet (atomically) to `path`; with
    `score_columns` given, `text_columns` (strings, e.g. Sieve's best caption) ride along."""
    path = Path(path)
    check_scores(df, path, score_columns)
    path.parent.mkdir(parents=True, exist_ok=True)
    import pyarrow as pa
    import pyarrow.parquet as pq

    columns = [c for c in df.columns if c != "uid"] if score_columns is None else list(score_columns)
    text_columns = list(text_columns) if score_columns is not None else []
    schema = pa.schema([("uid", pa.string())] + [(c, pa.float32()) for c in columns]
                       + [(c, pa.string()) for c in text_columns])
    frame = df[["uid", *columns, *text_columns]].astype({"uid": object})
    table = pa.Table.from_pandas(frame, schema=schema, preserve_index=False)
    tmp = path.with_name(path.name + ".tmp")
    pq.write_table(table, tmp)
    os.replace(tmp, path)
    return path


def load_scores(path, score_columns: list[str] | None = None) -> pd.DataFrame:
    """Read a score parquet file and check it (`check_scores`); a missing file raises."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"score file not found: {path}")
    df = pd.read_parquet(path, engine="pyarrow")
    if "uid" in df.columns and pd.api.types.is_string_dtype(df["uid"].dtype) and df["uid"].dtype != object:
        df["uid"] = df["uid"].astype(object)
    check_scores(df, path, score_columns)
    return df
