"""Downloading a real pool (DataComp's metadata) with img2dataset, chunk by chunk.

DataComp's ``download_upstream.py`` downloads a whole pool with ONE ``img2dataset.download`` call
over the metadata folder. The workflow downloads a pool chunk by chunk (a chunk is a job), so
this module splits the metadata into one parquet per chunk (``split_metadata``) and downloads a
chunk's rows into the chunk's shard folder (``download_chunk``), with the same img2dataset
arguments (``DATACOMP_DOWNLOAD_ARGS``) and the pool's GLOBAL shard numbering.

Global shard ids and keys
-------------------------
img2dataset numbers the shards of its input from 0, and a sample's key is
``shard_id * 10**ceil(log10(samples_per_shard)) + index`` (``curate.data.shards.compute_key``). Renaming
the output files afterwards would leave keys that repeat in every chunk. Instead
``download_chunk`` makes img2dataset number the shards globally itself: it runs img2dataset with
``incremental_mode="extend"`` in a fresh staging folder that holds one marker file named
``{first - 1:08d}_curate_start_marker.json``; img2dataset's extend mode starts numbering at
(largest id of a ``*.json`` in its output folder) + 1, i.e. at ``first``. So tar, parquet and
``_stats.json`` come out as ``{first:08d}.tar`` ... and every key inside (tar member names, the
json's and the parquet's ``key``) is the key a single img2dataset run over the whole pool would
give, with the chunk's shards at their global positions. img2dataset's logger tries to read the
marker as a stats file and prints one harmless ``failed to parse stats file ..._marker.json``
line. The finished shards are then moved (``os.replace``; ``_stats.json`` last) into the chunk
folder and the staging folder is removed.

Resume
------
A shard is complete when its ``_stats.json`` (written by img2dataset after the shard's tar and
parquet are closed), tar and parquet are all in the chunk folder. A rerun of ``download_chunk``
skips complete shards and downloads only the others: each maximal run of consecutive incomplete
shards is one img2dataset call (with its own start marker), so no completed shard is fetched
again. A complete shard is trusted only after it is read against its record (its tar must yield
every sample its parquet lists as a success, and match the size and sha256 recorded when it was
downloaded: `curate.data.shards.inspect_shard`); a damaged or changed one is removed and
downloaded again. Each shard's checksums are recorded (``_{id}_sha256.json``) as it is moved into
the chunk folder, and again after a retry merges samples into it. img2dataset's own
``incremental_mode="incremental"`` is NOT used: it recognises done
shards by ``{id}_stats.json`` in its output folder with ids counted from 0 over ITS input, which
cannot see shards moved into the chunk folder; resume is therefore implemented here, per shard.

Retrying failures
-----------------
``retry_failed`` collects the rows whose status is not ``success`` from a chunk's shard
parquets, downloads them again with the same arguments (one img2dataset call into a staging
folder; the pool key travels as the extra column ``pool_key``), and MERGES the successes back
into the original shards under their original keys: the image, txt and json members are added
to the shard's tar (rewritten atomically), the parquet row is replaced, and ``_stats.json`` is
recomputed from the parquet (with a ``retries`` entry recording each retry). The result has the
layout of a download that succeeded the first time; rows that failed again keep their first
error. ``download_report`` then counts the merged state.

Deviations from DataComp's script, by choice (see ``DATACOMP_DOWNLOAD_ARGS``): ``retries``
defaults to 2 here (DataComp inherits img2dataset's 0); the metadata's ``sha256`` is verified
when present (``verify_hash=["sha256", "sha256"]``; DataComp does not verify), so an image that
changed since the metadata (and its precomputed CLIP features) was made fails as
``hash mismatch`` instead of entering the pool.

``download_chunk`` calls ``img2dataset.download`` in the calling thread, which must be the main
thread (img2dataset installs a SIGINT handler; it is restored afterwards).
"""

from __future__ import annotations

import copy
import io
import json
import logging
import math
import os
import re
import shutil
import signal
import tarfile
import threading
import time
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from curate.data.chunks import chunk_name
from curate.data.integrity import IntegrityError, UnreadableFileError
from curate.data.shards import OOM_SHARD_COUNT, checksum_path, inspect_shard, record_shard, shard_name

__all__ = [
    "DATACOMP_DOWNLOAD_ARGS",
    "MANAGED_ARGS",
    "FAILED_STATUSES",
    "MANIFEST_NAME",
    "split_metadata",
    "download_chunk",
    "download_report",
    "retry_failed",
    "failure_category",
    "pending_runs",
    "completed_shards",
    "damaged_shard",
]

log = logging.getLogger(__name__)

#: The arguments DataComp's ``download_upstream.py`` (mlfoundations/datacomp, main) passes to
#: ``img2dataset.download``, plus the img2dataset defaults it relies on, made explicit. All are
#: accepted by img2dataset 1.47.0's ``download()``. Per-call settings are not here:
#: ``url_list``/``output_folder`` (per chunk), ``processes_count``/``thread_count`` (DataComp: 16
#: and 128; ``download_chunk``'s ``processes``/``threads``), ``retries`` (DataComp: img2dataset's
#: default 0; ``download_chunk``'s ``retries``, default 2), ``verify_hash`` (set by
#: ``download_chunk`` when the metadata has a ``sha256`` column; DataComp does not verify), and
#: ``number_sample_per_shard`` (``samples_per_shard``; DataComp: 10000).
DATACOMP_DOWNLOAD_ARGS: dict = {
    # the url list: DataComp's metadata parquet
    "input_format": "parquet",
    "url_col": "url",
    "caption_col": "text",  # written as `caption` (parquet, json) and `txt` (tar)
    "save_additional_columns": ["uid"],
    # faces in DataComp's `face_bboxes` (relative [x0, y0, x1, y1]) are blurred; dropped by
    # download_chunk when the metadata has no such column (DataComp's --skip_bbox_blurring)
    "bbox_col": "face_bboxes",
    # output: webdataset shards of 10000 samples, 8-digit shard names
    "output_format": "webdataset",
    "oom_shard_count": OOM_SHARD_COUNT,
    # images: longest side at most 512, never upscaled, JPEG
    "image_size": 512,
    "resize_mode": "keep_ratio_largest",
    "resize_only_if_bigger": True,
    "encode_format": "jpg",
    "encode_quality": 95,  # img2dataset's default, which DataComp inherits
    # img2dataset's default, which DataComp inherits: every image is decoded and re-encoded at
    # quality 95, resized or not. Pass skip_reencode=True to keep un-resized JPEGs byte-identical.
    "skip_reencode": False,
    # sha256 of the downloaded (original) bytes in the parquet/json (img2dataset's default)
    "compute_hash": "sha256",
    "enable_wandb": False,
    "distributor": "multiprocessing",
}

#: img2dataset arguments ``download_chunk`` and ``retry_failed`` set themselves; passing one as
#: an override is an error (use the named parameter where there is one).
MANAGED_ARGS = (
    "url_list",
    "output_folder",
    "incremental_mode",
    "number_sample_per_shard",
    "oom_shard_count",
    "output_format",
    "input_format",
    "url_col",
    "processes_count",
    "thread_count",
    "retries",
    "verify_hash",
)

#: Statuses img2dataset gives a sample that did not make it into the tar.
FAILED_STATUSES = ("failed_to_download", "failed_to_resize")
#: The chunk folder's record of how it was downloaded (read by download_report, retry_failed).
MANIFEST_NAME = "_download.json"
_STAGING = "_staging"
_RETRY_STAGING = "_retry_staging"
_MARKER_SUFFIX = "_curate_start_marker.json"
_SPLIT_NAME = "split.json"
_CHUNK_FILE_RE = re.compile(r"^\d{%d}\.parquet$" % len(chunk_name(0)))
_STATS_RE = re.compile(r"^(\d+)_stats\.json$")
# the columns img2dataset writes itself (forbidden in save_additional_columns)
_IMG2DATASET_COLUMNS = frozenset(
    [
        "key",
        "caption",
        "url",
        "width",
        "height",
        "original_width",
        "original_height",
        "status",
        "error_message",
        "exif",
        "md5",
        "sha256",
        "sha512",
    ]
)
_SPLIT_REQUIRED = ("uid", "url", "text")
_SPLIT_OPTIONAL = ("original_width", "original_height", "face_bboxes", "sha256")


# --------------------------------------------------------------------------------------------
# Splitting the pool metadata into chunk files
# --------------------------------------------------------------------------------------------


def _metadata_files(metadata) -> list[Path]:
    path = Path(metadata)
    if path.is_file():
        return [path]
    if path.is_dir():
        files = sorted(path.rglob("*.parquet"), key=lambda p: p.relative_to(path).as_posix())
        if not files:
            raise FileNotFoundError(f"no *.parquet metadata file under {path}")
        return files
    raise FileNotFoundError(f"metadata not found: {path}")


def split_metadata(metadata_parquet, out_folder, samples_per_shard: int, shards_per_chunk: int) -> list[Path]:
    """Write one parquet per chunk of ``shards_per_chunk * samples_per_shard`` metadata rows.

    ``metadata_parquet`` is a parquet file or a folder of them (DataComp's metadata folder; read
    in sorted path order, rows concatenated, so shard boundaries need not match the files').
    Each chunk file ``{chunk_name(i)}.parquet`` holds ``uid, url, text`` and, when present,
    ``original_width, original_height, face_bboxes, sha256``, in metadata order: row ``r`` of
    the pool belongs to shard ``r // samples_per_shard``. The last chunk may be short. Old chunk
    files in ``out_folder`` are removed first; a ``split.json`` records the counts. Reads and
    writes in batches, so the metadata need not fit in memory. Returns the chunk files in order.
    """
    if samples_per_shard < 1 or shards_per_chunk < 1:
        raise ValueError(
            f"need samples_per_shard >= 1 and shards_per_chunk >= 1, got {samples_per_shard}, {shards_per_chunk}"
        )
    files = _metadata_files(metadata_parquet)
    first_schema = pq.read_schema(files[0])
    missing = [c for c in _SPLIT_REQUIRED if c not in first_schema.names]
    if missing:
        raise ValueError(f"metadata file {files[0]} lacks the column(s) {missing}")
    columns = list(_SPLIT_REQUIRED) + [c for c in _SPLIT_OPTIONAL if c in first_schema.names]
    schema = pa.schema([first_schema.field(c) for c in columns])
    for f in files[1:]:
        names = pq.read_schema(f).names
        lacking = [c for c in columns if c not in names]
        if lacking:
            raise ValueError(f"metadata file {f} lacks the column(s) {lacking} present in {files[0]}")

    out = Path(out_folder)
    out.mkdir(parents=True, exist_ok=True)
    for old in out.iterdir():
        if old.is_file() and _CHUNK_FILE_RE.match(old.name):
            old.unlink()

    rows_per_chunk = samples_per_shard * shards_per_chunk
    paths: list[Path] = []
    writer: pq.ParquetWriter | None = None
    in_chunk = 0
    n_rows = 0
    try:
        for f in files:
            for batch in pq.ParquetFile(f).iter_batches(batch_size=65536, columns=columns):
                table = pa.Table.from_batches([batch]).select(columns)
                try:
                    table = table.cast(schema)
                except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as err:
                    raise ValueError(f"metadata file {f}: columns do not match {files[0]}'s types: {err}") from err
                offset = 0
                while offset < table.num_rows:
                    if writer is None or in_chunk == rows_per_chunk:
                        if writer is not None:
                            writer.close()
                        path = out / f"{chunk_name(len(paths))}.parquet"
                        paths.append(path)
                        writer = pq.ParquetWriter(path, schema)
                        in_chunk = 0
                    take = min(rows_per_chunk - in_chunk, table.num_rows - offset)
                    writer.write_table(table.slice(offset, take))
                    in_chunk += take
                    offset += take
                    n_rows += take
    finally:
        if writer is not None:
            writer.close()
    if n_rows == 0:
        raise ValueError(f"metadata {metadata_parquet} has no rows")
    summary = {
        "n_rows": n_rows,
        "n_shards": math.ceil(n_rows / samples_per_shard),
        "n_chunks": len(paths),
        "samples_per_shard": samples_per_shard,
        "shards_per_chunk": shards_per_chunk,
        "columns": columns,
        "sources": [str(f) for f in files],
    }
    with open(out / _SPLIT_NAME, "w") as fh:
        json.dump(summary, fh, indent=2)
    return paths


# --------------------------------------------------------------------------------------------
# img2dataset arguments and calls
# --------------------------------------------------------------------------------------------


def _img2dataset_parameters() -> set[str]:
    import inspect

    import img2dataset  # heavy (torch via webdataset, albumentations, wandb): import on use

    return set(inspect.signature(img2dataset.download).parameters)


def _build_args(samples_per_shard: int, processes: int, threads: int, retries: int, overrides: dict) -> dict:
    managed = sorted(set(overrides) & set(MANAGED_ARGS))
    if managed:
        raise ValueError(
            f"img2dataset argument(s) {managed} are set by curate.data.download itself "
            "(use samples_per_shard, processes, threads, retries, verify_hash)"
        )
    known = _img2dataset_parameters()
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise TypeError(f"img2dataset.download() has no argument(s) {unknown}")
    args = copy.deepcopy(DATACOMP_DOWNLOAD_ARGS)
    args.update(copy.deepcopy(overrides))
    if samples_per_shard < 1 or processes < 1 or threads < 1 or retries < 0:
        raise ValueError(
            f"need samples_per_shard, processes, threads >= 1 and retries >= 0, got "
            f"{samples_per_shard}, {processes}, {threads}, {retries}"
        )
    args.update(
        number_sample_per_shard=int(samples_per_shard),
        processes_count=int(processes),
        thread_count=int(threads),
        retries=int(retries),
    )
    unsupported = sorted(set(args) - known)
    if unsupported:  # a newer/older img2dataset without one of DataComp's arguments
        raise TypeError(f"this img2dataset does not accept {unsupported}")
    return args


def _run_img2dataset(**kwargs) -> None:
    """One ``img2dataset.download`` call; restores the SIGINT handler it installs."""
    import img2dataset

    main = threading.current_thread() is threading.main_thread()
    previous = signal.getsignal(signal.SIGINT) if main else None
    try:
        img2dataset.download(**copy.deepcopy(kwargs))  # it appends to save_additional_columns
    finally:
        if main and previous is not None:
            signal.signal(signal.SIGINT, previous)


def _img2dataset_version() -> str | None:
    try:
        from importlib.metadata import version

        return version("img2dataset")
    except Exception:  # noqa: BLE001 - informational only
        return None


# --------------------------------------------------------------------------------------------
# Shards of a chunk folder
# --------------------------------------------------------------------------------------------


def _shard_files(folder: Path, shard_id: int) -> tuple[Path, Path, Path]:
    name = shard_name(shard_id)
    return folder / f"{name}.tar", folder / f"{name}.parquet", folder / f"{name}_stats.json"


def completed_shards(chunk_dir, shard_ids) -> list[int]:
    """The ids among ``shard_ids`` whose tar, parquet and ``_stats.json`` are all in ``chunk_dir``."""
    folder = Path(chunk_dir)
    return [s for s in shard_ids if all(p.is_file() for p in _shard_files(folder, s))]


def damaged_shard(chunk_dir, shard_id: int) -> str | None:
    """Why a complete shard cannot be trusted (its tar does not yield every sample its record
    lists, or a file differs from its checksum record), or None when it can."""
    tar_path = _shard_files(Path(chunk_dir), shard_id)[0]
    try:
        check = inspect_shard(tar_path)
    except (IntegrityError, UnreadableFileError, OSError) as err:
        return str(err)
    if check.changes:
        damage = f"; {check.damage()}" if check.unread else ""
        return f"changed since it was downloaded ({'; '.join(check.changes)}){damage}"
    if check.unread:
        return check.damage()
    return None


def _remove_shard(folder: Path, shard_id: int) -> None:
    """Remove a shard's files, its stats first (so it counts as incomplete even if interrupted)."""
    tar_path, pq_path, stats_path = _shard_files(folder, shard_id)
    for p in (stats_path, checksum_path(tar_path), tar_path, pq_path):
        p.unlink(missing_ok=True)


def pending_runs(shard_ids, done) -> list[tuple[int, int]]:
    """Maximal runs ``[a, b)`` of consecutive ids in ``shard_ids`` (sorted) that are not ``done``."""
    done = set(done)
    runs: list[tuple[int, int]] = []
    for s in sorted(shard_ids):
        if s in done:
            continue
        if runs and runs[-1][1] == s:
            runs[-1] = (runs[-1][0], s + 1)
        else:
            runs.append((s, s + 1))
    return runs


def _chunk_rows(table: pa.Table, first_shard_id: int, n_shards: int, samples_per_shard: int, source) -> pa.Table:
    """The chunk's rows: ``table`` is the chunk's own file or, with more rows than the chunk can
    hold, the whole pool's metadata (then rows ``first*sps .. (first+n)*sps`` are taken)."""
    capacity = n_shards * samples_per_shard
    if table.num_rows > capacity:  # the whole pool's metadata
        start = first_shard_id * samples_per_shard
        if table.num_rows <= start:
            raise ValueError(
                f"metadata {source} has {table.num_rows} rows: no rows for shard {first_shard_id} "
                f"at {samples_per_shard} samples per shard"
            )
        table = table.slice(start, capacity)
    expected = math.ceil(table.num_rows / samples_per_shard) if table.num_rows else 0
    if expected != n_shards:
        raise ValueError(
            f"metadata {source} gives {table.num_rows} rows for chunk shards {first_shard_id}.."
            f"{first_shard_id + n_shards - 1}, i.e. {expected} shard(s) of {samples_per_shard}, not {n_shards}"
        )
    return table


def _write_marker(folder: Path, start: int) -> None:
    """Make img2dataset's extend mode start numbering at ``start``."""
    folder.mkdir(parents=True, exist_ok=True)
    if start > 0:
        marker = folder / f"{shard_name(start - 1)}{_MARKER_SUFFIX}"
        marker.write_text(
            json.dumps(
                {
                    "note": "curate.data.download: makes img2dataset (extend mode) number shards from "
                    f"{start}; not a shard"
                }
            )
        )


def _decide_verify(table: pa.Table, verify_hash, source) -> bool:
    if verify_hash not in (None, True, False):
        raise ValueError(f"verify_hash must be None (auto), True or False, got {verify_hash!r}")
    has = "sha256" in table.column_names
    complete = has and table.column("sha256").null_count == 0
    if verify_hash is True and not complete:
        raise ValueError(
            f"verify_hash=True but metadata {source} "
            + ("has no sha256 column" if not has else "has rows without sha256")
        )
    if verify_hash is None:
        if has and not complete:
            log.warning("metadata %s has rows without sha256: hashes are not verified", source)
        return complete
    return bool(verify_hash)


def download_chunk(
    metadata_parquet,
    out_dir,
    first_shard_id: int,
    n_shards: int,
    samples_per_shard: int = 10000,
    processes: int = 1,
    threads: int = 16,
    retries: int = 2,
    *,
    verify_hash: bool | None = None,
    strict: bool = True,
    **overrides,
) -> dict:
    """Download one chunk (shards ``first_shard_id .. first_shard_id + n_shards - 1``) into ``out_dir``.

    ``metadata_parquet`` is the chunk's file from ``split_metadata`` (its row ``r`` goes to shard
    ``first_shard_id + r // samples_per_shard``); a file with more rows than the chunk holds is
    taken as the whole pool's metadata and the chunk's rows are sliced out of it. Shards are
    written with global names and keys (see the module doc). Complete shards already in
    ``out_dir`` are skipped (resume). ``verify_hash``: None verifies the metadata's sha256 when
    the column is present and complete, True requires it, False never verifies. ``overrides``
    are further ``img2dataset.download`` arguments (e.g. ``timeout``, ``skip_reencode``,
    ``bbox_col=None``); an argument img2dataset does not know raises ``TypeError``.

    A complete shard whose tar is damaged or changed (`damaged_shard`) is removed and downloaded
    again. Returns ``{"out_dir", "shard_ids", "skipped", "downloaded", "refetched" (shard name ->
    why), "missing", "img2dataset_calls", "verify_hash", "bbox_col", "duration_s"}``. With ``strict`` (default) a shard still missing
    after img2dataset returns raises ``RuntimeError`` naming it; completed shards stay in place,
    so a rerun resumes.
    """
    t0 = time.time()
    if first_shard_id < 0 or n_shards < 1:
        raise ValueError(f"need first_shard_id >= 0 and n_shards >= 1, got {first_shard_id}, {n_shards}")
    source = Path(metadata_parquet)
    if not source.is_file():
        raise FileNotFoundError(f"chunk metadata not found: {source}")
    args = _build_args(samples_per_shard, processes, threads, retries, overrides)
    table = _chunk_rows(pq.read_table(source), first_shard_id, n_shards, samples_per_shard, source)

    needed = [args["url_col"]]
    if args.get("caption_col"):
        needed.append(args["caption_col"])
    needed += list(args.get("save_additional_columns") or [])
    missing_cols = [c for c in needed if c not in table.column_names]
    if missing_cols:
        raise ValueError(f"metadata {source} lacks the column(s) {missing_cols}")
    if args.get("bbox_col") and args["bbox_col"] not in table.column_names:
        log.info("metadata %s has no %r column: faces are not blurred", source, args["bbox_col"])
        args["bbox_col"] = None
    verify = _decide_verify(table, verify_hash, source)
    if verify:
        if args.get("compute_hash") != "sha256":
            raise ValueError("verifying the metadata's sha256 needs compute_hash='sha256'")
        args["verify_hash"] = ["sha256", "sha256"]
    else:
        args["verify_hash"] = None
    args["input_format"] = "parquet"

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    shard_ids = list(range(first_shard_id, first_shard_id + n_shards))
    manifest = {
        "first_shard_id": first_shard_id,
        "n_shards": n_shards,
        "samples_per_shard": samples_per_shard,
        "metadata": str(source.resolve()),
        "verify_hash": verify,
        "img2dataset_version": _img2dataset_version(),
        "img2dataset_args": {k: v for k, v in args.items() if k not in ("url_list", "output_folder")},
    }
    with open(out / MANIFEST_NAME, "w") as fh:
        json.dump(manifest, fh, indent=2)

    refetched: dict[int, str] = {}
    for s in completed_shards(out, shard_ids):
        problem = damaged_shard(out, s)
        if problem is not None:
            log.warning("shard %s.tar in %s is damaged, downloading it again: %s", shard_name(s), out, problem)
            refetched[s] = problem
            _remove_shard(out, s)
        elif not checksum_path(_shard_files(out, s)[0]).is_file():
            record_shard(_shard_files(out, s)[0])  # a shard downloaded before checksums were recorded
    skipped = completed_shards(out, shard_ids)
    runs = pending_runs(shard_ids, skipped)
    staging = out / _STAGING
    if staging.exists():
        shutil.rmtree(staging)
    downloaded: list[int] = []
    for a, b in runs:
        run_dir = staging / shard_name(a)
        out_run = run_dir / "out"
        _write_marker(out_run, a)
        lo = (a - first_shard_id) * samples_per_shard
        hi = min((b - first_shard_id) * samples_per_shard, table.num_rows)
        input_path = run_dir / "input.parquet"
        pq.write_table(table.slice(lo, hi - lo), input_path)
        log.info("img2dataset: shards %d..%d (%d rows) of %s", a, b - 1, hi - lo, source)
        _run_img2dataset(url_list=str(input_path), output_folder=str(out_run), incremental_mode="extend", **args)
        produced = sorted(int(m.group(1)) for m in (_STATS_RE.match(p.name) for p in out_run.iterdir()) if m)
        stray = [s for s in produced if not a <= s < b]
        if stray:
            raise RuntimeError(
                f"img2dataset wrote shard(s) {stray} in {out_run}, expected ids {a}..{b - 1}: "
                "its extend-mode numbering is not what curate.data.download relies on"
            )
        for s in range(a, b):
            files = _shard_files(out_run, s)
            if all(p.is_file() for p in files):
                for p in files:  # stats last: a shard counts as done only when all three moved
                    os.replace(p, out / p.name)
                record_shard(out / files[0].name)
                downloaded.append(s)
        shutil.rmtree(run_dir)
    if staging.exists():
        shutil.rmtree(staging)

    missing = [s for s in shard_ids if s not in set(completed_shards(out, shard_ids))]
    result = {
        "out_dir": str(out),
        "shard_ids": shard_ids,
        "skipped": skipped,
        "downloaded": downloaded,
        "refetched": {shard_name(s): why for s, why in refetched.items()},
        "missing": missing,
        "img2dataset_calls": len(runs),
        "verify_hash": verify,
        "bbox_col": args.get("bbox_col"),
        "duration_s": time.time() - t0,
    }
    if missing and strict:
        names = ", ".join(f"{shard_name(s)}.tar" for s in missing)
        raise RuntimeError(f"img2dataset did not complete shard(s) {names} in {out}; rerun to resume")
    return result


# --------------------------------------------------------------------------------------------
# Reports
# --------------------------------------------------------------------------------------------

_CATEGORIES = [
    (re.compile(r"^hash mismatch$"), "hash_mismatch"),
    (re.compile(r"HTTP Error (\d{3})"), None),  # -> http_<code>
    (re.compile(r"Image decoding error"), "decode_error"),
    (re.compile(r"X-Robots-Tag"), "disallowed_by_robots_tag"),
    (re.compile(r"image too small|image area too large|aspect ratio too large"), "filtered_by_size"),
    (re.compile(r"timed out|timeout", re.I), "timeout"),
    (re.compile(r"ssl|certificate", re.I), "ssl_error"),
    (
        re.compile(
            r"urlopen error|connection|remote end closed|name or service not known|nodename|"
            r"network is unreachable|no route to host",
            re.I,
        ),
        "connection_error",
    ),
]


def failure_category(error_message: str | None) -> str:
    """A coarse class of an img2dataset error message (``http_404``, ``decode_error``, ...)."""
    if error_message is None:
        return "unknown"
    for pattern, name in _CATEGORIES:
        m = pattern.search(error_message)
        if m:
            return name if name is not None else f"http_{m.group(1)}"
    return "other"


def _read_manifest(folder: Path) -> dict | None:
    path = folder / MANIFEST_NAME
    if not path.is_file():
        return None
    with open(path) as fh:
        return json.load(fh)


def _rate(num: int, den: int) -> float | None:
    return num / den if den else None


def download_report(chunk_dir, shard_ids=None) -> dict:
    """Success rate and failures by reason of a chunk folder, from its ``_stats.json`` files.

    ``shard_ids`` (default: the manifest's range, else the shards found) are the shards
    expected; those without tar + parquet + stats are listed in ``missing_shards`` and count
    nothing. ``failures_by_reason`` sums img2dataset's ``status_dict`` messages (all but
    ``success``), ``failures_by_category`` groups them with ``failure_category``.
    """
    folder = Path(chunk_dir)
    if not folder.is_dir():
        raise FileNotFoundError(f"chunk folder not found: {folder}")
    found = sorted(int(m.group(1)) for m in (_STATS_RE.match(p.name) for p in folder.iterdir()) if m)
    if shard_ids is None:
        manifest = _read_manifest(folder)
        if manifest is not None:
            shard_ids = list(range(manifest["first_shard_id"], manifest["first_shard_id"] + manifest["n_shards"]))
        else:
            shard_ids = found
    shard_ids = sorted(shard_ids)
    complete = set(completed_shards(folder, shard_ids))
    rows = []
    totals = Counter()
    reasons: Counter = Counter()
    for s in shard_ids:
        if s not in complete:
            continue
        stats_path = _shard_files(folder, s)[2]
        try:
            with open(stats_path) as fh:
                stats = json.load(fh)
        except json.JSONDecodeError as err:
            raise ValueError(f"unreadable stats file {stats_path}: {err}") from err
        status_dict = {k: int(v) for k, v in (stats.get("status_dict") or {}).items()}
        row = {
            "shard": shard_name(s),
            "count": int(stats["count"]),
            "successes": int(stats["successes"]),
            "failed_to_download": int(stats["failed_to_download"]),
            "failed_to_resize": int(stats["failed_to_resize"]),
            "success_rate": _rate(int(stats["successes"]), int(stats["count"])),
            "duration": stats.get("duration"),
            "status_dict": status_dict,
        }
        if stats.get("retries"):
            row["retries"] = stats["retries"]
        rows.append(row)
        for k in ("count", "successes", "failed_to_download", "failed_to_resize"):
            totals[k] += row[k]
        reasons.update({k: v for k, v in status_dict.items() if k != "success"})
    categories: Counter = Counter()
    for message, n in reasons.items():
        categories[failure_category(message)] += n
    return {
        "chunk_dir": str(folder),
        "n_shards": len(shard_ids),
        "complete_shards": len(rows),
        "missing_shards": [shard_name(s) for s in shard_ids if s not in complete],
        "count": totals["count"],
        "successes": totals["successes"],
        "failed_to_download": totals["failed_to_download"],
        "failed_to_resize": totals["failed_to_resize"],
        "success_rate": _rate(totals["successes"], totals["count"]),
        "failures_by_category": dict(categories.most_common()),
        "failures_by_reason": dict(reasons.most_common()),
        "shards": rows,
    }


# --------------------------------------------------------------------------------------------
# Retrying failures and merging them back
# --------------------------------------------------------------------------------------------


def _tar_groups(path: Path) -> dict[str, dict[str, bytes]]:
    groups: dict[str, dict[str, bytes]] = {}
    with tarfile.open(path, "r:") as tar:
        for info in tar:
            if not info.isfile():
                continue
            base = info.name.rsplit("/", 1)[-1]
            key, _, ext = base.partition(".")
            fobj = tar.extractfile(info)
            groups.setdefault(key, {})[ext] = fobj.read() if fobj is not None else b""
    return groups


def _stats_from_rows(rows: list[dict], old: dict) -> dict:
    status_dict: Counter = Counter()
    for r in rows:
        status_dict["success" if r["status"] == "success" else (r.get("error_message") or r["status"])] += 1
    stats = dict(old)
    stats.update(
        count=len(rows),
        successes=sum(r["status"] == "success" for r in rows),
        failed_to_download=sum(r["status"] == "failed_to_download" for r in rows),
        failed_to_resize=sum(r["status"] == "failed_to_resize" for r in rows),
        status_dict=dict(status_dict),
    )
    return stats


def _merge_into_shard(folder: Path, shard_id: int, recovered: dict[str, tuple[dict, dict[str, bytes]]], note: dict):
    """Add recovered samples (pool key -> (parquet row, tar members)) to one shard, atomically
    per file: tar, then parquet, then stats."""
    tar_path, pq_path, stats_path = _shard_files(folder, shard_id)
    tmp_tar = folder / f".{tar_path.name}.tmp"
    now = time.time()
    with tarfile.open(tar_path, "r:") as src, open(tmp_tar, "wb") as fd, tarfile.open(fileobj=fd, mode="w") as dst:
        for info in src:
            key = info.name.rsplit("/", 1)[-1].partition(".")[0]
            if key in recovered:  # left over from an interrupted merge: replaced below
                continue
            dst.addfile(info, src.extractfile(info) if info.isfile() else None)
        for key in sorted(recovered):
            for ext, data in sorted(recovered[key][1].items()):
                info = tarfile.TarInfo(f"{key}.{ext}")
                info.size = len(data)
                info.mtime = now
                info.mode = 0o444
                info.uname = info.gname = "bigdata"  # webdataset TarWriter's defaults
                dst.addfile(info, io.BytesIO(data))
    os.replace(tmp_tar, tar_path)

    table = pq.read_table(pq_path)
    rows = table.to_pylist()
    for i, row in enumerate(rows):
        if row["key"] in recovered:
            new = recovered[row["key"]][0]
            rows[i] = {c: new.get(c, row.get(c)) for c in table.column_names}
    tmp_pq = folder / f".{pq_path.name}.tmp"
    pq.write_table(pa.Table.from_pylist(rows, schema=table.schema), tmp_pq)
    os.replace(tmp_pq, pq_path)

    with open(stats_path) as fh:
        old = json.load(fh)
    stats = _stats_from_rows(rows, old)
    stats["retries"] = list(old.get("retries") or []) + [note]
    tmp_stats = folder / f".{stats_path.name}.tmp"
    with open(tmp_stats, "w") as fh:
        json.dump(stats, fh, indent=4)
    os.replace(tmp_stats, stats_path)
    record_shard(tar_path)


def retry_failed(
    chunk_dir,
    *,
    retries: int = 2,
    processes: int = 1,
    threads: int = 16,
    statuses=FAILED_STATUSES,
    exclude_categories=(),
    metadata_parquet=None,
    verify_hash: bool | None = None,
    **overrides,
) -> dict:
    """Download a chunk's failed rows again and merge the successes into the original shards.

    Rows of the complete shards whose ``status`` is in ``statuses`` and whose
    ``failure_category(error_message)`` is not in ``exclude_categories`` are retried with the
    img2dataset arguments recorded in the chunk's manifest (else ``DATACOMP_DOWNLOAD_ARGS``),
    updated by ``overrides``. Hashes: the shard parquets hold only the computed sha256, so the
    metadata's sha256 is joined by uid from ``metadata_parquet`` (default: the manifest's
    metadata file); ``verify_hash`` None verifies when the first download did and every retried
    uid has a hash there. Each success is merged under its original key (module doc); rows that
    fail again are left as they were.

    Returns ``{"chunk_dir", "attempted", "recovered", "still_failed", "recovered_by_shard",
    "retry_failures_by_reason", "verify_hash", "report"}`` where ``report`` is
    ``download_report`` of the merged chunk.
    """
    folder = Path(chunk_dir)
    if not folder.is_dir():
        raise FileNotFoundError(f"chunk folder not found: {folder}")
    manifest = _read_manifest(folder)
    base_args = dict(manifest["img2dataset_args"]) if manifest else copy.deepcopy(DATACOMP_DOWNLOAD_ARGS)
    for k in list(base_args):
        if k in MANAGED_ARGS or k in ("url_list", "output_folder"):
            base_args.pop(k)
    base_args.update(overrides)
    samples_per_shard = int(manifest["samples_per_shard"]) if manifest else 10000
    args = _build_args(samples_per_shard, processes, threads, retries, base_args)

    statuses = tuple(statuses)
    shard_ids = sorted(int(m.group(1)) for m in (_STATS_RE.match(p.name) for p in folder.iterdir()) if m)
    shard_ids = completed_shards(folder, shard_ids)
    failures: list[dict] = []
    key_shard: dict[str, int] = {}
    schema: pa.Schema | None = None
    for s in shard_ids:
        table = pq.read_table(_shard_files(folder, s)[1])
        schema = schema or table.schema
        for row in table.to_pylist():
            if row["status"] == "success" or row["status"] not in statuses:
                continue
            if failure_category(row.get("error_message")) in exclude_categories:
                continue
            failures.append(row)
            key_shard[row["key"]] = s

    result = {
        "chunk_dir": str(folder),
        "attempted": len(failures),
        "recovered": 0,
        "still_failed": len(failures),
        "recovered_by_shard": {},
        "retry_failures_by_reason": {},
        "verify_hash": False,
    }
    if not failures:
        result["report"] = download_report(folder)
        return result

    # the retry's url list: the failed rows' inputs, with the pool key as an extra column
    extra = [
        c
        for c in schema.names
        if c not in _IMG2DATASET_COLUMNS and c not in ("pool_key", "text") and c != args.get("bbox_col")
    ]
    columns: dict[str, pa.Array] = {
        "url": pa.array([r["url"] for r in failures], pa.string()),
        "text": pa.array([r.get("caption") for r in failures], pa.string()),
        "pool_key": pa.array([r["key"] for r in failures], pa.string()),
    }
    for c in extra:
        columns[c] = pa.array([r.get(c) for r in failures], schema.field(c).type)
    if args.get("bbox_col") and args["bbox_col"] in schema.names:
        c = args["bbox_col"]
        columns[c] = pa.array([r.get(c) for r in failures], schema.field(c).type)
    else:
        args["bbox_col"] = None
    args["caption_col"] = "text"
    args["url_col"] = "url"
    args["input_format"] = "parquet"
    args["save_additional_columns"] = extra + ["pool_key"]

    want_verify = (manifest or {}).get("verify_hash", False) if verify_hash is None else bool(verify_hash)
    verify = False
    if want_verify:
        meta_path = (
            Path(metadata_parquet)
            if metadata_parquet
            else (Path(manifest["metadata"]) if manifest and manifest.get("metadata") else None)
        )
        hashes: dict = {}
        if meta_path is not None and meta_path.is_file():
            names = pq.read_schema(meta_path).names
            if "sha256" in names and "uid" in names:
                meta = pq.read_table(meta_path, columns=["uid", "sha256"]).to_pydict()
                hashes = dict(zip(meta["uid"], meta["sha256"]))
        wanted = [hashes.get(r.get("uid")) for r in failures]
        if all(h is not None for h in wanted):
            columns["sha256"] = pa.array(wanted, pa.string())
            verify = True
        elif verify_hash is True:
            raise ValueError(f"verify_hash=True but no sha256 for every retried uid in {meta_path}")
        else:
            log.warning("no metadata sha256 for every retried uid (%s): retry does not verify hashes", meta_path)
    args["verify_hash"] = ["sha256", "sha256"] if verify else None
    result["verify_hash"] = verify

    staging = folder / _RETRY_STAGING
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    input_path = staging / "input.parquet"
    pq.write_table(pa.table(columns), input_path)
    out_run = staging / "out"
    log.info("img2dataset: retrying %d failed rows of %s", len(failures), folder)
    # a fresh folder; not "overwrite": img2dataset 1.47's overwrite mode deletes its own _tmp folder
    _run_img2dataset(url_list=str(input_path), output_folder=str(out_run), incremental_mode="incremental", **args)

    recovered: dict[int, dict[str, tuple[dict, dict[str, bytes]]]] = {}
    still: Counter = Counter()
    seen = 0
    for stats_path in sorted(out_run.glob("*_stats.json")):
        local = int(_STATS_RE.match(stats_path.name).group(1))
        tar_path, pq_path, _ = _shard_files(out_run, local)
        rows = pq.read_table(pq_path).to_pylist()
        groups = _tar_groups(tar_path) if tar_path.is_file() else {}
        for row in rows:
            seen += 1
            pool_key = row.pop("pool_key")
            if row["status"] != "success" or row["key"] not in groups:
                still[row.get("error_message") or row["status"]] += 1
                continue
            members = dict(groups[row["key"]])
            meta = json.loads(members["json"].decode("utf-8"))
            meta.pop("pool_key", None)
            meta["key"] = pool_key
            members["json"] = json.dumps(meta, indent=4).encode("utf-8")
            row["key"] = pool_key
            recovered.setdefault(key_shard[pool_key], {})[pool_key] = (row, members)
    if seen != len(failures):
        raise RuntimeError(
            f"img2dataset's retry in {out_run} accounted for {seen} of {len(failures)} rows; nothing was merged"
        )

    when = time.time()
    for s, items in sorted(recovered.items()):
        attempted = sum(1 for k, v in key_shard.items() if v == s)
        note = {"time": when, "attempted": attempted, "recovered": len(items)}
        _merge_into_shard(folder, s, items, note)
    shutil.rmtree(staging)

    n_recovered = sum(len(v) for v in recovered.values())
    result.update(
        recovered=n_recovered,
        still_failed=len(failures) - n_recovered,
        recovered_by_shard={shard_name(s): len(v) for s, v in sorted(recovered.items())},
        retry_failures_by_reason=dict(still.most_common()),
        report=download_report(folder),
    )
    return result
