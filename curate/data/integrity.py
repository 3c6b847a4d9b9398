"""Nothing lost without a word: how files are checked as they are read and written.

- **What a job tolerates** (`Tolerances`): the share of a pool shard's recorded samples its tar
  may fail to yield, and the share of a subset's uids the pool may lack at reshard time, before the
  job stops. The config's ``integrity`` section sets them (``schemas/config.schema.yaml`` holds the
  defaults); `curate.workflow.job.job` applies it to every job (`set_tolerances`). Outside a job
  nothing is tolerated.
- **Errors name the file and what was expected** (`reading`, `writing`, `read_json`): a file that
  is not what its reader expects (a truncated parquet, npy, npz, tar or json) raises
  `UnreadableFileError` ``"<path>: not a readable <what>: <why>"``; a failed write (a full disk)
  raises ``OSError`` with the same errno, naming the file.
- **Checksums** (`file_checksum`, `write_checksums`, `read_checksums`): files written or
  downloaded once and read by many jobs (pool shards) get a record of their size and sha256 beside
  them; their readers compare, so a file changed in place stops the job (`FileChangedError`).
- **Subset coverage** (`subset_coverage`): how many of a subset's uids the pool did not hold.
"""

from __future__ import annotations

import contextlib
import errno as errno_module
import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

__all__ = [
    "Tolerances",
    "tolerances",
    "set_tolerances",
    "IntegrityError",
    "UnreadableFileError",
    "FileChangedError",
    "ShardDamagedError",
    "SubsetCoverageError",
    "reading",
    "writing",
    "read_json",
    "write_json",
    "file_checksum",
    "write_checksums",
    "read_checksums",
    "changed_files",
    "subset_coverage",
]

_HASH_BLOCK = 1 << 20


# --------------------------------------------------------------------------------------------
# What a job tolerates
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Tolerances:
    """``max_shard_missing``: the share of the samples a pool shard's record (its parquet's
    successes, its ``_stats.json``) lists that its tar may fail to yield before a reader stops;
    ``max_subset_missing``: the share of a subset's unique uids the pool may lack at reshard time."""

    max_shard_missing: float = 0.0
    max_subset_missing: float = 0.0

    def __post_init__(self):
        for name in ("max_shard_missing", "max_subset_missing"):
            value = getattr(self, name)
            if not 0.0 <= float(value) <= 1.0:
                raise ValueError(f"integrity.{name} must be a share in [0, 1], got {value!r}")


_TOLERANCES = [Tolerances()]


def tolerances() -> Tolerances:
    """What the running job tolerates (none outside a job)."""
    return _TOLERANCES[0]


def set_tolerances(settings) -> Tolerances:
    """Apply the config's ``integrity`` section (a mapping with every key: the schema fills the
    defaults) or a `Tolerances` to the running process; returns it."""
    value = settings if isinstance(settings, Tolerances) else Tolerances(**dict(settings))
    _TOLERANCES[0] = value
    return value


# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------


class IntegrityError(RuntimeError):
    """Data went missing or changed where the workflow cannot go on without saying so."""


class UnreadableFileError(ValueError):
    """A file is not what its reader expects (truncated, another format); names the file."""


class FileChangedError(IntegrityError):
    """A file differs from the size and sha256 recorded when it was written."""


class ShardDamagedError(IntegrityError):
    """A pool shard's tar yields fewer of its recorded samples than the job tolerates."""


class SubsetCoverageError(IntegrityError):
    """More of a subset's uids are absent from the pool than the job tolerates."""


# the exceptions a reader raises for a file that is not what it expects (not our own checks)
def _unreadable_types() -> tuple[type, ...]:
    import tarfile
    import zipfile

    types: list[type] = [OSError, EOFError, ValueError, tarfile.TarError, zipfile.BadZipFile, UnicodeDecodeError]
    try:
        import pyarrow as pa

        types.append(pa.ArrowException)
    except ImportError:  # pragma: no cover - pyarrow is a dependency
        pass
    return tuple(types)


@contextlib.contextmanager
def reading(path, what: str):
    """``with reading(path, "score parquet"):`` around the call that parses a file: a missing file
    raises ``FileNotFoundError`` and a file that does not parse ``UnreadableFileError``, both
    naming ``path`` and ``what`` was expected. Wrap the parsing only, not the checks after it."""
    try:
        yield
    except (IntegrityError, UnreadableFileError):
        raise
    except FileNotFoundError as err:
        raise FileNotFoundError(errno_module.ENOENT, f"{what} not found", str(path)) from err
    except _unreadable_types() as err:
        raise UnreadableFileError(f"{path}: not a readable {what}: {type(err).__name__}: {err}") from err


@contextlib.contextmanager
def writing(path, what: str):
    """``with writing(path, "subset (.npy)"):`` around a write: an ``OSError`` (a full disk, a
    read-only folder) is raised again with its errno, naming ``path`` and ``what`` was written
    (numpy's own message, "1180 requested and 504 written", names no file)."""
    try:
        yield
    except OSError as err:
        if err.errno is None:  # numpy's short write says only "<n> requested and <m> written"
            raise OSError(f"{path}: could not write the {what}: {err}") from err
        raise OSError(err.errno, f"could not write the {what}: {err.strerror or err}", str(path)) from err


def read_json(path, what: str = "json file"):
    """The parsed content of a JSON file; errors name the file (`reading`)."""
    with reading(path, what):
        with open(path, encoding="utf-8") as stream:
            return json.load(stream)


def write_json(path, content, what: str = "json file", indent: int = 2) -> Path:
    """Write ``content`` as JSON atomically (a temporary file, then a rename); errors name the file."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    with writing(path, what):
        with open(tmp, "w", encoding="utf-8") as stream:
            json.dump(content, stream, indent=indent)
            stream.write("\n")
        os.replace(tmp, path)
    return path


# --------------------------------------------------------------------------------------------
# Checksums of files read by many jobs
# --------------------------------------------------------------------------------------------


def file_checksum(path) -> dict:
    """``{"bytes": size, "sha256": hex}`` of a file."""
    digest = hashlib.sha256()
    size = 0
    with reading(path, "file"), open(path, "rb") as stream:
        while block := stream.read(_HASH_BLOCK):
            digest.update(block)
            size += len(block)
    return {"bytes": size, "sha256": digest.hexdigest()}


def write_checksums(record_path, files) -> dict:
    """Record the size and sha256 of ``files`` (all in the record's folder) in ``record_path``
    (JSON ``{file name: {"bytes", "sha256"}}``, written atomically); returns the record."""
    record = {Path(f).name: file_checksum(f) for f in files}
    write_json(record_path, record, "checksum record")
    return record


def read_checksums(record_path) -> dict | None:
    """A checksum record (`write_checksums`), or None when there is none."""
    if not Path(record_path).is_file():
        return None
    record = read_json(record_path, "checksum record (json)")
    if not isinstance(record, dict) or not all(
        isinstance(v, dict) and {"bytes", "sha256"} <= set(v) for v in record.values()
    ):
        raise UnreadableFileError(f"{record_path}: not a checksum record ({{file: {{bytes, sha256}}}})")
    return record


def changed_files(record_path, files, *, full: bool = True) -> list[str]:
    """How each of ``files`` differs from ``record_path``'s record: an empty list when all match
    (or when there is no record: nothing to compare), else one line per changed file. ``full``
    compares the sha256 too; otherwise only the size (cheap, for files about to be hashed anyway)."""
    record = read_checksums(record_path)
    if record is None:
        return []
    changes = []
    for f in files:
        f = Path(f)
        recorded = record.get(f.name)
        if recorded is None:
            changes.append(f"{f.name}: not in the record")
            continue
        if not f.is_file():
            changes.append(f"{f.name}: gone (recorded {recorded['bytes']} bytes)")
            continue
        size = f.stat().st_size
        if size != recorded["bytes"]:
            changes.append(f"{f.name}: {size} bytes, recorded {recorded['bytes']}")
        elif full:
            now = file_checksum(f)["sha256"]
            if now != recorded["sha256"]:
                changes.append(f"{f.name}: sha256 {now[:16]}..., recorded {recorded['sha256'][:16]}...")
    return changes


# --------------------------------------------------------------------------------------------
# Subset coverage
# --------------------------------------------------------------------------------------------


def subset_coverage(name: str, unique_uids: int, absent: int, examples=(), max_share: float | None = None) -> dict:
    """The share of a subset's ``unique_uids`` that are ``absent`` from the pool; raises
    `SubsetCoverageError` naming the subset and the count when it exceeds ``max_share``
    (default: the job's ``max_subset_missing``), else logs the count when there is one."""
    limit = tolerances().max_subset_missing if max_share is None else max_share
    share = absent / unique_uids if unique_uids else 0.0
    coverage = {"unique_uids": int(unique_uids), "absent_uids": int(absent), "absent_share": share}
    if absent:
        detail = (
            f"subset {name}: {absent} of its {unique_uids} uids ({share:.2%}) are not among the pool's samples "
            f"(absent from its shards, or skipped as bad samples: see the pool report), e.g. "
            f"{', '.join(list(examples)[:3])}"
        )
        if share > limit:
            raise SubsetCoverageError(
                f"{detail}: more than integrity.max_subset_missing ({limit:.2%}) allows. The subset and the "
                "pool do not match: was the subset selected on another pool, or did pool shards go missing?"
            )
        log.warning("%s; within integrity.max_subset_missing (%.2f%%)", detail, 100 * limit)
    return coverage
