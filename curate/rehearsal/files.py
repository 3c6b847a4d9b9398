"""Byte-stable writers for the rehearsal's files: the same arrays give the same bytes.

numpy's ``savez`` stamps each member with the current time and tarfile with the file's mtime;
the rehearsal's files are the published sources' stand-ins, so rebuilding them must not change
their hashes (a changed hash is a new Hub commit and a refetch).
"""

from __future__ import annotations

import io
import json
import os
import tarfile
import zipfile
from pathlib import Path

import numpy as np

#: the earliest time a zip entry can hold
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)


def write_npz(path, arrays: dict[str, np.ndarray]) -> None:
    """An uncompressed ``.npz`` (as ``np.savez`` writes it) with fixed member times."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as zf:
        for name, array in arrays.items():
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.asarray(array), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=_ZIP_TIME)
            info.external_attr = 0o644 << 16
            zf.writestr(info, buf.getvalue())
    os.replace(tmp, path)


def write_tar(path, samples) -> int:
    """A webdataset tar of ``(key, {ext: bytes})`` samples, members in key then extension
    order, mtime 0; returns the number of samples."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    n = 0
    with open(tmp, "wb") as fd, tarfile.open(fileobj=fd, mode="w|", format=tarfile.USTAR_FORMAT) as tar:
        for key, members in samples:
            for ext in sorted(members):
                data = members[ext]
                info = tarfile.TarInfo(f"{key}.{ext}")
                info.size = len(data)
                info.mtime = 0
                info.mode = 0o444
                tar.addfile(info, io.BytesIO(data))
            n += 1
    os.replace(tmp, path)
    return n


def write_text(path, text: str) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def write_json(path, obj) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


def npy_bytes(array) -> bytes:
    """One array as the bytes of a ``.npy`` file (a webdataset member)."""
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.asarray(array), allow_pickle=False)
    return buf.getvalue()
