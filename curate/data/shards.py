"""Pool shards in img2dataset's webdataset layout, and a checked reader over them.

A DataComp pool is what ``img2dataset`` writes when DataComp's ``download_upstream.py`` calls it
with ``output_format="webdataset"``, ``number_sample_per_shard=10000``, ``oom_shard_count=8``,
``save_additional_columns=["uid"]``, ``caption_col="text"`` and the defaults
``compute_hash="sha256"``, ``extract_exif=True``. For every shard it writes:

- ``{shard_id:08d}.tar``: per sample ``{key}.jpg``, ``{key}.json``, ``{key}.txt`` (webdataset's
  ``TarWriter`` writes a sample's members in sorted extension order);
- ``{shard_id:08d}.parquet``: one row per *input* sample, successful or not, with the columns
  ``uid, caption, url, key, status, error_message, width, height, original_width,
  original_height, exif, sha256``, plus ``text`` (a copy of ``caption`` under the DataComp
  metadata's column name, which img2dataset does not write);
- ``{shard_id:08d}_stats.json``: ``count, successes, failed_to_download, failed_to_resize,
  duration, start_time, end_time, status_dict``.

The key is img2dataset's own index, not the uid (``compute_key`` below mirrors
``img2dataset.downloader.compute_key``): ``shard_id * 10**oom_sample_per_shard + index``,
zero-padded to ``oom_sample_per_shard + oom_shard_count`` digits, where
``oom_sample_per_shard = ceil(log10(samples_per_shard))``.

``ShardWriter`` writes one such shard (used by the synthetic pool), ``iter_pool_samples`` streams
samples back, skipping and counting bad ones in a ``SkipReport`` (never silently), and
``write_webdataset_shards`` writes the plain webdataset shards open_clip trains on.

Every shard read is checked against its own record (`ShardCheck`): the samples its parquet lists
as successes (and its ``_stats.json`` counts) must come out of its tar. Python's ``tarfile`` ends
an archive quietly at a bad header or a cut after the first member, so the reader also looks at
where the archive stopped: samples the record lists but the tar did not yield are counted per
shard as ``truncated_shard`` (the file ends early: a killed download, a cut copy) or
``damaged_shard`` (unreadable bytes follow), and more than the job tolerates
(`curate.data.integrity.Tolerances.max_shard_missing`) stops it, naming the shard, the byte where
reading stopped and the counts. The writer of a pool (the synthetic generator, the download) also
records each shard's size and sha256 (``_{shard}_sha256.json``, `record_shard`); the reader hashes
the tar as it streams it and stops on a shard changed since (`FileChangedError`), saying what to
rerun.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import math
import re
import tarfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Iterator

import pyarrow as pa
import pyarrow.parquet as pq

from curate.data.chunks import DOWNLOAD_REPORT_SUFFIX, chunk_folder
from curate.data.integrity import (
    FileChangedError,
    IntegrityError,
    ShardDamagedError,
    UnreadableFileError,
    changed_files,
    read_checksums,
    read_json,
    reading,
    tolerances,
    write_checksums,
)

log = logging.getLogger(__name__)

if TYPE_CHECKING:  # pragma: no cover
    from PIL import Image

__all__ = [
    "OOM_SHARD_COUNT",
    "KEY_DIGITS",
    "SKIP_REASONS",
    "UNREAD_REASONS",
    "IMAGE_EXTENSIONS",
    "compute_key",
    "key_digits",
    "shard_name",
    "ShardWriter",
    "shard_paths",
    "shard_files",
    "checksum_path",
    "record_shard",
    "checked_metadata",
    "rebuild_hint",
    "ShardCheck",
    "inspect_shard",
    "PoolSample",
    "SkipReport",
    "iter_pool_samples",
    "classify_sample",
    "tar_sha256",
    "close_shard",
    "iter_pool_batches",
    "write_webdataset_shards",
    "iter_webdataset_pairs",
]

#: img2dataset's ``oom_shard_count`` as DataComp's download_upstream.py sets it (shard files are
#: named ``{shard_id:08d}.tar``).
OOM_SHARD_COUNT = 8
#: Digits of a sample key in a DataComp pool: oom_shard_count (8) + ceil(log10(10000)) (4).
#: A pool with another samples_per_shard has ``key_digits(samples_per_shard)`` digits.
KEY_DIGITS = OOM_SHARD_COUNT + 4

#: Reasons a pool sample is skipped by ``iter_pool_samples``.
SKIP_REASONS = ("corrupt_image", "empty_caption", "missing_uid", "missing_image", "duplicate_uid")
#: Why a sample its shard's record lists was not read at all: the tar ends early (cut, killed
#: download) or turns unreadable (a bad header, garbage bytes) before it.
UNREAD_REASONS = ("truncated_shard", "damaged_shard")
#: Member extensions that count as the sample's image (img2dataset's encode formats).
IMAGE_EXTENSIONS = ("jpg", "jpeg", "png", "webp")

_UID_RE = re.compile(r"^[0-9a-f]{32}$")
_END_OF_ARCHIVE = 2 * tarfile.BLOCKSIZE  # two zero blocks close a tar
_TAR_MTIME = 0.0  # fixed member mtime: the same samples give the same tar bytes


def _oom_sample_per_shard(samples_per_shard: int) -> int:
    if samples_per_shard < 1:
        raise ValueError(f"samples_per_shard must be >= 1, got {samples_per_shard}")
    return math.ceil(math.log10(samples_per_shard))


def key_digits(samples_per_shard: int, oom_shard_count: int = OOM_SHARD_COUNT) -> int:
    """Number of digits of a key in a shard of ``samples_per_shard`` samples."""
    return _oom_sample_per_shard(samples_per_shard) + oom_shard_count


def compute_key(shard_id: int, index: int, samples_per_shard: int, oom_shard_count: int = OOM_SHARD_COUNT) -> str:
    """img2dataset's sample key: ``shard_id * 10**oom_sample_per_shard + index``, zero-padded.

    With DataComp's 10000 samples per shard and 8-digit shard names this is
    ``f"{shard_id:08d}{index:04d}"``.
    """
    oom = _oom_sample_per_shard(samples_per_shard)
    if not 0 <= index < max(samples_per_shard, 1):
        raise ValueError(f"index {index} out of range for {samples_per_shard} samples per shard")
    true_key = (10**oom) * shard_id + index
    return f"{true_key:0{oom + oom_shard_count}d}"


def shard_name(shard_id: int, oom_shard_count: int = OOM_SHARD_COUNT) -> str:
    return f"{shard_id:0{oom_shard_count}d}"


# --------------------------------------------------------------------------------------------
# Writing one img2dataset shard
# --------------------------------------------------------------------------------------------


def add_tar_member(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    """Add one member with a fixed mtime and owner, so the same samples give the same tar bytes."""
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = _TAR_MTIME
    info.mode = 0o444
    info.uname = info.gname = "bigdata"  # webdataset TarWriter's defaults
    tar.addfile(info, io.BytesIO(data))


_PARQUET_SCHEMA = pa.schema(
    [
        ("uid", pa.string()),
        ("caption", pa.string()),
        ("url", pa.string()),
        ("key", pa.string()),
        ("status", pa.string()),
        ("error_message", pa.string()),
        ("width", pa.int32()),
        ("height", pa.int32()),
        ("original_width", pa.int32()),
        ("original_height", pa.int32()),
        ("exif", pa.string()),
        ("sha256", pa.string()),
        # Alias of `caption` under DataComp metadata's column name (not written by img2dataset).
        ("text", pa.string()),
    ]
)
_JSON_FIELDS = [
    "uid",
    "caption",
    "url",
    "key",
    "status",
    "error_message",
    "width",
    "height",
    "original_width",
    "original_height",
    "exif",
    "sha256",
]


def _image_size(data: bytes) -> tuple[int | None, int | None]:
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as im:  # header only
            return im.size
    except Exception:  # noqa: BLE001 - unreadable bytes have no size
        return None, None


class ShardWriter:
    """Writes ONE img2dataset-style shard (tar + parquet + stats json) into ``out_dir``.

    ``write(jpg, text, meta)`` adds a sample and returns its key. ``meta`` carries the input
    columns (``uid``, ``url``, ...) and may carry ``original_width/original_height`` (else read
    from the image header), ``width/height`` (default: the original size, i.e. not resized),
    ``status`` and ``error_message``. A sample without a uid in ``meta`` is written without
    one (the json has no ``uid`` key, the parquet row a null). ``jpg=None`` records a failed
    download: a parquet row, no tar members, as img2dataset does.

    ``fixed_time`` (keyword only) pins ``start_time``/``end_time`` in the stats file, so that
    generated pools are byte-identical across reruns; by default the wall clock is used.
    """

    def __init__(
        self,
        out_dir,
        shard_id: int,
        samples_per_shard: int,
        *,
        oom_shard_count: int = OOM_SHARD_COUNT,
        fixed_time: float | None = None,
    ):
        if shard_id < 0:
            raise ValueError(f"shard_id must be >= 0, got {shard_id}")
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.shard_id = int(shard_id)
        self.samples_per_shard = int(samples_per_shard)
        self.oom_shard_count = oom_shard_count
        _oom_sample_per_shard(self.samples_per_shard)  # validates
        self.fixed_time = fixed_time
        name = shard_name(self.shard_id, oom_shard_count)
        self.tar_path = self.out_dir / f"{name}.tar"
        self.parquet_path = self.out_dir / f"{name}.parquet"
        self.stats_path = self.out_dir / f"{name}_stats.json"
        self._start = fixed_time if fixed_time is not None else time.time()
        self._rows: list[dict] = []
        self._status: dict[str, int] = {}
        self._successes = 0
        self._failed_to_download = 0
        self._failed_to_resize = 0
        self._fd = open(self.tar_path, "wb")
        self._tar = tarfile.open(fileobj=self._fd, mode="w|", format=tarfile.USTAR_FORMAT)
        self._closed = False
        self._stats: dict | None = None

    # context manager -------------------------------------------------------------------
    def __enter__(self) -> "ShardWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if not self._closed:
            self.close()

    @property
    def count(self) -> int:
        return len(self._rows)

    def _add_member(self, name: str, data: bytes) -> None:
        add_tar_member(self._tar, name, data)

    def write(self, jpg: bytes | None, text: str | None, meta: dict) -> str:
        if self._closed:
            raise RuntimeError(f"shard {self.tar_path} is already closed")
        index = len(self._rows)
        if index >= self.samples_per_shard:
            raise ValueError(f"shard {self.tar_path} is full ({self.samples_per_shard} samples per shard)")
        key = compute_key(self.shard_id, index, self.samples_per_shard, self.oom_shard_count)
        meta = dict(meta)
        record: dict = {}
        if meta.get("uid") is not None:
            record["uid"] = meta["uid"]
        record["caption"] = text
        record["url"] = meta.get("url")
        record["key"] = key
        if jpg is None:
            status = meta.get("status") or "failed_to_download"
            error = meta.get("error_message") or "no image"
            width = height = ow = oh = None
            sha = None
        else:
            status = meta.get("status") or "success"
            error = meta.get("error_message")
            ow, oh = meta.get("original_width"), meta.get("original_height")
            if ow is None or oh is None:
                ow, oh = _image_size(jpg)
            width = meta.get("width", ow)
            height = meta.get("height", oh)
            sha = hashlib.sha256(jpg).hexdigest()
        record.update(
            status=status,
            error_message=error,
            width=width,
            height=height,
            original_width=ow,
            original_height=oh,
            exif=meta.get("exif"),
            sha256=sha,
        )
        # extra input columns (img2dataset saves every column of the url list it was given)
        for k, v in meta.items():
            if k not in record and k not in ("text",):
                record[k] = v

        if status == "success":
            self._successes += 1
        elif status == "failed_to_resize":
            self._failed_to_resize += 1
        else:
            self._failed_to_download += 1
        counted = status if status == "success" else (error or status)
        self._status[counted] = self._status.get(counted, 0) + 1

        if jpg is not None:
            sample = {
                "jpg": bytes(jpg),
                "json": json.dumps(record, indent=4).encode("utf-8"),
                "txt": (text if text is not None else "").encode("utf-8"),
            }
            for ext in sorted(sample):  # webdataset's TarWriter order
                self._add_member(f"{key}.{ext}", sample[ext])
        row = {name: record.get(name) for name in _JSON_FIELDS}
        row["text"] = text
        self._rows.append(row)
        return key

    def close(self) -> dict:
        if self._closed:
            assert self._stats is not None
            return self._stats
        self._tar.close()
        self._fd.close()
        table = pa.Table.from_pylist(self._rows, schema=_PARQUET_SCHEMA)
        pq.write_table(table, self.parquet_path)
        end = self.fixed_time if self.fixed_time is not None else time.time()
        stats = {
            "count": len(self._rows),
            "successes": self._successes,
            "failed_to_download": self._failed_to_download,
            "failed_to_resize": self._failed_to_resize,
            "duration": end - self._start,
            "start_time": self._start,
            "end_time": end,
            "status_dict": dict(sorted(self._status.items())),
        }
        with open(self.stats_path, "w") as f:
            json.dump(stats, f, indent=4)
        self._closed = True
        self._stats = stats
        return stats


def shard_paths(chunk_dir) -> list[Path]:
    """The ``*.tar`` files of a chunk (its folder, or its download report: `chunk_folder`),
    sorted by name. A missing folder raises."""
    chunk_dir = chunk_folder(chunk_dir)
    if not chunk_dir.is_dir():
        raise FileNotFoundError(f"shard folder not found: {chunk_dir}")
    return sorted(p for p in chunk_dir.glob("*.tar") if p.is_file())


# --------------------------------------------------------------------------------------------
# A shard's record: what its tar must yield, and the checksums it was written with
# --------------------------------------------------------------------------------------------


def shard_files(tar_path) -> tuple[Path, Path, Path]:
    """A shard's tar, parquet and ``_stats.json`` (img2dataset's names)."""
    tar_path = Path(tar_path)
    stem = tar_path.name[: -len(".tar")] if tar_path.name.endswith(".tar") else tar_path.stem
    return tar_path, tar_path.with_name(f"{stem}.parquet"), tar_path.with_name(f"{stem}_stats.json")


def checksum_path(tar_path) -> Path:
    """A shard's checksum record beside it, ``_{shard}_sha256.json`` (size and sha256 of its tar,
    parquet and stats file; written by `record_shard` when the shard is made or downloaded; the
    leading ``_`` marks curate's own files among img2dataset's)."""
    return Path(tar_path).with_name(f"_{shard_files(tar_path)[1].stem}_sha256.json")


def record_shard(tar_path) -> dict:
    """Record the size and sha256 of a shard's tar, parquet and stats file in
    ``_{shard}_sha256.json`` beside them (where the shard is first written or downloaded); its
    readers compare (`iter_pool_samples`)."""
    return write_checksums(checksum_path(Path(tar_path)), shard_files(tar_path))


def checked_metadata(tar_path) -> Path:
    """A shard's parquet (the pool's per-sample metadata, which DataComp's baselines read),
    after checking it against the shard's checksum record: a change raises `FileChangedError`."""
    parquet = shard_files(tar_path)[1]
    changes = changed_files(checksum_path(Path(tar_path)), [parquet])
    if changes:
        raise FileChangedError(
            f"pool shard metadata {parquet} changed since it was written ({'; '.join(changes)}). "
            f"What was computed from it no longer matches; {rebuild_hint(tar_path)}"
        )
    return parquet


def rebuild_hint(tar_path) -> str:
    """What to rerun for a damaged or changed shard: its chunk's download, or its generator."""
    chunk_dir = Path(tar_path).parent
    report = chunk_dir.with_name(chunk_dir.name + DOWNLOAD_REPORT_SUFFIX)
    if report.exists():
        return (
            f"download it again: `snakemake --forcerun {report} -- <your targets>` (the download rule "
            "fetches a damaged or changed shard again, and what read it is rebuilt)"
        )
    return (
        f"make it again: `snakemake --forcerun {chunk_dir} -- <your targets>` (the chunk is regenerated, "
        "and what read it is rebuilt)"
    )


def _recorded_successes(tar_path: Path) -> list[str]:
    """The keys of the samples a shard's record says its tar holds: its parquet's rows with status
    ``success``, which must agree with its ``_stats.json``'s ``successes``."""
    _, parquet, stats_path = shard_files(tar_path)
    for f, what in ((parquet, "parquet"), (stats_path, "_stats.json")):
        if not f.is_file():
            raise FileNotFoundError(
                f"pool shard {tar_path}: its record {f.name} (img2dataset's {what}) is missing; "
                f"every shard is read against it. To fix, {rebuild_hint(tar_path)}"
            )
    with reading(parquet, "shard parquet (img2dataset's per-shard metadata)"):
        table = pq.read_table(parquet, columns=["key", "status"]).to_pydict()
    keys = [str(k) for k, status in zip(table["key"], table["status"]) if status == "success"]
    stats = read_json(stats_path, "shard _stats.json")
    successes = stats.get("successes") if isinstance(stats, dict) else None
    if not isinstance(successes, int):
        raise UnreadableFileError(f"{stats_path}: not img2dataset's _stats.json (no integer 'successes')")
    if successes != len(keys):
        raise IntegrityError(
            f"pool shard {tar_path}: its records disagree: {parquet.name} lists {len(keys)} successful "
            f"samples, {stats_path.name} {successes}. To fix, {rebuild_hint(tar_path)}"
        )
    return keys


@dataclass
class ShardCheck:
    """One shard read against its record. ``expected``: samples the record lists; ``read``: how
    many of them the tar yielded; ``unread``: the others, lost to ``reason`` (`UNREAD_REASONS`)
    at byte ``offset`` of ``size`` (where reading stopped); ``changes``: how the files differ
    from their checksum record (``recorded`` False: the shard has none)."""

    path: Path
    size: int = 0
    expected: int = 0
    read: int = 0
    reason: str | None = None
    offset: int | None = None
    detail: str = ""
    end: int = 0
    sha256: str | None = None
    recorded: bool = False
    changes: list = field(default_factory=list)

    @property
    def unread(self) -> int:
        return self.expected - self.read

    @property
    def share(self) -> float:
        return self.unread / self.expected if self.expected else 0.0

    def as_dict(self) -> dict:
        return {
            "shard": self.path.name,
            "reason": self.reason,
            "offset": self.offset,
            "size": self.size,
            "expected": self.expected,
            "read": self.read,
            "unread": self.unread,
        }

    def finish(self) -> "ShardCheck":
        """After the tar was read: a clean tar that still lacks recorded samples is damaged, and
        the tar's sha256 is compared with its record."""
        if self.unread and self.reason is None:
            self.reason, self.offset = "damaged_shard", self.end
            self.detail = "the tar ends cleanly (it lacks them)"
        if self.recorded and not self.changes:
            recorded = (read_checksums(checksum_path(self.path)) or {}).get(self.path.name)
            if recorded is not None and self.sha256 != recorded["sha256"]:
                self.changes.append(
                    f"{self.path.name}: sha256 {self.sha256[:16]}..., recorded {recorded['sha256'][:16]}..."
                )
        return self

    def damage(self) -> str:
        """One line: where the tar stopped and what was lost."""
        return (
            f"{self.detail} at byte {self.offset} of {self.size}: {self.unread} of the {self.expected} samples "
            f"its record ({shard_files(self.path)[1].name}, {shard_files(self.path)[2].name}) lists were not read"
        )

    def verdict(self, max_missing: float) -> None:
        """Raise when the shard changed since it was recorded (`FileChangedError`) or lost more
        than ``max_missing`` of its samples (`ShardDamagedError`); both name the shard and say what
        to rerun."""
        if self.changes:
            damage = f"; {self.damage()}" if self.unread else ""
            raise FileChangedError(
                f"pool shard {self.path} changed since it was written ({'; '.join(self.changes)}, per "
                f"{checksum_path(self.path).name}){damage}. What was computed from it no longer matches; "
                f"{rebuild_hint(self.path)}"
            )
        if self.unread and self.share > max_missing:
            raise ShardDamagedError(
                f"pool shard {self.path} is {self.reason.replace('_shard', '')}: {self.damage()} "
                f"({self.share:.2%}, more than integrity.max_shard_missing {max_missing:.2%}). "
                f"To fix, {rebuild_hint(self.path)}"
            )


def _start_check(path: Path, quiet: bool = False) -> tuple[ShardCheck, set[str]]:
    check = ShardCheck(path=path, size=path.stat().st_size)
    checksums = checksum_path(path)
    check.recorded = checksums.is_file()
    if check.recorded:
        # the parquet and stats file are small: hash them now; the tar as it streams (size now)
        check.changes = changed_files(checksums, shard_files(path)[1:]) + changed_files(checksums, [path], full=False)
        if any(not c.startswith(path.name) for c in check.changes):
            check.verdict(0.0)  # the record itself changed: nothing to read against
    elif not quiet:
        log.warning("pool shard %s has no checksum record (%s): a change in place cannot be noticed", path, checksums)
    expected = _recorded_successes(path)
    check.expected = len(expected)
    return check, set(expected)


class _HashingReader:
    """A binary file's ``read`` that feeds a sha256 on the way (tarfile's stream mode reads through it)."""

    def __init__(self, stream):
        self.stream = stream
        self.digest = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        data = self.stream.read(size)
        self.digest.update(data)
        return data

    def drain(self) -> str:
        while self.read(1 << 20):
            pass
        return self.digest.hexdigest()


class _PlainReader:
    """A binary file's ``read`` without hashing (the tar is hashed elsewhere); ``drain`` -> None."""

    def __init__(self, stream):
        self.stream = stream

    def read(self, size: int = -1) -> bytes:
        return self.stream.read(size)

    def drain(self) -> None:
        return None


def tar_sha256(path) -> str:
    """The sha256 of a shard's tar (what `ShardCheck.finish` compares with the record), read
    apart from its samples (a thread beside the loader's workers: `curate.data.loader`)."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        while block := stream.read(1 << 22):
            digest.update(block)
    return digest.hexdigest()


def _tail_state(path: Path, offset: int, size: int) -> tuple[str | None, str]:
    """How a tar ends after the header offset where tarfile stopped: (None, "") when two zero
    blocks (the end-of-archive marker) and only zeros follow; else the unread reason and what
    was found there."""
    tail = size - offset
    nonzero = False
    with open(path, "rb") as stream:
        stream.seek(offset)
        while block := stream.read(1 << 20):
            if block.count(0) != len(block):
                nonzero = True
                break
    if nonzero and tail >= tarfile.BLOCKSIZE:
        return "damaged_shard", "an unreadable tar header"
    if nonzero:
        return "truncated_shard", "a tar header cut short"
    if tail < _END_OF_ARCHIVE:
        return "truncated_shard", "the end of the file (no end-of-archive marker)"
    return None, ""


def iter_tar_groups(
    path: Path, check: ShardCheck | None = None, hash_tar: bool = True
) -> Iterator[tuple[str, dict[str, bytes]]]:
    """The member groups (key -> {ext: bytes}) of one tar, in order. With a ``check``, the tar is
    hashed as it streams (unless ``hash_tar`` is False: the caller hashes it, `tar_sha256`), and
    where and why reading stopped is filled in; a tar that stops early ends the groups there (the
    caller compares with the record) instead of raising."""
    check = check if check is not None else ShardCheck(path=path, size=path.stat().st_size)
    raw = open(path, "rb")
    reader = _HashingReader(raw) if hash_tar else _PlainReader(raw)
    current_key: str | None = None
    group: dict[str, bytes] = {}
    complete_exts: frozenset | None = None  # the members of the last group known to be whole
    cut: tuple[str, str] | None = None  # (reason, what) when a member could not be read
    try:
        try:
            tar = tarfile.open(fileobj=reader, mode="r|*")
        except tarfile.TarError:
            tar = None
        check.end = 0
        if tar is not None:
            info = None
            try:
                for info in tar:
                    check.end = info.offset
                    if not info.isfile():
                        continue
                    if _META_MEMBER.match(info.name):
                        continue
                    key, ext = _split_member(info.name)
                    if not ext:
                        continue
                    # webdataset's grouping: a new name, or a suffix the group already has,
                    # starts the next sample; the previous one is whole: hand it on first
                    if key != current_key or ext in group:
                        if current_key is not None:
                            complete_exts = frozenset(group)
                            yield current_key, group
                        current_key, group = key, {}
                    fobj = tar.extractfile(info)
                    group[ext] = fobj.read() if fobj is not None else b""
                check.end = tar.offset
            except (tarfile.TarError, EOFError) as err:  # a member's data could not be read whole
                ends_inside = info is not None and info.offset_data + info.size > check.size
                cut = (
                    ("truncated_shard", f"the file ending inside member {info.name} ({err})")
                    if ends_inside
                    else ("damaged_shard", f"member {info.name if info else '?'} unreadable ({err})")
                )
        check.sha256 = reader.drain()
    finally:
        raw.close()
    reason, found = cut if cut is not None else _tail_state(path, check.end, check.size)
    if reason is not None:
        check.reason, check.offset, check.detail = reason, check.end, f"the tar stops at {found}"
    # after a clean end the last group is whole; after a cut only if it has every member the
    # group before it had (a cut can fall between a sample's members, or inside one)
    last_whole = reason is None or (cut is None and complete_exts is not None and frozenset(group) == complete_exts)
    if current_key is not None and last_whole:
        yield current_key, group


def _decode_image(data: bytes):
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as im:
            im.load()  # full decode: catches truncated / garbage data
            return im.convert("RGB")
    except Exception:  # noqa: BLE001 - any decoder failure makes the sample corrupt
        return None


def inspect_shard(tar_path) -> ShardCheck:
    """Read a whole shard against its record without decoding anything: the finished
    `ShardCheck` (what the download rule looks at before it trusts a shard it already has)."""
    path = Path(tar_path)
    check, expected = _start_check(path)
    for key, _ in iter_tar_groups(path, check):
        if key.rsplit("/", 1)[-1] in expected:
            check.read += 1
    return check.finish()


def iter_checked_groups(
    tar_path, max_missing: float | None = None, report: "SkipReport | None" = None
) -> Iterator[tuple[str, dict[str, bytes]]]:
    """The member groups ``(key, {suffix: bytes})`` of one pool shard, as webdataset groups
    them, read against the shard's record: after the last group, a shard missing more than
    ``max_missing`` of its recorded samples (default: the job's ``integrity.max_shard_missing``)
    raises `ShardDamagedError`, one that changed since its checksums were recorded
    `FileChangedError`; a smaller loss is logged and added to ``report``."""
    path = Path(tar_path)
    limit = tolerances().max_shard_missing if max_missing is None else max_missing
    check, expected = _start_check(path)
    for key, group in iter_tar_groups(path, check):
        if key.rsplit("/", 1)[-1] in expected:
            check.read += 1
        yield key, group
    close_shard(check.finish(), report, limit)


# --------------------------------------------------------------------------------------------
# Reading pool shards, skipping (and counting) bad samples
# --------------------------------------------------------------------------------------------


@dataclass
class PoolSample:
    key: str
    uid: str
    image: "Image.Image | None"
    text: str
    meta: dict
    jpg: bytes


@dataclass
class SkipReport:
    """Counts the samples skipped by ``iter_pool_samples``, by reason, with a few examples; and
    the samples shards' records list that their tars did not yield (``unread``, by reason, and
    per shard in ``damaged_shards``)."""

    max_examples: int = 20
    total_seen: int = 0
    total_kept: int = 0
    counts: dict = field(default_factory=lambda: {r: 0 for r in SKIP_REASONS})
    examples: list = field(default_factory=list)
    unread: dict = field(default_factory=lambda: {r: 0 for r in UNREAD_REASONS})
    damaged_shards: list = field(default_factory=list)

    reasons = SKIP_REASONS

    def add(self, reason: str, shard: str, key: str) -> None:
        if reason not in SKIP_REASONS:
            raise ValueError(f"unknown skip reason {reason!r}; expected one of {SKIP_REASONS}")
        self.counts[reason] += 1
        if len(self.examples) < self.max_examples:
            self.examples.append({"shard": str(shard), "key": str(key), "reason": reason})

    def add_shard(self, check: ShardCheck) -> None:
        """Count the samples one shard's tar did not yield (nothing when it yielded them all)."""
        if check.unread:
            self.unread[check.reason] += check.unread
            self.damaged_shards.append(check.as_dict())

    def count(self, reason: str) -> int:
        if reason not in SKIP_REASONS:
            raise ValueError(f"unknown skip reason {reason!r}; expected one of {SKIP_REASONS}")
        return self.counts[reason]

    @property
    def total_skipped(self) -> int:
        return sum(self.counts.values())

    @property
    def total_unread(self) -> int:
        return sum(self.unread.values())

    def merge(self, other: "SkipReport") -> "SkipReport":
        """Add another report's counts (e.g. to sum per-chunk reports)."""
        self.total_seen += other.total_seen
        self.total_kept += other.total_kept
        for r in SKIP_REASONS:
            self.counts[r] += other.counts[r]
        for r in UNREAD_REASONS:
            self.unread[r] += other.unread[r]
        self.damaged_shards.extend(dict(s) for s in other.damaged_shards)
        room = self.max_examples - len(self.examples)
        self.examples.extend(other.examples[: max(room, 0)])
        return self

    def as_dict(self) -> dict:
        return {
            "seen": self.total_seen,
            "kept": self.total_kept,
            "skipped": {r: self.counts[r] for r in SKIP_REASONS},
            "examples": [dict(e) for e in self.examples],
            "unread": {r: self.unread[r] for r in UNREAD_REASONS},
            "damaged_shards": [dict(s) for s in self.damaged_shards],
        }

    def write_json(self, path) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w") as f:
            json.dump(self.as_dict(), f, indent=2)


#: webdataset's metadata members (``__key__``, ``__meta__/...``), never part of a sample.
_META_MEMBER = re.compile(r"__[^/]*__($|/)")


def _split_member(name: str) -> tuple[str, str]:
    """webdataset's rule: the key is the path up to the first dot of the basename."""
    slash = name.rfind("/")
    dot = name.find(".", slash + 1)
    if dot < 0:
        return name, ""
    return name[:dot], name[dot + 1 :].lower()


def classify_sample(key: str, group: dict, decode_images: bool = True, decode=None):
    """``(reason, None)`` for a member group the reader skips (`iter_pool_samples`' rules, the
    duplicate rule aside), else ``(None, PoolSample)``; ``decode``: bytes -> RGB image or None
    (default: PIL, fully loaded)."""
    meta: dict = {}
    if "json" in group:
        try:
            loaded = json.loads(group["json"].decode("utf-8"))
            if isinstance(loaded, dict):
                meta = loaded
        except (UnicodeDecodeError, json.JSONDecodeError):
            meta = {}
    uid = meta.get("uid")
    if not isinstance(uid, str) or not _UID_RE.match(uid):
        return "missing_uid", None
    ext = next((e for e in IMAGE_EXTENSIONS if e in group), None)
    if ext is None:
        return "missing_image", None
    jpg = group[ext]
    image = None
    if decode_images:
        image = (decode or _decode_image)(jpg)
        if image is None:
            return "corrupt_image", None
    if "txt" in group:
        text = group["txt"].decode("utf-8", errors="replace")
    else:
        text = meta.get("caption") or ""
    if not text.strip():
        return "empty_caption", None
    return None, PoolSample(key=key.rsplit("/", 1)[-1], uid=uid, image=image, text=text, meta=meta, jpg=jpg)


def iter_pool_samples(
    tar_paths, report: SkipReport, decode_images: bool = True, max_missing: float | None = None
) -> Iterator[PoolSample]:
    """Stream the samples of pool shards, grouped by key, in tar order.

    A sample is skipped, and counted in ``report`` under one reason, when (checked in this
    order): its json has no uid or the uid is not 32 lowercase hex characters
    (``missing_uid``); it has no image member (``missing_image``); its image does not decode
    with PIL ``load()`` (``corrupt_image``, only when ``decode_images``); its caption (``txt``,
    else the json's ``caption``) is empty or whitespace (``empty_caption``); its uid was already
    yielded by this iteration (``duplicate_uid``). A missing tar raises ``FileNotFoundError``
    naming the file.

    Each shard is read against its record (`ShardCheck`): the samples its parquet lists as
    successes that its tar does not yield are counted in ``report.unread`` and
    ``report.damaged_shards``; a shard missing more than ``max_missing`` of them (default: the
    job's ``integrity.max_shard_missing``) raises `ShardDamagedError`, and one that changed since
    its checksum record was written raises `FileChangedError`, after its samples.
    """
    if isinstance(tar_paths, (str, Path)):
        tar_paths = [tar_paths]
    paths = [Path(p) for p in tar_paths]
    for p in paths:  # fail before yielding anything
        if not p.is_file():
            raise FileNotFoundError(f"pool shard not found: {p}")
    seen: set[str] = set()
    for path in paths:
        shard = path.name
        for key, group in iter_checked_groups(path, max_missing, report):
            report.total_seen += 1
            reason, sample = classify_sample(key, group, decode_images)
            if reason is None and sample.uid in seen:
                reason = "duplicate_uid"
            if reason is not None:
                report.add(reason, shard, key)
                continue
            seen.add(sample.uid)
            report.total_kept += 1
            yield sample


def close_shard(check: "ShardCheck", report: "SkipReport | None", limit: float) -> None:
    """After a shard's samples (its `ShardCheck` finished): stop on a changed or too damaged
    shard (`ShardCheck.verdict`), else count what it did not yield in ``report`` and say so in
    the log."""
    check.verdict(limit)
    if report is not None:
        report.add_shard(check)
    if check.unread:
        log.warning(
            "pool shard %s: %s (within integrity.max_shard_missing %.2f%%)", check.path, check.damage(), 100 * limit
        )


# --------------------------------------------------------------------------------------------
# Plain webdataset shards (training sets)
# --------------------------------------------------------------------------------------------


def iter_pool_batches(
    tar_paths, report: SkipReport, batch_size: int, desc: str = "samples"
) -> Iterator[list[PoolSample]]:
    """The kept samples of pool shards (`iter_pool_samples`) in consecutive lists of
    ``batch_size`` (the last one shorter), with a tqdm progress line in the log every 30 s."""
    from tqdm import tqdm

    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    batch: list[PoolSample] = []
    progress = tqdm(
        iter_pool_samples([str(p) for p in tar_paths], report), desc=desc, unit="sample", mininterval=30, miniters=1
    )
    for sample in progress:
        batch.append(sample)
        if len(batch) >= batch_size:
            yield batch
            batch = []
    if batch:
        yield batch
    progress.close()


def write_webdataset_shards(
    samples: Iterable[tuple[str, bytes, str]], out_dir, prefix: str, samples_per_shard: int
) -> list[Path]:
    """Write ``(key, jpg, txt)`` triples into ``{prefix}-{i:06d}.tar`` shards in ``out_dir``.

    Members are ``{key}.jpg`` and ``{key}.txt`` with a fixed mtime, so the same samples give
    the same bytes. Shards are numbered contiguously from 0; no samples means no shards.
    Keys must not contain dots (webdataset splits the key at the first dot).
    """
    if samples_per_shard < 1:
        raise ValueError(f"samples_per_shard must be >= 1, got {samples_per_shard}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    tar = fd = None
    n_in_shard = 0
    try:
        for key, jpg, txt in samples:
            if "." in key or "/" in key:
                raise ValueError(f"webdataset key must not contain '.' or '/': {key!r}")
            if tar is None or n_in_shard >= samples_per_shard:
                if tar is not None:
                    tar.close()
                    fd.close()
                path = out_dir / f"{prefix}-{len(paths):06d}.tar"
                paths.append(path)
                fd = open(path, "wb")
                tar = tarfile.open(fileobj=fd, mode="w|", format=tarfile.USTAR_FORMAT)
                n_in_shard = 0
            for ext, data in (("jpg", bytes(jpg)), ("txt", txt.encode("utf-8"))):
                add_tar_member(tar, f"{key}.{ext}", data)
            n_in_shard += 1
    finally:
        if tar is not None:
            tar.close()
            fd.close()
    return paths


def iter_webdataset_pairs(tar_paths: Iterable) -> Iterable:
    """(PIL image, caption) pairs from plain webdataset shards of ``{key}.jpg`` + ``{key}.txt``
    members (what `curate.data.synthetic.curated.write_curated_set` writes), in shard order."""
    from PIL import Image

    for path in tar_paths:
        pending: dict[str, dict[str, bytes]] = {}
        with tarfile.open(path, "r") as tar:
            for member in tar:
                if not member.isfile() or "." not in member.name:
                    continue
                key, ext = member.name.split(".", 1)
                data = tar.extractfile(member).read()
                pending.setdefault(key, {})[ext] = data
                rec = pending[key]
                if "jpg" in rec and "txt" in rec:
                    del pending[key]
                    img = Image.open(io.BytesIO(rec["jpg"])).convert("RGB")
                    yield img, rec["txt"].decode("utf-8")
