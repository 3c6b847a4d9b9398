"""Tests of curate.data.subset (docs/algorithms.md §0)."""

import numpy as np
import pytest

from curate.data.subset import (
    SUBSET_DTYPE,
    is_sorted,
    load_subset,
    lookup_counts,
    save_subset,
    subset_counts,
    u8u8_to_uids,
    uids_to_u8u8,
)


def test_dtype_is_u8u8():
    assert SUBSET_DTYPE == np.dtype("u8,u8")
    assert SUBSET_DTYPE.names == ("f0", "f1")


def test_hand_computed_fields():
    # f0 = int("0000000000000001", 16) = 1; f1 = int("00000000000000ff", 16) = 255
    # second uid: f0 = 0xffffffffffffffff = 2**64 - 1; f1 = 0x0123456789abcdef
    uids = ["000000000000000100000000000000ff", "ffffffffffffffff0123456789ABCDEF"]
    arr = uids_to_u8u8(uids)
    assert arr.dtype == SUBSET_DTYPE
    assert arr["f0"].tolist() == [1, 2**64 - 1]
    assert arr["f1"].tolist() == [255, 0x0123456789ABCDEF]
    for u, (a, b) in zip(uids, arr.tolist()):
        assert a == int(u[:16], 16) and b == int(u[16:32], 16)
    # inverse is lowercase and zero padded
    assert u8u8_to_uids(arr) == [u.lower() for u in uids]


def test_random_round_trip():
    rng = np.random.default_rng(0)
    uids = ["".join(rng.choice(list("0123456789abcdef"), 32)) for _ in range(200)]
    assert u8u8_to_uids(uids_to_u8u8(uids)) == uids
    assert u8u8_to_uids(uids_to_u8u8(np.array(uids))) == uids


@pytest.mark.parametrize(
    "bad",
    [
        "abc",
        "0" * 31,
        "0" * 33,
        "g" + "0" * 31,
        "0x" + "0" * 30,
        " " + "0" * 31,
        "+" + "0" * 31,
        "_" + "0" * 31,
        "é" + "0" * 31,
    ],
)
def test_invalid_uid_raises_naming_it(bad):
    good = "0" * 32
    with pytest.raises(ValueError) as exc:
        uids_to_u8u8([good, bad, good])
    assert repr(bad) in str(exc.value)


def test_non_string_uid_raises():
    with pytest.raises(ValueError):
        uids_to_u8u8([123])


def test_empty():
    assert uids_to_u8u8([]).shape == (0,)
    assert u8u8_to_uids(np.zeros(0, SUBSET_DTYPE)) == []


def test_save_sorts_keeps_duplicates_and_round_trips(tmp_path):
    uids = [
        "ffffffffffffffff0000000000000000",
        "00000000000000010000000000000002",
        "00000000000000010000000000000001",
        "ffffffffffffffff0000000000000000",  # duplicate: means "repeat this sample"
        "0000000000000000ffffffffffffffff",
    ]
    path = tmp_path / "sub" / "subset.npy"
    written = save_subset(path, uids_to_u8u8(uids))
    loaded = load_subset(path, require_sorted=True)
    assert loaded.dtype == SUBSET_DTYPE
    assert np.array_equal(loaded, written)
    assert u8u8_to_uids(loaded) == sorted(uids)  # hex string order == numeric order
    assert len(loaded) == 5
    assert is_sorted(loaded)
    assert not list(path.parent.glob("*.tmp"))


def test_save_writes_exact_path_without_npy_suffix(tmp_path):
    path = tmp_path / "subset.bin"
    save_subset(path, ["0" * 32])
    assert path.exists() and not (tmp_path / "subset.bin.npy").exists()
    assert u8u8_to_uids(load_subset(path)) == ["0" * 32]


def test_save_rejects_wrong_dtype(tmp_path):
    with pytest.raises(ValueError, match="dtype"):
        save_subset(tmp_path / "x.npy", np.zeros(3, dtype=np.uint64))


def test_load_rejects_wrong_dtype_naming_file(tmp_path):
    path = tmp_path / "bad.npy"
    np.save(path, np.zeros(3, dtype="u4,u4"))
    with pytest.raises(ValueError, match="bad.npy"):
        load_subset(path)
    path2 = tmp_path / "unsorted.npy"
    np.save(path2, uids_to_u8u8(["1" * 32, "0" * 32]))
    load_subset(path2)  # unsorted allowed by default
    with pytest.raises(ValueError, match="unsorted.npy"):
        load_subset(path2, require_sorted=True)


def test_is_sorted_lexicographic():
    a = np.array([(1, 5), (2, 0), (2, 0), (2, 3)], dtype=SUBSET_DTYPE)
    assert is_sorted(a)
    assert not is_sorted(a[::-1])
    assert not is_sorted(np.array([(1, 5), (1, 4)], dtype=SUBSET_DTYPE))


def test_subset_counts_and_lookup():
    a = np.array([(2, 0), (1, 5), (2, 0), (2, 3), (2, 0)], dtype=SUBSET_DTYPE)
    unique, counts = subset_counts(a)
    # sorted distinct: (1,5) x1, (2,0) x3, (2,3) x1
    assert unique.tolist() == [(1, 5), (2, 0), (2, 3)]
    assert counts.tolist() == [1, 3, 1]
    q = np.array([(2, 0), (9, 9), (1, 5), (0, 0), (2, 3), (2, 1)], dtype=SUBSET_DTYPE)
    assert lookup_counts(unique, counts, q).tolist() == [3, 0, 1, 0, 1, 0]
    u, c = subset_counts(np.zeros(0, SUBSET_DTYPE))
    assert u.shape == (0,) and c.shape == (0,)
    d = dict(zip(u8u8_to_uids(unique), counts.tolist()))
    assert d[f"{2:016x}{0:016x}"] == 3
