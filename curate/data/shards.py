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
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import re
import tarfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Iterator

import pyarrow as pa
import pyarrow.parquet as pq

from curate.data.chunks import chunk_folder

if TYPE_CHECKING:  # pragma: no cover
    from PIL import Image

__all__ = [
    "OOM_SHARD_COUNT",
    "KEY_DIGITS",
    "SKIP_REASONS",
    "IMAGE_EXTENSIONS",
    "compute_key",
    "key_digits",
    "shard_name",
    "ShardWriter",
    "shard_paths",
    "PoolSample",
    "SkipReport",
    "iter_pool_samples",
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
#: Member extensions that count as the sample's image (img2dataset's encode formats).
IMAGE_EXTENSIONS = ("jpg", "jpeg", "png", "webp")

_UID_RE = re.compile(r"^[0-9a-f]{32}$")
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
    """Counts the samples skipped by ``iter_pool_samples``, by reason, with a few examples."""

    max_examples: int = 20
    total_seen: int = 0
    total_kept: int = 0
    counts: dict = field(default_factory=lambda: {r: 0 for r in SKIP_REASONS})
    examples: list = field(default_factory=list)

    reasons = SKIP_REASONS

    def add(self, reason: str, shard: str, key: str) -> None:
        if reason not in SKIP_REASONS:
            raise ValueError(f"unknown skip reason {reason!r}; expected one of {SKIP_REASONS}")
        self.counts[reason] += 1
        if len(self.examples) < self.max_examples:
            self.examples.append({"shard": str(shard), "key": str(key), "reason": reason})

    def count(self, reason: str) -> int:
        if reason not in SKIP_REASONS:
            raise ValueError(f"unknown skip reason {reason!r}; expected one of {SKIP_REASONS}")
        return self.counts[reason]

    @property
    def total_skipped(self) -> int:
        return sum(self.counts.values())

    def merge(self, other: "SkipReport") -> "SkipReport":
        """Add another report's counts (e.g. to sum per-chunk reports)."""
        self.total_seen += other.total_seen
        self.total_kept += other.total_kept
        for r in SKIP_REASONS:
            self.counts[r] += other.counts[r]
        room = self.max_examples - len(self.examples)
        self.examples.extend(other.examples[: max(room, 0)])
        return self

    def as_dict(self) -> dict:
        return {
            "seen": self.total_seen,
            "kept": self.total_kept,
            "skipped": {r: self.counts[r] for r in SKIP_REASONS},
            "examples": [dict(e) for e in self.examples],
        }

    def write_json(self, path) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w") as f:
            json.dump(self.as_dict(), f, indent=2)


def _split_member(name: str) -> tuple[str, str]:
    """webdataset's rule: the key is the path up to the first dot of the basename."""
    slash = name.rfind("/")
    dot = name.find(".", slash + 1)
    if dot < 0:
        return name, ""
    return name[:dot], name[dot + 1 :].lower()


def _iter_tar_groups(path: Path) -> Iterator[tuple[str, dict[str, bytes]]]:
    try:
        tar = tarfile.open(path, mode="r|*")
    except tarfile.TarError as err:
        raise tarfile.ReadError(f"cannot read shard {path}: {err}") from err
    current_key: str | None = None
    group: dict[str, bytes] = {}
    try:
        with tar:
            for info in tar:
                if not info.isfile():
                    continue
                key, ext = _split_member(info.name)
                if key.rsplit("/", 1)[-1].startswith("__") or not ext:
                    continue
                fobj = tar.extractfile(info)
                data = fobj.read() if fobj is not None else b""
                if key != current_key:
                    if current_key is not None:
                        yield current_key, group
                    current_key, group = key, {}
                group[ext] = data
    except tarfile.TarError as err:
        raise tarfile.ReadError(f"shard {path} is damaged: {err}") from err
    if current_key is not None:
        yield current_key, group


def _decode_image(data: bytes):
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as im:
            im.load()  # full decode: catches truncated / garbage data
            return im.convert("RGB")
    except Exception:  # noqa: BLE001 - any decoder failure makes the sample corrupt
        return None


def iter_pool_samples(tar_paths, report: SkipReport, decode_images: bool = True) -> Iterator[PoolSample]:
    """Stream the samples of pool shards, grouped by key, in tar order.

    A sample is skipped, and counted in ``report`` under one reason, when (checked in this
    order): its json has no uid or the uid is not 32 lowercase hex characters
    (``missing_uid``); it has no image member (``missing_image``); its image does not decode
    with PIL ``load()`` (``corrupt_image``, only when ``decode_images``); its caption (``txt``,
    else the json's ``caption``) is empty or whitespace (``empty_caption``); its uid was already
    yielded by this iteration (``duplicate_uid``). A missing tar raises ``FileNotFoundError``
    naming the file; an unreadable tar raises ``tarfile.ReadError`` naming it.
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
        for key, group in _iter_tar_groups(path):
            report.total_seen += 1
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
                report.add("missing_uid", shard, key)
                continue
            ext = next((e for e in IMAGE_EXTENSIONS if e in group), None)
            if ext is None:
                report.add("missing_image", shard, key)
                continue
            jpg = group[ext]
            image = None
            if decode_images:
                image = _decode_image(jpg)
                if image is None:
                    report.add("corrupt_image", shard, key)
                    continue
            if "txt" in group:
                text = group["txt"].decode("utf-8", errors="replace")
            else:
                text = meta.get("caption") or ""
            if not text.strip():
                report.add("empty_caption", shard, key)
                continue
            if uid in seen:
                report.add("duplicate_uid", shard, key)
                continue
            seen.add(uid)
            report.total_kept += 1
            yield PoolSample(key=key.rsplit("/", 1)[-1], uid=uid, image=image, text=text, meta=meta, jpg=jpg)


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
