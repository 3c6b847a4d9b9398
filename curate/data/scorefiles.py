"""Score and embedding files: one parquet of scores and one npz of embeddings per pool chunk and
scorer. A score file holds ``uid`` and the scorer's own score column(s) (float32), checked on
write and on read; an embedding file the L2-normalised image and text embeddings (float16).

A score file's **contract** (`score_contract`) is the exact list of its columns and their dtypes:
``uid`` (string), the score columns (float32, the score first), then text columns (string). A
scorer kind declares it in its registry entry (`curate.scoring.kinds.score_contract`), fused
chunks have their own; writers write exactly it (`save_scores`) and readers check every file
against it (`check_score_file`, `load_scores`), so a renamed or retyped column stops the job
naming the file instead of turning into NaN rows when chunks are merged. Scores must be finite:
a writer skips and counts NaN and +-inf rows (`finite_scores`), a reader rejects them.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd

from curate.data.integrity import reading, writing

log = logging.getLogger(__name__)

_UID_RE = re.compile(r"^[0-9a-f]{32}$")
#: The dtypes a score file's columns may have, and their arrow types.
SCORE_DTYPE, TEXT_DTYPE = "float32", "string"


class ScoreContractError(ValueError):
    """A score file's columns or dtypes are not the ones its writer's contract lists."""


def score_contract(score_columns, text_columns=()) -> dict[str, str]:
    """The exact columns of a score file and their dtypes, in order: ``uid`` (string), each of
    ``score_columns`` (float32, the score first), each of ``text_columns`` (string)."""
    contract = {"uid": TEXT_DTYPE}
    for column in score_columns:
        contract[column] = SCORE_DTYPE
    for column in text_columns:
        contract[column] = TEXT_DTYPE
    if len(contract) != 1 + len(score_columns) + len(text_columns) or len(score_columns) < 1:
        raise ValueError(f"a score contract needs distinct columns and a score column: {score_columns}, {text_columns}")
    return contract


def contract_columns(contract: dict) -> tuple[list[str], list[str]]:
    """``(score columns, text columns)`` of a contract."""
    scores = [c for c, dtype in contract.items() if c != "uid" and dtype == SCORE_DTYPE]
    texts = [c for c, dtype in contract.items() if c != "uid" and dtype == TEXT_DTYPE]
    return scores, texts


def _describe(columns) -> str:
    return "[" + ", ".join(f"{name}: {dtype}" for name, dtype in columns) + "]"


def check_score_file(path, contract: dict) -> None:
    """Raise (naming ``path``) unless the parquet file's columns and dtypes are exactly
    ``contract``'s, in order. Reads the file's schema only."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"score file not found: {path}")
    with reading(path, f"score parquet (expected columns {_describe(contract.items())})"):
        schema = pq.read_schema(path)
    arrow = {TEXT_DTYPE: pa.string(), SCORE_DTYPE: pa.float32()}
    found = [(f.name, {"float": "float32", "double": "float64"}.get(str(f.type), str(f.type))) for f in schema]
    expected = list(contract.items())
    if [f.name for f in schema] != [c for c, _ in expected] or any(
        f.type != arrow[dtype] for f, (_, dtype) in zip(schema, expected)
    ):
        raise ScoreContractError(
            f"score file {path}: columns {_describe(found)}, but its writer's contract is exactly "
            f"{_describe(expected)}; a renamed, retyped, missing or extra column stops here. Rebuild the file "
            "with the rule that writes it (`snakemake --forcerun <the file> -- <your targets>`)"
        )


def check_score_files(paths, contracts) -> None:
    """`check_score_file` of every file: ``contracts`` is one contract for all of them, or a list
    taken in turn (a fusion's chunk-major files come one per scorer: ``contracts[i % n]``)."""
    contracts = [contracts] if isinstance(contracts, dict) else list(contracts)
    for i, path in enumerate([paths] if isinstance(paths, (str, Path)) else list(paths)):
        check_score_file(path, contracts[i % len(contracts)])


def finite_scores(df: pd.DataFrame, score_columns, path=None) -> tuple[pd.DataFrame, dict]:
    """The rows of ``df`` whose every score column is finite, and ``{"nan_score": n, "inf_score":
    m}``: the rows skipped for a NaN, and for a +-inf (and no NaN). What a writer does before
    `save_scores` (which, like every reader, rejects non-finite scores); logged naming ``path``."""
    values = df[list(score_columns)].to_numpy(np.float64) if len(df) else np.zeros((0, len(score_columns)))
    nan = np.isnan(values).any(axis=1)
    inf = np.isinf(values).any(axis=1) & ~nan
    counts = {"nan_score": int(nan.sum()), "inf_score": int(inf.sum())}
    if nan.any() or inf.any():
        example = df["uid"][nan | inf].iloc[0] if "uid" in df.columns else "?"
        log.warning(
            "%s: %d rows with a NaN score and %d with an infinite one are skipped (e.g. uid %s)",
            path if path is not None else "scores",
            counts["nan_score"],
            counts["inf_score"],
            example,
        )
        df = df[~(nan | inf)].reset_index(drop=True)
    return df, counts


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
    with writing(path, "embeddings (.npz)"):
        np.savez(tmp, uid=np.asarray(uids, dtype="U32"), image=image.astype(np.float16), text=text.astype(np.float16))
        os.replace(tmp, path)
    return path


def load_embeddings(path) -> tuple[list[str], np.ndarray, np.ndarray]:
    """``(uids, image float32, text float32)`` saved by `save_embeddings`; an unreadable file
    raises naming it."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"embeddings file not found: {path}")
    with reading(path, "embeddings .npz (uid, image, text)"):
        with np.load(path, allow_pickle=False) as z:
            return z["uid"].tolist(), z["image"].astype(np.float32), z["text"].astype(np.float32)


def check_scores(df: pd.DataFrame, path=None, score_columns: list[str] | None = None) -> None:
    """Raise ValueError (naming `path`) unless `df` has a ``uid`` column of unique 32-hex strings
    and float32 score columns (`score_columns`, default: every other column) without NaN or
    +-inf."""
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
        values = df[c].to_numpy()
        for sign, n_inf in (("+", int(np.isposinf(values).sum())), ("-", int(np.isneginf(values).sum()))):
            if n_inf:
                raise ValueError(f"{where}: column {c!r} has {n_inf} {sign}inf scores (scores must be finite)")


def save_scores(
    df: pd.DataFrame,
    path,
    score_columns: list[str] | None = None,
    text_columns: tuple[str, ...] = (),
    *,
    contract: dict | None = None,
) -> Path:
    """Check `df` (`check_scores`) and write it as parquet (atomically) to `path`; with
    `score_columns` given, `text_columns` (strings, e.g. Sieve's best caption) ride along. With a
    `contract` (`score_contract`: the writer's registry entry), exactly its columns are written.
    A failed write (a full disk) raises naming the file."""
    path = Path(path)
    if contract is not None:
        score_columns, text_columns = contract_columns(contract)
    check_scores(df, path, score_columns)
    if contract is not None:
        absent = [c for c in contract if c not in df.columns]
        if absent:
            raise ScoreContractError(f"score file {path}: the frame lacks {absent} of its contract {list(contract)}")
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
    with writing(path, "score parquet"):
        pq.write_table(table, tmp)
        os.replace(tmp, path)
    return path


def load_scores(path, score_columns: list[str] | None = None, *, contract: dict | None = None) -> pd.DataFrame:
    """Read a score parquet file and check it (`check_scores`; with a `contract`, its exact
    columns and dtypes first: `check_score_file`); a missing or unreadable file raises naming it."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"score file not found: {path}")
    if contract is not None:
        check_score_file(path, contract)
        score_columns = contract_columns(contract)[0]
    with reading(path, "score parquet (uid and float32 score columns)"):
        df = pd.read_parquet(path, engine="pyarrow")
    if "uid" in df.columns and pd.api.types.is_string_dtype(df["uid"].dtype) and df["uid"].dtype != object:
        df["uid"] = df["uid"].astype(object)
    check_scores(df, path, score_columns)
    return df


def load_chunk_scores(
    score_files: list, column: str = "clip_score", contract: dict | None = None
) -> tuple[list[str], np.ndarray]:
    """The uids and ``column`` of a pool's chunk files, in chunk order. Each file must hold
    ``column`` (float32, finite; with a ``contract``, exactly the contract's columns), and all
    the same columns: a file whose columns differ stops the read naming it, so merging chunks
    never makes NaN rows; the merged scores are checked again."""
    frames = [load_scores(path, [column] if contract is None else None, contract=contract) for path in score_files]
    if not frames:
        raise ValueError("load_chunk_scores: no score files")
    first = list(frames[0].columns)
    for path, frame in zip(score_files, frames):
        if list(frame.columns) != first:
            raise ScoreContractError(
                f"score file {path}: columns {list(frame.columns)}, but {score_files[0]} of the same scorer has {first}"
            )
    scores = pd.concat(frames, ignore_index=True)
    duplicated = scores["uid"].duplicated()
    if duplicated.any():
        raise ValueError(
            f"uid {scores['uid'][duplicated].iloc[0]} is scored in more than one chunk of {Path(score_files[0]).parent}"
        )
    values = scores[column].to_numpy(np.float64)
    if not np.isfinite(values).all():  # cannot happen after the per-file checks; never let it through
        raise ValueError(f"scores of {Path(score_files[0]).parent}: {int((~np.isfinite(values)).sum())} not finite")
    return scores["uid"].tolist(), values


def write_scored_chunk(scores: pd.DataFrame, report: dict, scores_path, report_path, contract: dict) -> pd.DataFrame:
    """A scoring job's two files for one scorer and chunk: the finite rows of ``scores`` under
    its ``contract`` (`finite_scores`, `save_scores`; NaN rows a scorer already dropped stay
    counted in ``report``) and ``report`` (JSON) with the skipped non-finite rows added. Returns
    the rows written."""
    import json

    scores, skipped = finite_scores(scores, contract_columns(contract)[0], scores_path)
    for reason, n in skipped.items():
        report["skipped"][reason] = report["skipped"].get(reason, 0) + n
    save_scores(scores, scores_path, contract=contract)
    with writing(report_path, "score report (json)"), open(report_path, "w") as stream:
        json.dump(report, stream, indent=2)
    return scores
