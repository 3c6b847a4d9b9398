"""A download that exists already, read where it is: a pool with ``layout`` and ``root``.

Two layouts:

- ``datacomp``: what DataComp's ``download_upstream.py`` leaves in its ``--data_dir``: the
  metadata in ``root/metadata/`` (``<id>.parquet`` and, with ``--download_npz``, ``<id>.npz``) and
  ONE flat folder ``root/shards/`` of img2dataset's shards (``00000000.tar``, ``00000000.parquet``,
  ``00000000_stats.json``, ...), numbered across the metadata files (`curate.data.metadata`);
- ``img2dataset``: any img2dataset output folder (``output_format="webdataset"``): ``root`` holds
  the shards; there are no metadata files (a metadata scorer then reads its column from the shard
  parquets).

The workflow's chunks are groups of ``shards_per_chunk`` consecutive shards. A chunk's input is
its **index** (``index_pool_chunk``: ``data_root/pools/<pool>/shards/<chunk>.index.json``), a small
job that never copies nor writes a byte of ``root``: it links the chunk's shard files into
``shards/<chunk>/`` (symbolic links to the files in ``root``), reads each shard once against its
parquet and ``_stats.json`` (`curate.data.shards.inspect_unrecorded`: what its tar does not yield
is counted, beyond ``integrity.max_shard_missing`` the job stops naming the shard) and records its
size and sha256 there (``_<shard>_sha256.json``, as the workflow's own downloads record theirs), so
every later reader notices a shard changed in place. A shard missing from ``root`` (img2dataset
lost a worker) is listed in the index's ``missing_shards`` and logged; the chunk is read without
it. Every job reads the shards through these links: scoring, selection, resharding.

**Retrying failed urls is opt-in** (the pool's ``retry_failed``): the rows the chunk's shards list
as failed are downloaded once more with img2dataset (DataComp's settings, the pool's ``download``
processes, threads, retries; the metadata's ``face_bboxes`` blurred and ``sha256`` verified where
it has them) into NEW shards beside the links, in ``data_root``: ids from ``n_shards + chunk *
shards_per_chunk`` up (beyond every shard of ``root``, unique per chunk), with the workflow's
per-shard resume (a killed retry fetches only its missing shards). The shards in ``root`` are
never rewritten; a recovered sample is in the new shard, its old row still says it failed.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from curate.data.download import download_chunk, download_report
from curate.data.integrity import ShardDamagedError, reading, tolerances
from curate.data.shards import inspect_unrecorded, record_shard, shard_files, shard_name

log = logging.getLogger(__name__)

__all__ = ["LAYOUTS", "shard_source", "metadata_source", "retry_first_shard", "index_chunk", "retry_in_place"]

#: Where each layout keeps its shards and its metadata, relative to ``root``.
LAYOUTS = {"datacomp": ("shards", "metadata"), "img2dataset": (".", None)}
#: The file the retry downloads from, in the chunk folder.
RETRY_INPUT = "_retry_input.parquet"


def shard_source(pool: dict) -> Path:
    """The folder of a pool's existing shards."""
    return Path(pool["root"]) / LAYOUTS[pool["layout"]][0]


def metadata_source(pool: dict) -> Path | None:
    """The folder of a pool's existing metadata files (None for an img2dataset folder)."""
    folder = LAYOUTS[pool["layout"]][1]
    return Path(pool["root"]) / folder if folder else None


def retry_first_shard(pool: dict, chunk: str) -> int:
    """The first id of a chunk's retry shards: beyond every shard of the pool, one range a chunk."""
    return int(pool["n_shards"]) + int(chunk) * int(pool["shards_per_chunk"])


def _clear_links(chunk_dir: Path) -> None:
    """Remove an earlier index's links and their checksum records (a retry's own shards stay)."""
    for path in list(chunk_dir.iterdir()):
        if path.is_symlink():
            path.unlink()
    for record in chunk_dir.glob("_*_sha256.json"):
        tar = chunk_dir / (record.name[1 : -len("_sha256.json")] + ".tar")
        if not tar.exists():
            record.unlink()


def index_chunk(source, chunk_dir, shard_ids, pool_shards: int | None = None) -> dict:
    """Link a chunk's shards of the existing download in ``source`` into ``chunk_dir``, read each
    against its record and record its checksums (module doc); returns the index's report:
    `curate.data.download.download_report`'s counts of the linked shards, with ``source``,
    ``missing_shards``, ``damaged_shards`` and ``unread`` (samples the records list that the tars
    did not yield). ``pool_shards``: the pool's shard count; a shard beyond it in ``source`` (the
    config's ``n_shards`` is short) stops the index of the last chunk."""
    source, chunk_dir = Path(source), Path(chunk_dir)
    if not source.is_dir():
        raise FileNotFoundError(f"the existing download's shard folder {source} is not a folder")
    chunk_dir.mkdir(parents=True, exist_ok=True)
    _clear_links(chunk_dir)
    limit = tolerances().max_shard_missing
    missing, damaged, unread = [], [], 0
    for shard_id in shard_ids:
        files = shard_files(source / f"{shard_name(shard_id)}.tar")
        if not all(f.is_file() for f in files):
            missing.append(shard_name(shard_id))
            log.warning(
                "shard %s is not in %s (%s): the chunk is read without it",
                shard_name(shard_id),
                source,
                ", ".join(f.name for f in files if not f.is_file()) + " missing",
            )
            continue
        for f in files:
            (chunk_dir / f.name).symlink_to(f.resolve())
        link = chunk_dir / files[0].name
        check = inspect_unrecorded(link)
        if check.unread:
            unread += check.unread
            damaged.append(check.as_dict())
            if check.share > limit:
                raise ShardDamagedError(
                    f"pool shard {files[0]} is {check.reason.replace('_shard', '')}: {check.damage()} "
                    f"({check.share:.2%}, more than integrity.max_shard_missing {limit:.2%}). It is read in place and "
                    "never written by the workflow: download it again there, or remove its three files and it is "
                    "counted as missing"
                )
            log.warning("pool shard %s: %s (within integrity.max_shard_missing)", files[0], check.damage())
        record_shard(link, {"bytes": check.size, "sha256": check.sha256})
    if pool_shards is not None and shard_ids and shard_ids[-1] == pool_shards - 1:
        beyond = source / f"{shard_name(pool_shards)}.tar"
        if beyond.exists():
            found = sorted(source.glob("*_stats.json"))
            raise ValueError(
                f"{source} holds shards beyond the pool's n_shards {pool_shards} (e.g. {beyond.name}; its last "
                f"is {found[-1].name.split('_')[0] if found else '?'}): set the pool's n_shards to the number of "
                "shards there"
            )
    report = download_report(chunk_dir, list(shard_ids))
    report.update(source=str(source), missing_shards=missing, damaged_shards=damaged, unread=unread, in_place=True)
    return report


def _failed_rows(chunk_dir: Path, shard_ids, layout: dict | None) -> pa.Table | None:
    """The rows the chunk's linked shards list as failed, as img2dataset input (``uid, url, text``
    and, from the metadata where it has them, ``face_bboxes`` and ``sha256``), in shard order."""
    from curate.data.metadata import read_rows, shard_rows

    columns = {"uid": [], "url": [], "text": []}
    extra = [c for c in ("face_bboxes", "sha256") if layout is not None and c in layout["columns"]]
    extras = {c: [] for c in extra}
    types = {}
    for shard_id in shard_ids:
        tar = chunk_dir / f"{shard_name(shard_id)}.tar"
        if not tar.is_symlink():
            continue
        parquet = shard_files(tar)[1]
        with reading(parquet, "shard parquet (img2dataset's per-shard metadata)"):
            shard = pq.read_table(parquet, columns=["uid", "url", "caption", "status"]).to_pydict()
        meta = None
        if extra:
            parts = [
                read_rows(layout["files"][f]["parquet"], ["uid", *extra], a, b)
                for f, a, b in shard_rows(layout, shard_id)
            ]
            table = pa.concat_tables(parts)
            types.update({c: table.schema.field(c).type for c in extra})
            meta = dict(zip(table.column("uid").to_pylist(), zip(*(table.column(c).to_pylist() for c in extra))))
        for uid, url, caption, status in zip(shard["uid"], shard["url"], shard["caption"], shard["status"]):
            if status == "success" or not url:
                continue
            columns["uid"].append(uid)
            columns["url"].append(url)
            columns["text"].append(caption)
            row = meta.get(uid) if meta is not None else None
            for i, c in enumerate(extra):
                extras[c].append(row[i] if row is not None else None)
    if not columns["url"]:
        return None
    arrays = {c: pa.array(v, pa.string()) for c, v in columns.items()}
    arrays.update({c: pa.array(v, types.get(c)) for c, v in extras.items()})
    return pa.table(arrays)


def retry_in_place(
    chunk_dir, shard_ids, first_shard: int, samples_per_shard: int, layout: dict | None = None, **settings
) -> dict:
    """Download the failed rows of a chunk's linked shards once more into new shards
    ``first_shard ..`` in ``chunk_dir`` (module doc); ``settings``: `curate.data.download.download_chunk`'s
    (processes, threads, retries, timeout). Returns ``{"attempted", "shards", "recovered", "download"}``."""
    chunk_dir = Path(chunk_dir)
    failed = _failed_rows(chunk_dir, shard_ids, layout)
    if failed is None:
        return {"attempted": 0, "shards": [], "recovered": 0, "download": None}
    retry_input = chunk_dir / RETRY_INPUT
    pq.write_table(failed, retry_input)  # the same rows each time: a rerun resumes shard by shard
    n_shards = math.ceil(failed.num_rows / samples_per_shard)
    log.info(
        "retrying %d failed rows of %s into shards %d..%d",
        failed.num_rows,
        chunk_dir,
        first_shard,
        first_shard + n_shards - 1,
    )
    result = download_chunk(
        retry_input,
        chunk_dir,
        first_shard_id=first_shard,
        n_shards=n_shards,
        samples_per_shard=samples_per_shard,
        **settings,
    )
    ids = list(range(first_shard, first_shard + n_shards))
    report = download_report(chunk_dir, ids)
    return {
        "attempted": failed.num_rows,
        "shards": [shard_name(i) for i in ids],
        "recovered": report["successes"],
        "downloaded": [shard_name(i) for i in result["downloaded"]],
        "skipped": [shard_name(i) for i in result["skipped"]],
        "download": report,
    }
