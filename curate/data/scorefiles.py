"""Score and embedding files: one parquet of scores and one npz of embeddings per pool chunk and
scorer. A score file holds ``uid`` and the scorer's own score column(s) (float32), checked on
write and on read; an embedding file the L2-normalised image and text embeddings (float16)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pandas as pd

_UID_RE = re.compile(r"^[0-9a-f]{32}$")


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
    np.savez(tmp, uid=np.asarray(uids, dtype="U32"), image=image.astype(np.float16), text=text.astype(np.float16))
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


def save_scores(
    df: pd.DataFrame, path, score_columns: list[str] | None = None, text_columns: tuple[str, ...] = ()
) -> Path:
    """Check `df` (`check_scores`) and write it as parquet (atomically) to `path`; with
    `score_columns` given, `text_columns` (strings, e.g. Sieve's best caption) ride along."""
    path = Path(path)
    check_scores(df, path, score_columns)
    path.parent.mkdir(parents=True, exist_ok=True)
    import pyarrow as pa
    import pyarrow.parquet as pq

    columns = [c for c in df.columns if c != "uid"] if score_columns is None else list(score_columns)
    text_columns = list(text_columns) if score_columns is not None else []
    schema = pa.schema(
        [("uid", pa.string())] + [(c, pa.float32()) for c in columns] + [(c, pa.string()) for c in text_columns]
    )
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


def load_chunk_scores(score_files: list, column: str = "clip_score") -> tuple[list[str], np.ndarray]:
    frames = [load_scores(path) for path in score_files]
    scores = pd.concat(frames, ignore_index=True)
    duplicated = scores["uid"].duplicated()
    if duplicated.any():
        raise ValueError(
            f"uid {scores['uid'][duplicated].iloc[0]} is scored in more than one chunk of {Path(score_files[0]).parent}"
        )
    return scores["uid"].tolist(), scores[column].to_numpy(np.float64)
