"""A real pool's metadata: fetched from the Hugging Face Hub, put into DataComp's columns, sampled.

The steps before `curate.data.download.split_metadata` splits a pool's metadata into chunk files:

- `fetch_metadata`: one ``huggingface_hub.snapshot_download`` of the pool's dataset repo (DataComp:
  ``mlfoundations/datacomp_<scale>``, as DataComp's ``download_upstream.py`` does; its parquet
  files only) into a folder; rerunning resumes, files already there are not fetched again.
- `prepare_metadata`: for sources that are not DataComp's (CC3M, LAION-400M), rename the columns
  to DataComp's (``uid, url, text`` and, where the source has them, ``original_width,
  original_height, face_bboxes, sha256``), make a ``uid`` where the source has none, and
  optionally draw a seeded uniform random sample of the rows (``laion100m``: 100M of LAION-400M).

A made uid is the md5 of ``"<row>:<url>"`` (32 hex characters, DataComp's form), ``row`` being
the row's position in the source metadata (files in sorted path order): unique even where a
source repeats a url, and the same for every run and every sample drawn from that source.

The sample: ``numpy.random.default_rng(seed).choice(n_rows, n, replace=False)``, sorted, so the
kept rows stay in source order; the same seed and source give the same rows. It holds an int64
per source row while drawing (3.2 GB for LAION-400M's rows), then streams the files in batches.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

log = logging.getLogger(__name__)

#: DataComp's metadata columns that `prepare_metadata` keeps (in this order) when present.
DATACOMP_COLUMNS = ("uid", "url", "text", "original_width", "original_height", "face_bboxes", "sha256")
FETCH_RECORD = "fetch.json"


def metadata_files(folder) -> list[Path]:
    """The ``*.parquet`` files under `folder`, in sorted relative-path order (the row order of
    the pool)."""
    folder = Path(folder)
    files = sorted(folder.rglob("*.parquet"), key=lambda p: p.relative_to(folder).as_posix())
    if not files:
        raise FileNotFoundError(f"no *.parquet metadata file under {folder}")
    return files


def fetch_metadata(
    hf_dataset: str, out_dir, allow_patterns=("*.parquet",), revision: str | None = None, snapshot_download=None
) -> dict:
    """Download the parquet metadata of the Hub dataset `hf_dataset` into `out_dir` and write
    ``out_dir/fetch.json`` (repo, revision, files with sizes). `snapshot_download` defaults to
    huggingface_hub's (a test passes its own). Returns the record."""
    if snapshot_download is None:
        from huggingface_hub import snapshot_download
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    snapshot_download(
        repo_id=hf_dataset,
        repo_type="dataset",
        revision=revision,
        allow_patterns=list(allow_patterns),
        local_dir=str(out_dir),
    )
    files = metadata_files(out_dir)
    record = {
        "hf_dataset": hf_dataset,
        "revision": revision,
        "allow_patterns": list(allow_patterns),
        "files": [{"path": f.relative_to(out_dir).as_posix(), "bytes": f.stat().st_size} for f in files],
        "n_rows": int(sum(pq.ParquetFile(f).metadata.num_rows for f in files)),
    }
    _write_json(out_dir / FETCH_RECORD, record)
    return record


def made_uid(row: int, url: str) -> str:
    """A uid for a source without one: md5 of ``"<row>:<url>"``, 32 hex characters."""
    return hashlib.md5(f"{int(row)}:{url}".encode("utf-8")).hexdigest()


def sample_rows(n_rows: int, n: int, seed: int) -> np.ndarray:
    """Sorted row indices of a seeded uniform sample of `n` of `n_rows` rows, without replacement."""
    if not 1 <= n <= n_rows:
        raise ValueError(f"cannot sample {n} rows from a source of {n_rows}")
    return np.sort(np.random.default_rng(seed).choice(n_rows, size=n, replace=False))


def prepare_metadata(
    source,
    out_path,
    columns: dict | None = None,
    uid_from: str | None = None,
    sample: dict | None = None,
    batch_size: int = 65536,
) -> dict:
    """Write one parquet `out_path` holding the source's rows in DataComp's columns.

    `source`: a parquet file or a folder of them. `columns`: DataComp name -> source name (names
    not given are taken as they are). `uid_from`: ``url`` makes the uid (`made_uid`) instead of
    reading one. `sample`: ``{"n", "seed"}`` keeps a seeded random sample (`sample_rows`) of the
    rows. Rows without a url are dropped and counted. Returns a summary (also written as
    ``<out_path>.json``).
    """
    files = [Path(source)] if Path(source).is_file() else metadata_files(source)
    columns = dict(columns or {})
    unknown = sorted(set(columns) - set(DATACOMP_COLUMNS))
    if unknown:
        raise ValueError(f"columns: {unknown} are not DataComp metadata columns {DATACOMP_COLUMNS}")
    if uid_from not in (None, "url"):
        raise ValueError(f"uid_from must be None or 'url', got {uid_from!r}")
    names = pq.read_schema(files[0]).names
    wanted = {c: columns.get(c, c) for c in DATACOMP_COLUMNS if not (c == "uid" and uid_from)}
    present = {c: s for c, s in wanted.items() if s in names}
    missing = [f"{c} (source column {wanted[c]!r})" for c in ("uid", "url", "text") if c in wanted and c not in present]
    if missing:
        raise ValueError(f"metadata {files[0]} lacks {missing}; its columns: {names}")
    n_rows = int(sum(pq.ParquetFile(f).metadata.num_rows for f in files))
    keep = None if not sample else sample_rows(n_rows, int(sample["n"]), int(sample["seed"]))

    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_name(out_path.name + ".tmp")
    order = [c for c in DATACOMP_COLUMNS if c == "uid" or c in present]
    writer = None
    offset = written = no_url = 0
    try:
        for f in files:
            for batch in pq.ParquetFile(f).iter_batches(batch_size=batch_size, columns=list(present.values())):
                rows = np.arange(offset, offset + batch.num_rows)
                offset += batch.num_rows
                table = pa.Table.from_batches([batch])
                if keep is not None:
                    lo, hi = np.searchsorted(keep, [rows[0], rows[-1] + 1])
                    take = keep[lo:hi] - rows[0]
                    table, rows = table.take(pa.array(take)), rows[take]
                data = {c: table.column(s) for c, s in present.items()}
                if uid_from == "url":
                    urls = data["url"].to_pylist()
                    data["uid"] = pa.array([made_uid(r, u) if u else None for r, u in zip(rows, urls)], pa.string())
                out = pa.table({c: data[c] for c in order})
                has_url = pc.and_(pc.is_valid(out.column("url")), pc.not_equal(out.column("url"), ""))
                no_url += out.num_rows - int(pc.sum(pc.cast(has_url, pa.int64())).as_py() or 0)
                out = out.filter(has_url)
                if writer is None:
                    writer = pq.ParquetWriter(tmp, out.schema)
                writer.write_table(out)
                written += out.num_rows
    finally:
        if writer is not None:
            writer.close()
    if writer is None or written == 0:
        raise ValueError(f"metadata {source} gave no rows")
    os.replace(tmp, out_path)
    summary = {
        "source_rows": n_rows,
        "sampled": None if keep is None else int(len(keep)),
        "rows": written,
        "dropped_without_url": no_url,
        "columns": order,
        "uid_from": uid_from,
        "sample": sample,
        "sources": [str(f) for f in files],
    }
    _write_json(out_path.with_name(out_path.name + ".json"), summary)
    return summary


def _write_json(path: Path, obj) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2) + "\n")
    os.replace(tmp, path)
