"""A pool's metadata read where it lies: which of its rows each shard holds, and the columns and
precomputed features of a chunk's downloaded samples (the ``library: metadata`` scorers).

DataComp publishes, per metadata file, a parquet (``uid, url, text, original_width,
original_height, clip_b32_similarity_score, clip_l14_similarity_score, face_bboxes, sha256``) and a
row-aligned ``.npz`` (``b32_img, b32_txt`` 512-d and ``l14_img, l14_txt`` 768-d, float16: OpenAI
CLIP ViT-B/32 and ViT-L/14 features; the scores are their cosines). Reading those is what
DataComp's own baselines do (``baselines/apply_filter.py``), so its CLIP-score, LAION-2B,
image-based, s-CLIPLoss, NormSim and classifier baselines need no model run over the pool.

**Which rows a shard holds** (`build_layout`, `shard_rows`): img2dataset writes one parquet row
per input row, in input order, success or not; how it cuts its input into shards depends on who
called it:

- ``per_file`` (DataComp's ``download_upstream.py``: ONE img2dataset call over the metadata
  folder): img2dataset's reader takes the folder's ``*.parquet`` in sorted order and cuts EACH
  file into shards of ``samples_per_shard`` rows, numbered on across files, so a file's last shard
  is short;
- ``concatenated`` (the workflow's own download, `curate.data.download.split_metadata`): the files
  in sorted path order, rows concatenated, shard ``s`` holding rows ``s*sps .. (s+1)*sps``.

The layout (``metadata/layout.json``) lists the files with their row counts and sizes; a chunk
job reads only its shards' rows (parquet row groups; the ``.npz`` members memory-mapped when
stored uncompressed, as ``np.savez`` writes them) and checks them: every shard's parquet must list
the same uids, in the same order, as the metadata rows it is said to hold, else the job stops
naming the shard and the file (the download was not made from this metadata). A shard of new
downloads beside the pool's own (a retry of failed urls, `curate.data.inplace`) holds rows the
chunk's shards list as failed; they are matched by uid.

**What is read** (`chunk_metadata`): the rows whose shard parquet says ``success`` (the samples a
tar holds), with a valid uid, once each; their ``column`` (float32; NaN and infinite values are
skipped and counted) and, with ``features``, the ``<features>_img`` and ``<features>_txt``
vectors, L2-normalised. A pool without metadata files (an img2dataset folder) is read from its
shard parquets, which then must hold the column.
"""

from __future__ import annotations

import logging
import math
import re
import zipfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from curate.data.integrity import FileChangedError, read_json, reading, write_json
from curate.data.shards import checked_metadata

log = logging.getLogger(__name__)

__all__ = [
    "SHARDINGS",
    "metadata_files",
    "build_layout",
    "read_layout",
    "shard_rows",
    "read_rows",
    "npz_rows",
    "chunk_metadata",
]

SHARDINGS = ("per_file", "concatenated")
_UID_RE = re.compile(r"^[0-9a-fA-F]{32}$")


def metadata_files(source, sharding: str) -> list[Path]:
    """The metadata parquets in the order their rows were downloaded: img2dataset's (``per_file``:
    the folder's ``*.parquet``, sorted, not recursive) or the workflow's split (``concatenated``:
    every ``*.parquet`` under it, by relative path); a file is itself."""
    source = Path(source)
    if source.is_file():
        return [source]
    if not source.is_dir():
        raise FileNotFoundError(f"pool metadata not found: {source}")
    if sharding == "per_file":
        files = sorted(source.glob("*.parquet"))
    else:
        files = sorted(source.rglob("*.parquet"), key=lambda p: p.relative_to(source).as_posix())
    if not files:
        raise FileNotFoundError(f"no *.parquet metadata file in {source}")
    return files


def build_layout(source, samples_per_shard: int, sharding: str) -> dict:
    """Each metadata file's rows, size, ``.npz`` (the file beside it with the same stem, if any)
    and the shards its rows went to (module doc); ``n_shards`` is the pool's shard count."""
    if sharding not in SHARDINGS:
        raise ValueError(f"sharding must be one of {SHARDINGS}, got {sharding!r}")
    sps = int(samples_per_shard)
    files, first_shard, first_row = [], 0, 0
    for path in metadata_files(source, sharding):
        with reading(path, "metadata parquet"):
            rows = pq.ParquetFile(path).metadata.num_rows
        npz = path.with_suffix(".npz")
        entry = {
            "parquet": str(path.resolve()),
            "bytes": path.stat().st_size,
            "rows": int(rows),
            "first_row": first_row,
            "npz": str(npz.resolve()) if npz.is_file() else None,
        }
        if sharding == "per_file":
            entry.update(first_shard=first_shard, shards=math.ceil(rows / sps))
            first_shard += entry["shards"]
        files.append(entry)
        first_row += rows
    n_shards = first_shard if sharding == "per_file" else math.ceil(first_row / sps)
    with reading(files[0]["parquet"], "metadata parquet"):
        columns = pq.read_schema(files[0]["parquet"]).names
    npz_keys = []
    if files[0]["npz"]:
        with reading(files[0]["npz"], "metadata features (.npz)"), zipfile.ZipFile(files[0]["npz"]) as zf:
            npz_keys = sorted(name.removesuffix(".npy") for name in zf.namelist())
    return {
        "sharding": sharding,
        "samples_per_shard": sps,
        "n_rows": first_row,
        "n_shards": n_shards,
        "columns": columns,
        "npz_keys": npz_keys,
        "files": files,
    }


def read_layout(path) -> dict:
    return read_json(path, "metadata layout (json)")


def write_layout(layout: dict, path) -> None:
    write_json(path, layout, "metadata layout")


def shard_rows(layout: dict, shard_id: int) -> list[tuple[int, int, int]]:
    """``(file index, start, stop)`` slices of the metadata rows shard ``shard_id`` holds."""
    sps = layout["samples_per_shard"]
    if layout["sharding"] == "per_file":
        for i, f in enumerate(layout["files"]):
            if f["first_shard"] <= shard_id < f["first_shard"] + f["shards"]:
                start = (shard_id - f["first_shard"]) * sps
                return [(i, start, min(start + sps, f["rows"]))]
        raise ValueError(f"shard {shard_id} is beyond the metadata's {layout['n_shards']} shards")
    lo, hi = shard_id * sps, min((shard_id + 1) * sps, layout["n_rows"])
    if lo >= hi:
        raise ValueError(f"shard {shard_id} is beyond the metadata's {layout['n_shards']} shards")
    slices = []
    for i, f in enumerate(layout["files"]):
        a, b = max(lo, f["first_row"]), min(hi, f["first_row"] + f["rows"])
        if a < b:
            slices.append((i, a - f["first_row"], b - f["first_row"]))
    return slices


def _check_unchanged(entry: dict) -> None:
    path = Path(entry["parquet"])
    size = path.stat().st_size if path.is_file() else None
    if size != entry["bytes"]:
        raise FileChangedError(
            f"pool metadata {path} is {size} bytes, {entry['bytes']} when the layout was made: it changed since; "
            "make the layout again (`snakemake --forcerun <data_root>/pools/<pool>/metadata/layout.json`)"
        )


def read_rows(path, columns: list[str], start: int, stop: int) -> pa.Table:
    """Rows ``start .. stop`` of a parquet file's ``columns``, reading only the row groups they lie in."""
    with reading(path, "metadata parquet"):
        handle = pq.ParquetFile(path)
        missing = [c for c in columns if c not in handle.schema_arrow.names]
        if missing:
            raise ValueError(f"metadata {path} has no column(s) {missing}; its columns: {handle.schema_arrow.names}")
        groups, offset, first = [], 0, None
        for g in range(handle.metadata.num_row_groups):
            n = handle.metadata.row_group(g).num_rows
            if offset + n > start and offset < stop:
                groups.append(g)
                first = offset if first is None else first
            offset += n
        if not groups:
            return pa.table({c: pa.array([], handle.schema_arrow.field(c).type) for c in columns})
        table = handle.read_row_groups(groups, columns=columns)
    return table.slice(start - first, stop - start)


def npz_rows(path, key: str, start: int, stop: int) -> np.ndarray:
    """Rows ``start .. stop`` of member ``key`` of an ``.npz``: memory-mapped when the member is
    stored uncompressed (``np.savez``), else the member is loaded whole."""
    path = Path(path)
    with reading(path, "metadata features (.npz)"), zipfile.ZipFile(path) as zf:
        try:
            info = zf.getinfo(f"{key}.npy")
        except KeyError:
            raise ValueError(
                f"metadata features {path} have no {key!r} (members: {sorted(n[:-4] for n in zf.namelist())})"
            ) from None
        if info.compress_type == zipfile.ZIP_STORED:
            with open(path, "rb") as stream:
                stream.seek(info.header_offset)
                local = stream.read(30)
                name_len, extra_len = int.from_bytes(local[26:28], "little"), int.from_bytes(local[28:30], "little")
                data_start = info.header_offset + 30 + name_len + extra_len
                stream.seek(data_start)
                version = np.lib.format.read_magic(stream)
                header = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
                if version not in header:
                    raise ValueError(f"metadata features {path}:{key}: npy format {version} is not read here")
                shape, fortran, dtype = header[version](stream)
                offset = stream.tell()
            if fortran or len(shape) != 2:
                raise ValueError(f"metadata features {path}:{key}: expected a C-ordered 2-D array, got {shape}")
            array = np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape)
            return np.array(array[start:stop])
        with zf.open(info) as member:
            return np.load(member, allow_pickle=False)[start:stop]


def _normalised(vectors: np.ndarray) -> np.ndarray:
    vectors = vectors.astype(np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.where(norms > 0, norms, 1.0)


def chunk_metadata(tar_paths, layout: dict | None, column: str, features: str | None = None, pool_shards=None):
    """The metadata of a chunk's downloaded samples (module doc): ``(uids, values, features,
    report)`` where ``values`` is float32, ``features`` ``(image, text)`` L2-normalised float32
    arrays (None without ``features``) and ``report`` counts what was read and skipped.

    ``tar_paths``: the chunk's shards (their parquets are read against their checksum records);
    a shard whose id is ``pool_shards`` or more holds new downloads of rows the others list as
    failed (matched by uid). ``layout``: `build_layout`'s, or None for a pool without metadata
    files (the column is then read from the shard parquets)."""
    report = {"rows": 0, "downloaded": 0, "read": 0, "skipped": {"not_downloaded": 0, "missing_uid": 0}}
    report["skipped"].update(duplicate_uid=0, non_finite=0)
    uids, values, rows_of = [], [], []  # rows_of: (file index, row) of each kept sample, for features
    failed: dict[str, tuple] = {}  # uid of a row a shard lists as failed -> (value, file, row)
    seen: set[str] = set()
    pending = []  # shards of new downloads, read once the chunk's own rows are known
    for tar in sorted(Path(p) for p in tar_paths):
        shard_id = int(tar.name.split(".", 1)[0])
        if pool_shards is not None and shard_id >= pool_shards:
            pending.append(tar)
            continue
        parquet = checked_metadata(tar)
        wanted = ["key", "uid", "status"] + ([column] if layout is None else [])
        with reading(parquet, "shard parquet (img2dataset's per-shard metadata)"):
            names = pq.read_schema(parquet).names
            if layout is None and column not in names:
                raise ValueError(
                    f"shard parquet {parquet} has no column {column!r} (its columns: {names}), and the pool has "
                    "no metadata files to read it from"
                )
            shard = pq.read_table(parquet, columns=[c for c in wanted if c in names or c != "key"]).to_pydict()
        if "key" in shard:  # img2dataset writes rows as downloads finish; its keys count the input rows
            order = sorted(range(len(shard["key"])), key=lambda i: str(shard["key"][i]))
            shard = {name: [values[i] for i in order] for name, values in shard.items()}
        if layout is None:
            meta_values, where = shard[column], [None] * len(shard["uid"])
        else:
            meta_values, where, meta_uids = [], [], []
            for f, start, stop in shard_rows(layout, shard_id):
                entry = layout["files"][f]
                _check_unchanged(entry)
                table = read_rows(entry["parquet"], ["uid", column], start, stop).to_pydict()
                meta_uids += table["uid"]
                meta_values += table[column]
                where += [(f, r) for r in range(start, stop)]
            if meta_uids != shard["uid"]:
                first = next(
                    (i for i, (a, b) in enumerate(zip(meta_uids, shard["uid"])) if a != b),
                    min(len(meta_uids), len(shard["uid"])),
                )
                raise ValueError(
                    f"shard {tar.name}: its parquet {parquet} lists {len(shard['uid'])} rows, the metadata "
                    f"{len(meta_uids)} ({layout['sharding']} sharding); they first differ at row {first}. The "
                    "download was not made from this metadata (or with another samples_per_shard)"
                )
        for uid, status, value, place in zip(shard["uid"], shard["status"], meta_values, where):
            report["rows"] += 1
            if status != "success":
                report["skipped"]["not_downloaded"] += 1
                if isinstance(uid, str):
                    failed[uid] = (value, place)
                continue
            _keep(uid, value, place, report, seen, uids, values, rows_of)
    for tar in pending:
        parquet = checked_metadata(tar)
        with reading(parquet, "shard parquet (img2dataset's per-shard metadata)"):
            shard = pq.read_table(parquet, columns=["uid", "status"]).to_pydict()
        for uid, status in zip(shard["uid"], shard["status"]):
            if status != "success" or uid not in failed:
                continue  # still failed (counted with its first row), or not this chunk's
            report["skipped"]["not_downloaded"] -= 1
            value, place = failed.pop(uid)
            _keep(uid, value, place, report, seen, uids, values, rows_of)
    features_out = None
    if features is not None:
        if layout is None:
            raise ValueError(f"features {features!r}: the pool has no metadata .npz files to read them from")
        by_file: dict[int, list[int]] = {}
        for i, (f, _) in enumerate(rows_of):
            by_file.setdefault(f, []).append(i)
        out = {}
        for side in ("img", "txt"):
            array = None
            for f, indices in by_file.items():
                entry = layout["files"][f]
                if not entry["npz"]:
                    raise FileNotFoundError(
                        f"metadata {entry['parquet']} has no .npz beside it: its features were not downloaded "
                        "(DataComp: download_upstream.py --download_npz; the workflow: allow_patterns '*.npz')"
                    )
                rows = np.array([rows_of[i][1] for i in indices])
                lo, hi = int(rows.min()), int(rows.max()) + 1
                block = npz_rows(entry["npz"], f"{features}_{side}", lo, hi)
                if array is None:
                    array = np.zeros((len(rows_of), block.shape[1]), np.float32)
                array[indices] = block[rows - lo]
            out[side] = _normalised(array) if array is not None else np.zeros((0, 0), np.float32)
        features_out = (out["img"], out["txt"])
    return uids, np.asarray(values, np.float32), features_out, report


def _keep(uid, value, place, report, seen, uids, values, rows_of) -> None:
    report["downloaded"] += 1
    if not isinstance(uid, str) or not _UID_RE.match(uid):
        report["skipped"]["missing_uid"] += 1
        return
    if uid in seen:
        report["skipped"]["duplicate_uid"] += 1
        return
    if value is None or not np.isfinite(float(value)):
        report["skipped"]["non_finite"] += 1
        return
    seen.add(uid)
    uids.append(uid.lower())
    values.append(float(value))
    rows_of.append(place)
    report["read"] += 1
