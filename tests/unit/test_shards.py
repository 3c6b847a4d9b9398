"""Pool shards in img2dataset's layout, the checked reader, and plain webdataset shards."""

from __future__ import annotations

import ast
import hashlib
import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from curate.data.shards import (
    KEY_DIGITS,
    OOM_SHARD_COUNT,
    SKIP_REASONS,
    PoolSample,
    ShardWriter,
    SkipReport,
    compute_key,
    iter_pool_samples,
    key_digits,
    shard_paths,
    write_webdataset_shards,
)

IMG2DATASET = Path(__import__("importlib.util").util.find_spec("img2dataset").origin).parent


def _img2dataset_compute_key():
    """img2dataset's own compute_key, taken from its source without importing the package
    (importing it pulls in wandb and albumentations)."""
    tree = ast.parse((IMG2DATASET / "downloader.py").read_text())
    fn = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "compute_key")
    ns: dict = {}
    exec(compile(ast.Module(body=[fn], type_ignores=[]), "downloader.py", "exec"), ns)
    return ns["compute_key"]


def _jpg(colour=(200, 30, 30), size=(20, 12)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def _uid(i: int) -> str:
    return hashlib.md5(str(i).encode()).hexdigest()


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# -------------------------------------------------------------------------------------------
# keys
# -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("sps", [1, 7, 10, 500, 1000, 9999, 10000])
def test_compute_key_mirrors_img2dataset(sps):
    reference = _img2dataset_compute_key()
    oom = int(np.ceil(np.log10(sps)))
    for shard_id in (0, 3, 1234):
        for index in sorted({0, min(1, sps - 1), sps // 2, sps - 1}):
            assert compute_key(shard_id, index, sps) == reference(index, shard_id, oom, OOM_SHARD_COUNT)


def test_key_format_datacomp():
    # DataComp: 10000 samples per shard, 8-digit shard names -> 12-digit keys
    assert KEY_DIGITS == 12 == key_digits(10000)
    assert compute_key(0, 0, 10000) == "000000000000"
    assert compute_key(12, 345, 10000) == "000000120345"
    assert compute_key(12, 345, 10000) == f"{12:08d}{345:04d}"
    assert compute_key(3, 7, 500) == "00000003007" and key_digits(500) == 11
    with pytest.raises(ValueError):
        compute_key(0, 500, 500)


# -------------------------------------------------------------------------------------------
# ShardWriter
# -------------------------------------------------------------------------------------------


def test_shard_writer_layout_and_agreement(tmp_path):
    jpgs = [_jpg((10 * i, 50, 90), (16 + i, 10 + 2 * i)) for i in range(4)]
    with ShardWriter(tmp_path, shard_id=7, samples_per_shard=10) as w:
        keys = [w.write(jpgs[i], f"caption {i}", {"uid": _uid(i), "url": f"http://x/{i}.jpg"}) for i in range(4)]
        failed = w.write(None, "lost", {"uid": _uid(99), "url": "http://x/lost.jpg"})
    assert keys == [f"{7:08d}{i}" for i in range(4)] and failed == f"{7:08d}4"
    assert all(len(k) == key_digits(10) == 9 for k in keys)

    assert sorted(p.name for p in tmp_path.iterdir()) == ["00000007.parquet", "00000007.tar", "00000007_stats.json"]
    stats = json.loads((tmp_path / "00000007_stats.json").read_text())
    assert stats["count"] == 5 and stats["successes"] == 4 and stats["failed_to_download"] == 1
    assert stats["failed_to_resize"] == 0
    assert stats["status_dict"] == {"success": 4, "no image": 1}
    for name in ("duration", "start_time", "end_time"):
        assert name in stats

    table = pq.read_table(tmp_path / "00000007.parquet").to_pylist()
    assert [r["key"] for r in table] == keys + [failed]
    assert [r["uid"] for r in table] == [_uid(i) for i in range(4)] + [_uid(99)]
    assert [r["status"] for r in table] == ["success"] * 4 + ["failed_to_download"]
    for i, row in enumerate(table[:4]):
        assert row["caption"] == row["text"] == f"caption {i}"
        assert (row["original_width"], row["original_height"]) == (16 + i, 10 + 2 * i)
        assert (row["width"], row["height"]) == (16 + i, 10 + 2 * i)
        assert row["sha256"] == hashlib.sha256(jpgs[i]).hexdigest()
        assert row["exif"] is None and row["error_message"] is None
    assert table[4]["sha256"] is None and table[4]["error_message"] == "no image"

    with tarfile.open(tmp_path / "00000007.tar") as tar:
        names = tar.getnames()
        # a failed sample has a parquet row but no tar members, as in img2dataset
        assert names == [f"{k}.{e}" for k in keys for e in ("jpg", "json", "txt")]
        meta = json.loads(tar.extractfile(f"{keys[2]}.json").read())
        assert tar.extractfile(f"{keys[2]}.jpg").read() == jpgs[2]
        assert tar.extractfile(f"{keys[2]}.txt").read() == b"caption 2"
    for field in (
        "uid",
        "url",
        "caption",
        "key",
        "status",
        "original_width",
        "original_height",
        "width",
        "height",
        "error_message",
        "exif",
        "sha256",
    ):
        assert field in meta
    assert meta["uid"] == _uid(2) and meta["key"] == keys[2] and meta["status"] == "success"


def test_shard_writer_full_and_missing_uid(tmp_path):
    w = ShardWriter(tmp_path, 0, samples_per_shard=2)
    w.write(_jpg(), "a", {"url": "u0", "original_width": 5, "original_height": 6})  # no uid
    w.write(_jpg(), "b", {"uid": _uid(1), "url": "u1"})
    with pytest.raises(ValueError, match="full"):
        w.write(_jpg(), "c", {"uid": _uid(2)})
    stats = w.close()
    assert stats["count"] == 2
    rows = pq.read_table(tmp_path / "00000000.parquet").to_pylist()
    assert rows[0]["uid"] is None and rows[0]["original_width"] == 5
    with tarfile.open(tmp_path / "00000000.tar") as tar:
        assert "uid" not in json.loads(tar.extractfile("000000000.json").read())


def test_shard_writer_deterministic_with_fixed_time(tmp_path):
    digests = []
    for run in ("a", "b"):
        with ShardWriter(tmp_path / run, 1, 4, fixed_time=0.0) as w:
            for i in range(3):
                w.write(_jpg((i, 2, 3)), f"t{i}", {"uid": _uid(i), "url": "u"})
        digests.append([_sha(p) for p in sorted((tmp_path / run).iterdir())])
    assert digests[0] == digests[1]


# -------------------------------------------------------------------------------------------
# the reader
# -------------------------------------------------------------------------------------------


def _raw_tar(path: Path, samples: list[tuple[str, dict[str, bytes]]]) -> None:
    """A hand-made shard: the tar, and the record every pool shard is read against (a parquet
    row of status success per sample, a _stats.json counting them)."""
    with tarfile.open(path, "w") as tar:
        for key, members in samples:
            for ext, data in members.items():
                info = tarfile.TarInfo(f"{key}.{ext}")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    keys = [key for key, _ in samples]
    pq.write_table(pa.table({"key": keys, "status": ["success"] * len(keys)}), path.with_suffix(".parquet"))
    path.with_name(f"{path.stem}_stats.json").write_text(json.dumps({"count": len(keys), "successes": len(keys)}))


def _bad_pool(tmp_path: Path) -> tuple[list[Path], list[str]]:
    good = _jpg()
    truncated = good[: len(good) // 2]
    garbage = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 3
    d = tmp_path / "pool"
    with ShardWriter(d, 0, 100) as w:
        w.write(good, "good zero", {"uid": _uid(0), "url": "u"})  # kept
        w.write(truncated, "truncated", {"uid": _uid(1), "url": "u"})  # corrupt_image
        w.write(good, "   \n", {"uid": _uid(2), "url": "u"})  # empty_caption
        w.write(good, "no uid", {"url": "u"})  # missing_uid
        w.write(good, "bad uid", {"uid": "XYZ", "url": "u"})  # missing_uid
        w.write(good, "good three", {"uid": _uid(3), "url": "u"})  # kept
        w.write(garbage, "garbage", {"uid": _uid(4), "url": "u"})  # corrupt_image
        w.write(good, "dup of zero", {"uid": _uid(0), "url": "u"})  # duplicate_uid
        w.write(good, "", {"uid": _uid(5), "url": "u"})  # empty_caption
    # a second shard: a sample without image, a duplicate across shards, a good one
    meta = lambda i: json.dumps({"uid": _uid(i)}).encode()  # noqa: E731
    _raw_tar(
        d / "00000001.tar",
        [
            ("000000100", {"json": meta(6), "txt": b"no image here"}),  # missing_image
            ("000000101", {"jpg": good, "json": meta(3), "txt": b"again"}),  # duplicate_uid
            ("000000102", {"jpg": good, "json": meta(7), "txt": b"good seven"}),  # kept
        ],
    )
    return shard_paths(d), [_uid(0), _uid(3), _uid(7)]


def test_reader_skips_and_counts_bad_samples(tmp_path):
    paths, kept_uids = _bad_pool(tmp_path)
    assert [p.name for p in paths] == ["00000000.tar", "00000001.tar"]
    report = SkipReport()
    samples = list(iter_pool_samples(paths, report))
    assert [s.uid for s in samples] == kept_uids
    assert [s.text for s in samples] == ["good zero", "good three", "good seven"]
    assert all(isinstance(s, PoolSample) and s.image.size == (20, 12) for s in samples)
    assert samples[0].key == compute_key(0, 0, 100) == "0000000000" and samples[0].meta["url"] == "u"
    assert samples[0].jpg == _jpg()
    expected = {"corrupt_image": 2, "empty_caption": 2, "missing_uid": 2, "missing_image": 1, "duplicate_uid": 2}
    assert {r: report.count(r) for r in SKIP_REASONS} == expected
    assert report.total_seen == 12 and report.total_kept == 3 and report.total_skipped == 9
    d = json.loads(json.dumps(report.as_dict()))
    assert d["seen"] == 12 and d["kept"] == 3 and d["skipped"] == expected
    assert d["examples"][0] == {"shard": "00000000.tar", "key": "0000000001", "reason": "corrupt_image"}


def test_reader_without_decoding_keeps_corrupt_images(tmp_path):
    paths, _ = _bad_pool(tmp_path)
    report = SkipReport()
    samples = list(iter_pool_samples(paths, report, decode_images=False))
    assert report.count("corrupt_image") == 0
    assert len(samples) == 5 and all(s.image is None for s in samples)


def test_reader_missing_tar_names_file(tmp_path):
    paths, _ = _bad_pool(tmp_path)
    missing = tmp_path / "pool" / "00000009.tar"
    with pytest.raises(FileNotFoundError, match="00000009.tar"):
        next(iter_pool_samples([*paths, missing], SkipReport()))
    with pytest.raises(FileNotFoundError, match="nowhere"):
        shard_paths(tmp_path / "nowhere")


def test_skip_report_rejects_unknown_reason_and_merges():
    a, b = SkipReport(), SkipReport()
    with pytest.raises(ValueError):
        a.add("sunspots", "s", "k")
    a.add("empty_caption", "s0", "k0")
    b.add("empty_caption", "s1", "k1")
    b.add("missing_uid", "s1", "k2")
    b.total_seen, b.total_kept = 5, 3
    a.merge(b)
    assert a.count("empty_caption") == 2 and a.count("missing_uid") == 1 and a.total_seen == 5


# -------------------------------------------------------------------------------------------
# plain webdataset shards
# -------------------------------------------------------------------------------------------


def test_write_webdataset_shards(tmp_path):
    import webdataset as wds

    samples = [(f"s{i:04d}", _jpg((i * 30, 0, 0)), f"text {i}") for i in range(7)]
    paths = write_webdataset_shards(samples, tmp_path / "a", "train", 3)
    assert [p.name for p in paths] == ["train-000000.tar", "train-000001.tar", "train-000002.tar"]
    again = write_webdataset_shards(iter(samples), tmp_path / "b", "train", 3)
    assert [_sha(p) for p in paths] == [_sha(p) for p in again]

    got = list(wds.WebDataset([str(p) for p in paths], shardshuffle=False).decode("pil"))
    assert [g["__key__"] for g in got] == [s[0] for s in samples]
    assert [g["txt"] for g in got] == [s[2] for s in samples]
    assert got[4]["jpg"].size == (20, 12)

    assert write_webdataset_shards([], tmp_path / "c", "x", 3) == []
    with pytest.raises(ValueError):
        write_webdataset_shards([("a.b", b"", "t")], tmp_path / "d", "x", 3)


def test_pool_batches_are_consecutive_and_count_bad_samples(tmp_path):
    from curate.data.shards import SkipReport, iter_pool_batches
    from tests.unit.pool_fixtures import uid, write_pool

    paths = write_pool(tmp_path, samples_per_shard=4, n_samples=10, corrupt=(2,))
    report = SkipReport()
    batches = list(iter_pool_batches(paths, report, batch_size=4))
    assert [[s.uid for s in b] for b in batches] == [
        [uid(i) for i in (0, 1, 3, 4)],
        [uid(i) for i in (5, 6, 7, 8)],
        [uid(9)],
    ]
    assert report.as_dict()["skipped"]["corrupt_image"] == 1
    with pytest.raises(ValueError, match="batch_size"):
        next(iter_pool_batches(paths, SkipReport(), batch_size=0))
