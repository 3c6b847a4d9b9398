"""DataComp subset files: uids as ``np.dtype("u8,u8")`` arrays (docs/algorithms.md §0).

A uid is 32 hex characters (128 bit). A subset file is a ``.npy`` array of
``SUBSET_DTYPE`` with ``f0 = int(uid[:16], 16)`` and ``f1 = int(uid[16:32], 16)``,
sorted lexicographically by ``(f0, f1)`` (which is the numeric order of the 128-bit
uid). Duplicates are legal and mean "repeat this sample" (used by SCS/HCS, §7), so
nothing here ever de-duplicates silently.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from curate.data.integrity import reading, writing

__all__ = [
    "SUBSET_DTYPE",
    "uids_to_u8u8",
    "u8u8_to_uids",
    "sort_subset",
    "is_sorted",
    "save_subset",
    "load_subset",
    "subset_counts",
    "lookup_counts",
]

SUBSET_DTYPE = np.dtype("u8,u8")

# Byte value -> nibble value; 255 marks a byte that is not a hex digit.
_HEX_LUT = np.full(256, 255, dtype=np.uint8)
for _i, _c in enumerate(b"0123456789abcdef"):
    _HEX_LUT[_c] = _i
for _i, _c in enumerate(b"ABCDEF"):
    _HEX_LUT[_c] = 10 + _i
del _i, _c

_SHIFTS = np.arange(15, -1, -1, dtype=np.uint64) * np.uint64(4)


def _bad_uid_error(uid: object, reason: str) -> ValueError:
    return ValueError(f"invalid uid {uid!r}: {reason} (expected 32 hex characters)")


def uids_to_u8u8(hex_uids: Iterable[str]) -> np.ndarray:
    """Convert 32-hex-character uids to a ``SUBSET_DTYPE`` array (§0), order preserved.

    ``f0 = int(uid[:16], 16)``, ``f1 = int(uid[16:32], 16)``. Upper- and lower-case hex
    digits are accepted. Validation is strict: exactly 32 characters, each in
    ``[0-9a-fA-F]`` (``int(x, 16)`` alone would accept ``"0x"``, ``"_"``, ``"+"`` or
    surrounding whitespace). Raises ``ValueError`` naming the first bad uid.
    The result is NOT sorted; use :func:`save_subset` (which sorts) to write a file.
    """
    if isinstance(hex_uids, np.ndarray) and hex_uids.dtype.kind in "US":
        arr = hex_uids.ravel()
    else:
        items = list(hex_uids)
        for k, u in enumerate(items):
            if isinstance(u, bytes):
                items[k] = u.decode("ascii", "replace")
            elif not isinstance(u, str):
                raise _bad_uid_error(u, "not a string")
        arr = np.asarray(items, dtype=str) if items else np.zeros(0, dtype="U32")
    n = arr.shape[0]
    if n == 0:
        return np.zeros(0, dtype=SUBSET_DTYPE)
    if arr.dtype.kind == "U":
        lengths = np.char.str_len(arr)
        bad = np.flatnonzero(lengths != 32)
        if bad.size:
            raise _bad_uid_error(arr[bad[0]], f"length {lengths[bad[0]]}")
        try:
            raw = arr.astype("S32")
        except UnicodeEncodeError:
            for u in arr:
                if not str(u).isascii():
                    raise _bad_uid_error(str(u), "non-ASCII character") from None
            raise
    else:  # bytes
        lengths = np.char.str_len(arr)
        bad = np.flatnonzero(lengths != 32)
        if bad.size:
            raise _bad_uid_error(arr[bad[0]], f"length {lengths[bad[0]]}")
        raw = arr.astype("S32")
    codes = np.frombuffer(raw.tobytes(), dtype=np.uint8).reshape(n, 32)
    nib = _HEX_LUT[codes]
    bad_rows = np.flatnonzero((nib == 255).any(axis=1))
    if bad_rows.size:
        u = arr[bad_rows[0]]
        u = u.decode("ascii", "replace") if isinstance(u, bytes) else str(u)
        raise _bad_uid_error(u, "non-hex character")
    nib64 = nib.astype(np.uint64)
    out = np.empty(n, dtype=SUBSET_DTYPE)
    out["f0"] = np.bitwise_or.reduce(nib64[:, :16] << _SHIFTS, axis=1)
    out["f1"] = np.bitwise_or.reduce(nib64[:, 16:] << _SHIFTS, axis=1)
    return out


def u8u8_to_uids(arr: np.ndarray) -> list[str]:
    """Inverse of :func:`uids_to_u8u8`: lowercase, zero-padded 32-character hex uids."""
    arr = _check_dtype(np.asarray(arr), "array")
    return [f"{a:016x}{b:016x}" for a, b in zip(arr["f0"].tolist(), arr["f1"].tolist())]


def _check_dtype(arr: np.ndarray, what: str) -> np.ndarray:
    if arr.dtype != SUBSET_DTYPE:
        raise ValueError(
            f"{what}: subset dtype must be {SUBSET_DTYPE.descr} (np.dtype('u8,u8')), "
            f"got {arr.dtype.descr if arr.dtype.names else arr.dtype}"
        )
    if arr.ndim != 1:
        raise ValueError(f"{what}: subset must be 1-D, got shape {arr.shape}")
    return arr


def sort_subset(arr: np.ndarray) -> np.ndarray:
    """Return ``arr`` sorted lexicographically by ``(f0, f1)``; duplicates kept (§0)."""
    arr = _check_dtype(np.asarray(arr), "array")
    order = np.lexsort((arr["f1"], arr["f0"]))
    return arr[order]


def is_sorted(arr: np.ndarray) -> bool:
    """True when ``arr`` is in non-decreasing ``(f0, f1)`` order (duplicates allowed)."""
    arr = _check_dtype(np.asarray(arr), "array")
    if arr.shape[0] < 2:
        return True
    f0, f1 = arr["f0"], arr["f1"]
    lt = f0[1:] > f0[:-1]
    eq = f0[1:] == f0[:-1]
    return bool(np.all(lt | (eq & (f1[1:] >= f1[:-1]))))


def save_subset(path: str | os.PathLike, uids: np.ndarray | Sequence[str]) -> np.ndarray:
    """Write a DataComp subset file (§0) and return the array written.

    ``uids`` is a ``SUBSET_DTYPE`` array (a sequence of hex uid strings is converted with
    :func:`uids_to_u8u8`). The array is sorted lexicographically by ``(f0, f1)``;
    duplicates are kept (they mean "repeat this sample"). The file is written to exactly
    ``path`` (``np.save`` would append ``.npy`` to a bare name) through a temporary file
    in the same directory and an atomic rename, so a crash never leaves a partial file.
    """
    if isinstance(uids, np.ndarray) and uids.dtype.names is not None:
        arr = _check_dtype(uids, str(path))
    elif isinstance(uids, np.ndarray) and uids.dtype.kind not in "US":
        arr = _check_dtype(uids, str(path))  # raises with a clear message
    else:
        arr = uids_to_u8u8(uids)
    arr = sort_subset(arr)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with writing(path, "subset (.npy, u8,u8)"), os.fdopen(fd, "wb") as fh:
            np.save(fh, arr, allow_pickle=False)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return arr


def load_subset(path: str | os.PathLike, require_sorted: bool = False) -> np.ndarray:
    """Load a subset file, checking that it holds a 1-D ``np.dtype("u8,u8")`` array.

    Raises ``ValueError`` naming the file when the dtype or shape is wrong, or (with
    ``require_sorted=True``) when the uids are not in lexicographic order.
    """
    if not Path(path).is_file():
        raise FileNotFoundError(f"subset file not found: {path}")
    with reading(path, "subset .npy (a 1-D u8,u8 array)"):  # truncated, an object array, not an npy
        arr = np.load(path, allow_pickle=False)
    if not isinstance(arr, np.ndarray):
        raise ValueError(f"{path}: not a .npy subset array (got {type(arr).__name__})")
    _check_dtype(arr, str(path))
    if require_sorted and not is_sorted(arr):
        raise ValueError(f"{path}: subset uids are not sorted lexicographically")
    return arr


def subset_counts(subset: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Repeat count of each distinct uid in a subset (for resharding, §0).

    Returns ``(unique, counts)``: ``unique`` is the sorted ``SUBSET_DTYPE`` array of
    distinct uids and ``counts[i]`` (int64) how often ``unique[i]`` occurs. A pool sample
    whose uid has count ``c`` is written ``c`` times. Use :func:`lookup_counts` to get the
    count of arbitrary (pool) uids, or ``dict(zip(u8u8_to_uids(unique), counts.tolist()))``
    for a small uid -> count dict.
    """
    arr = _check_dtype(np.asarray(subset), "subset")
    if not is_sorted(arr):
        arr = sort_subset(arr)
    n = arr.shape[0]
    if n == 0:
        return arr.copy(), np.zeros(0, dtype=np.int64)
    f0, f1 = arr["f0"], arr["f1"]
    new = np.empty(n, dtype=bool)
    new[0] = True
    new[1:] = (f0[1:] != f0[:-1]) | (f1[1:] != f1[:-1])
    starts = np.flatnonzero(new)
    counts = np.diff(np.append(starts, n)).astype(np.int64)
    return arr[starts], counts


def lookup_counts(unique: np.ndarray, counts: np.ndarray, query: np.ndarray) -> np.ndarray:
    """Count of each ``query`` uid in a subset given ``subset_counts``' output; 0 if absent."""
    unique = _check_dtype(np.asarray(unique), "unique")
    query = _check_dtype(np.asarray(query), "query")
    counts = np.asarray(counts, dtype=np.int64)
    out = np.zeros(query.shape[0], dtype=np.int64)
    if unique.shape[0] == 0 or query.shape[0] == 0:
        return out
    pos = np.searchsorted(unique, query)
    inside = pos < unique.shape[0]
    p = pos[inside]
    hit = (unique["f0"][p] == query["f0"][inside]) & (unique["f1"][p] == query["f1"][inside])
    idx = np.flatnonzero(inside)[hit]
    out[idx] = counts[p[hit]]
    return out
