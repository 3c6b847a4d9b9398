"""Published subsets: uids another group released (DFN, HYPE, s-CLIPLoss, leaderboard entries),
fetched once and checked, so that a paper row of theirs trains and evaluates here.

The config's ``published_uids`` section names each one: ``{name: {url | path, sha256, format}}``
(``format`` defaults to the file's suffix: DataComp's ``.npy``, a parquet, CSV or text of hex
uids; `curate.data.subset.read_uids_file`). The ``fetch_published_uids`` rule downloads a ``url``
through the config's ``url_mirrors`` (or reads a local ``path``), checks the bytes against
``sha256`` (a mismatch stops the job, naming both digests; without one the digest found is
recorded and a warning says nothing was checked), reads the uids and writes them as a DataComp
``.npy`` in file order with every repeat, and a record beside it (``<name>.json``: source, sha256,
rows, unique uids, repeats, sorted). A selection ``{method: uids_file, published: <name>}`` (or
``{<pool>: <name>}`` per pool) reads that file.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
import urllib.request
from pathlib import Path

import numpy as np

from curate.data.integrity import write_json, writing
from curate.data.mirrors import mirrored
from curate.data.subset import UIDS_FILE_FORMATS, read_uids_file

log = logging.getLogger(__name__)

__all__ = ["published_source", "fetch_published_uids"]


def published_source(entry: dict) -> str:
    """Where a ``published_uids`` entry's file comes from: its ``url`` or its local ``path``."""
    return str(entry.get("url") or entry.get("path"))


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        while block := stream.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def _format(entry: dict, source: str) -> str:
    if entry.get("format"):
        return entry["format"]
    suffix = Path(source.split("?", 1)[0]).suffix.lower()
    return UIDS_FILE_FORMATS.get(suffix, "text")


def fetch_published_uids(name: str, entry: dict, out_path, record_path, mirrors=None, timeout: float = 60) -> dict:
    """Fetch, check and convert one ``published_uids`` entry (module doc); returns its record."""
    source = published_source(entry)
    out_path, record_path = Path(out_path), Path(record_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{name}-", dir=out_path.parent) as tmp:
        if entry.get("url"):
            local = Path(tmp) / "download"
            url = mirrored(source, mirrors)
            log.info("published_uids.%s: downloading %s%s", name, url, f" (for {source})" if url != source else "")
            with urllib.request.urlopen(url, timeout=timeout) as response, open(local, "wb") as stream:
                shutil.copyfileobj(response, stream, length=1 << 20)
        else:
            local = Path(source)
            if not local.is_file():
                raise FileNotFoundError(f"published_uids.{name}.path: {local} is not a file")
        found = _sha256(local)
        expected = entry.get("sha256")
        if expected is not None and found != str(expected).lower():
            raise ValueError(
                f"published_uids.{name}: the sha256 of {source} is {found}, the config says {expected}: "
                "not the file the config names (a changed release, a wrong url, a cut download)"
            )
        if expected is None:
            log.warning("published_uids.%s: no sha256 in the config, nothing checked (found %s)", name, found)
        uids, info = read_uids_file(local, _format(entry, source))
    tmp_out = out_path.with_name(f".{out_path.name}.tmp")
    with writing(out_path, "published uids (.npy, u8,u8)"):
        with open(tmp_out, "wb") as stream:
            np.save(stream, uids, allow_pickle=False)
        os.replace(tmp_out, out_path)
    record = {"name": name, "source": source, "sha256": found, "sha256_checked": expected is not None, **info}
    write_json(record_path, record, "published uids record")
    log.info(
        "published_uids.%s: %d uids (%d unique, %d repeats), %s",
        name,
        info["rows"],
        info["unique"],
        info["repeats"],
        "sorted" if info["sorted"] else "not sorted",
    )
    return record
