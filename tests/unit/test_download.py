"""Downloading a pool chunk with img2dataset from a real HTTP server on loopback.

One module-scoped download (img2dataset spawns its worker and logger processes, which take
seconds to start) is shared by the read-only tests; the retry test works on a copy of it.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from curate.data import download as dl  # noqa: E402
from curate.data.shards import SkipReport, compute_key, iter_pool_samples, shard_paths  # noqa: E402

SPS = 20  # samples per shard
FIRST = 6  # the chunk's first global shard id
N_SHARDS = 2
SHARDS_PER_CHUNK = 2
N_POOL_ROWS = 8 * SPS  # 4 chunks; the test downloads chunk 3 = shards 6 and 7
SERVER_LIFETIME_S = 300  # the server stops by itself after this, whatever happens


# -------------------------------------------------------------------------------------------
# what the server serves, by row of the chunk (0..39)
# -------------------------------------------------------------------------------------------

NOT_FOUND = {3, 11, 25, 33}
CORRUPT = {5, 30}
FLAKY = {17}  # 503 on the first two requests, then the image
WRONG_HASH = {20}  # served fine, but the metadata's sha256 is wrong
BLUR = {8}  # a checkerboard with a face box over its centre
FAILED = NOT_FOUND | CORRUPT | FLAKY | WRONG_HASH


def _size(row: int) -> tuple[int, int]:
    kind = row % 3
    if row in BLUR:
        return (256, 256)
    if kind == 0:
        return (900 + row, 600)  # landscape, larger than 512
    if kind == 1:
        return (400, 800 + row)  # portrait, larger than 512
    return (100 + row, 80)  # small


def _jpeg(row: int) -> bytes:
    w, h = _size(row)
    if row in BLUR:
        yy, xx = np.mgrid[0:h, 0:w]
        arr = (((xx // 4 + yy // 4) % 2) * 255).astype(np.uint8)
        img = Image.fromarray(np.stack([arr] * 3, axis=-1))
    else:
        rng = np.random.default_rng(row)
        img = Image.new("RGB", (w, h), tuple(int(c) for c in rng.integers(0, 255, 3)))
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def _body(row: int) -> bytes:
    return b"definitely not a jpeg " * 20 if row in CORRUPT else _jpeg(row)


def _uid(global_row: int) -> str:
    return hashlib.md5(f"uid-{global_row}".encode()).hexdigest()


class _Server:
    def __init__(self):
        self.bodies = {f"/img/{r}.jpg": _body(r) for r in range(N_SHARDS * SPS)}
        self.hits: dict[str, int] = {}
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                with server.lock:
                    n = server.hits[self.path] = server.hits.get(self.path, 0) + 1
                row = int(self.path.rsplit("/", 1)[-1].split(".")[0]) if self.path.startswith("/img/") else -1
                if self.path not in server.bodies or row in NOT_FOUND:
                    self.send_error(404)
                    return
                if row in FLAKY and n <= 2:
                    self.send_error(503)
                    return
                data = server.bodies[self.path]
                self.send_response(200)
                self.send_header("Content-Type", "image/jpeg")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.timer = threading.Timer(SERVER_LIFETIME_S, self.stop)
        self.timer.daemon = True

    def start(self):
        self.thread.start()
        self.timer.start()

    def stop(self):
        self.timer.cancel()
        self.httpd.shutdown()
        self.httpd.server_close()

    def url(self, row: int) -> str:
        return f"http://127.0.0.1:{self.port}/img/{row}.jpg"

    def hit(self, row: int) -> int:
        with self.lock:
            return self.hits.get(f"/img/{row}.jpg", 0)

    def total_hits(self) -> int:
        with self.lock:
            return sum(self.hits.values())


def _write_pool_metadata(path: Path, server: _Server) -> None:
    """A DataComp-like pool metadata file: chunk 3's rows point at the server; the others at a
    path that is never downloaded."""
    first_row = FIRST * SPS
    rows = []
    for g in range(N_POOL_ROWS):
        r = g - first_row
        in_chunk = 0 <= r < N_SHARDS * SPS
        url = server.url(r) if in_chunk else f"http://127.0.0.1:{server.port}/never/{g}.jpg"
        if in_chunk and r not in NOT_FOUND:
            sha = hashlib.sha256(server.bodies[f"/img/{r}.jpg"]).hexdigest()
        else:
            sha = "0" * 64
        if in_chunk and r in WRONG_HASH:
            sha = "f" * 64
        w, h = _size(r) if in_chunk else (10, 10)
        rows.append(
            {
                "uid": _uid(g),
                "url": url,
                "text": f"caption of row {g}",
                "original_width": w,
                "original_height": h,
                "clip_b32_similarity_score": 0.3,
                "face_bboxes": [[0.25, 0.25, 0.75, 0.75]] if in_chunk and r in BLUR else [],
                "sha256": sha,
            }
        )
    schema = pa.schema(
        [
            ("uid", pa.string()),
            ("url", pa.string()),
            ("text", pa.string()),
            ("original_width", pa.int64()),
            ("original_height", pa.int64()),
            ("clip_b32_similarity_score", pa.float32()),
            ("face_bboxes", pa.list_(pa.list_(pa.float64()))),
            ("sha256", pa.string()),
        ]
    )
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), path)


@pytest.fixture(scope="module")
def server():
    old = {k: os.environ.get(k) for k in ("no_proxy", "NO_PROXY")}
    os.environ["no_proxy"] = os.environ["NO_PROXY"] = "127.0.0.1,localhost"
    srv = _Server()
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.fixture(scope="module")
def downloaded(server, tmp_path_factory):
    root = tmp_path_factory.mktemp("pool")
    pool_meta = root / "metadata.parquet"
    _write_pool_metadata(pool_meta, server)
    chunks = dl.split_metadata(pool_meta, root / "chunks", SPS, SHARDS_PER_CHUNK)
    out = root / "shards" / "00003"
    result = dl.download_chunk(
        chunks[3], out, FIRST, N_SHARDS, samples_per_shard=SPS, processes=1, threads=4, retries=1
    )
    hits = dict(server.hits)
    return {"root": root, "chunk_meta": chunks[3], "out": out, "result": result, "hits": hits}


def _row_of_uid() -> dict[str, int]:
    return {_uid(FIRST * SPS + r): r for r in range(N_SHARDS * SPS)}


# -------------------------------------------------------------------------------------------
# pure helpers
# -------------------------------------------------------------------------------------------


def test_split_metadata_writes_chunk_files(tmp_path):
    meta = tmp_path / "meta"
    meta.mkdir()
    # two source files whose boundary is not a shard boundary
    for i, rng_ in enumerate([range(0, 5), range(5, 7)]):
        pq.write_table(
            pa.table(
                {
                    "uid": [_uid(g) for g in rng_],
                    "url": [f"http://x/{g}" for g in rng_],
                    "text": [f"t{g}" for g in rng_],
                    "original_width": [1] * len(rng_),
                    "original_height": [2] * len(rng_),
                    "l14_score": [0.1] * len(rng_),
                }
            ),
            meta / f"part{i}.parquet",
        )
    out = tmp_path / "chunks"
    out.mkdir()
    (out / "00009.parquet").write_bytes(b"stale")
    paths = dl.split_metadata(meta, out, samples_per_shard=2, shards_per_chunk=2)
    assert [p.name for p in paths] == ["00000.parquet", "00001.parquet"]
    assert not (out / "00009.parquet").exists()
    t0, t1 = (pq.read_table(p) for p in paths)
    assert t0.column_names == ["uid", "url", "text", "original_width", "original_height"]
    assert t0.column("uid").to_pylist() == [_uid(g) for g in range(4)]
    assert t1.column("uid").to_pylist() == [_uid(g) for g in range(4, 7)]
    summary = json.loads((out / "split.json").read_text())
    assert summary["n_rows"] == 7 and summary["n_shards"] == 4 and summary["n_chunks"] == 2


def test_split_metadata_needs_uid_url_text(tmp_path):
    pq.write_table(pa.table({"url": ["u"], "text": ["t"]}), tmp_path / "m.parquet")
    with pytest.raises(ValueError, match="uid"):
        dl.split_metadata(tmp_path / "m.parquet", tmp_path / "c", 2, 2)


def test_pending_runs_and_chunk_rows():
    assert dl.pending_runs([6, 7, 8, 9, 10], {8}) == [(6, 8), (9, 11)]
    assert dl.pending_runs([6, 7], {6, 7}) == []
    table = pa.table({"i": list(range(100))})
    # the whole pool's metadata: the chunk's rows are sliced out
    chunk = dl._chunk_rows(table, 2, 2, 20, "pool")
    assert chunk.column("i").to_pylist() == list(range(40, 80))
    last = dl._chunk_rows(table, 4, 1, 20, "pool")
    assert last.column("i").to_pylist() == list(range(80, 100))
    # a chunk file is taken as is, and must fill exactly n_shards shards
    assert dl._chunk_rows(table.slice(0, 35), 6, 2, 20, "chunk").num_rows == 35
    with pytest.raises(ValueError, match="not 2"):
        dl._chunk_rows(table.slice(0, 15), 6, 2, 20, "chunk")


def test_failure_categories():
    assert dl.failure_category("HTTP Error 404: Not Found") == "http_404"
    assert dl.failure_category("Image decoding error") == "decode_error"
    assert dl.failure_category("hash mismatch") == "hash_mismatch"
    assert dl.failure_category("<urlopen error [Errno 111] Connection refused>") == "connection_error"
    assert dl.failure_category("The read operation timed out") == "timeout"
    assert dl.failure_category("something new") == "other"


def test_arguments_are_img2dataset_arguments():
    accepted = dl._img2dataset_parameters()
    assert set(dl.DATACOMP_DOWNLOAD_ARGS) <= accepted
    assert set(dl.MANAGED_ARGS) <= accepted
    args = dl._build_args(10000, 1, 16, 2, {"timeout": 3})
    assert args["timeout"] == 3 and args["number_sample_per_shard"] == 10000
    assert args["oom_shard_count"] == 8 and args["resize_mode"] == "keep_ratio_largest"
    with pytest.raises(TypeError, match="no_such_argument"):
        dl._build_args(10000, 1, 16, 2, {"no_such_argument": 1})
    with pytest.raises(ValueError, match="output_folder"):
        dl._build_args(10000, 1, 16, 2, {"output_folder": "x"})


# -------------------------------------------------------------------------------------------
# the real download
# -------------------------------------------------------------------------------------------


def test_shards_have_global_names(downloaded):
    out = downloaded["out"]
    result = downloaded["result"]
    assert result["downloaded"] == [6, 7] and result["skipped"] == [] and result["missing"] == []
    assert result["verify_hash"] is True and result["bbox_col"] == "face_bboxes"
    names = sorted(p.name for p in out.iterdir() if not p.name.startswith("_"))
    assert names == [
        "00000006.parquet",
        "00000006.tar",
        "00000006_stats.json",
        "00000007.parquet",
        "00000007.tar",
        "00000007_stats.json",
    ]
    assert not (out / "_staging").exists()


def test_pool_reader_yields_the_successes_with_global_keys(downloaded):
    report = SkipReport()
    samples = list(iter_pool_samples(shard_paths(downloaded["out"]), report))
    row_of = _row_of_uid()
    got = {s.uid: s for s in samples}
    expected = {_uid(FIRST * SPS + r) for r in range(N_SHARDS * SPS) if r not in FAILED}
    assert set(got) == expected
    assert report.total_skipped == 0
    for uid, s in got.items():
        r = row_of[uid]
        key = compute_key(FIRST + r // SPS, r % SPS, SPS)
        assert s.key == key and s.meta["key"] == key  # the key is img2dataset's global index
        assert s.text == f"caption of row {FIRST * SPS + r}"
        assert s.meta["url"].endswith(f"/img/{r}.jpg")
    # the parquet rows carry the same keys, failed rows included
    for shard in (6, 7):
        t = pq.read_table(downloaded["out"] / f"{shard:08d}.parquet").to_pylist()
        assert len(t) == SPS
        for row in t:
            r = row_of[row["uid"]]
            assert row["key"] == compute_key(FIRST + r // SPS, r % SPS, SPS)


def test_report_counts_failures_by_reason(downloaded):
    report = dl.download_report(downloaded["out"])
    assert report["count"] == 40 and report["successes"] == 40 - len(FAILED)
    assert report["success_rate"] == pytest.approx((40 - len(FAILED)) / 40)
    assert report["failures_by_category"] == {"http_404": 4, "decode_error": 2, "http_503": 1, "hash_mismatch": 1}
    assert report["failures_by_reason"]["HTTP Error 404: Not Found"] == 4
    assert report["failures_by_reason"]["Image decoding error"] == 2
    assert report["failed_to_resize"] == 2 and report["failed_to_download"] == 6
    assert [s["shard"] for s in report["shards"]] == ["00000006", "00000007"]
    assert report["missing_shards"] == []
    by_shard = {s["shard"]: s for s in report["shards"]}
    # shard 6 = rows 0..19: 404 at 3, 11; corrupt 5; flaky 17
    assert by_shard["00000006"]["successes"] == 16
    assert by_shard["00000007"]["successes"] == 16
    json.dumps(report)  # writable as JSON


def test_images_resized_keep_ratio_largest_only_if_bigger(downloaded):
    row_of = _row_of_uid()
    n_big = n_small = 0
    for s in iter_pool_samples(shard_paths(downloaded["out"]), SkipReport()):
        r = row_of[s.uid]
        w, h = _size(r)
        assert (s.meta["original_width"], s.meta["original_height"]) == (w, h)
        if max(w, h) > 512:
            scale = 512 / max(w, h)
            assert max(s.image.size) == 512
            assert s.image.size == (s.meta["width"], s.meta["height"])
            assert abs(s.image.size[0] - w * scale) <= 1 and abs(s.image.size[1] - h * scale) <= 1
            n_big += 1
        else:
            assert s.image.size == (w, h)
            n_small += 1
        assert s.meta["sha256"] == hashlib.sha256(_body(r)).hexdigest()  # of the original bytes
    assert n_big > 10 and n_small > 5


def test_faces_are_blurred(downloaded):
    (sample,) = [
        s for s in iter_pool_samples(shard_paths(downloaded["out"]), SkipReport()) if s.uid == _uid(FIRST * SPS + 8)
    ]
    arr = np.asarray(sample.image.convert("L"), dtype=np.float32)
    centre, corner = arr[100:156, 100:156], arr[0:40, 0:40]
    assert corner.std() > 80  # the checkerboard is intact outside the box
    assert centre.std() < corner.std() / 3  # and smoothed inside it
    assert sample.meta["face_bboxes"] == [[0.25, 0.25, 0.75, 0.75]]


def test_rerun_skips_completed_shards(downloaded, server):
    out = downloaded["out"]
    before = {p.name: p.stat().st_mtime_ns for p in out.glob("0*")}
    hits = server.total_hits()
    result = dl.download_chunk(
        downloaded["chunk_meta"], out, FIRST, N_SHARDS, samples_per_shard=SPS, threads=4, retries=1
    )
    assert result["skipped"] == [6, 7] and result["downloaded"] == [] and result["img2dataset_calls"] == 0
    assert server.total_hits() == hits
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("0*")} == before


def test_resume_downloads_only_incomplete_shards(downloaded, server, tmp_path):
    """A shard without _stats.json (an interrupted download) is downloaded again, alone, under
    its global id and keys; the complete shard is not fetched again."""
    out = tmp_path / "chunk"
    shutil.copytree(downloaded["out"], out)
    (out / "00000007_stats.json").unlink()
    (out / "00000007.tar").write_bytes(b"truncated")
    before = {r: server.hit(r) for r in range(N_SHARDS * SPS)}
    result = dl.download_chunk(
        downloaded["chunk_meta"], out, FIRST, N_SHARDS, samples_per_shard=SPS, threads=4, retries=0
    )
    assert result["skipped"] == [6] and result["downloaded"] == [7] and result["missing"] == []
    assert result["img2dataset_calls"] == 1
    for r in range(N_SHARDS * SPS):
        assert server.hit(r) - before[r] == (1 if r >= SPS else 0), f"row {r}"
    names = sorted(p.name for p in out.iterdir() if not p.name.startswith("_"))
    assert names == sorted(p.name for p in downloaded["out"].iterdir() if not p.name.startswith("_"))
    fresh = {s.uid: s.key for s in iter_pool_samples([out / "00000007.tar"], SkipReport())}
    first = {s.uid: s.key for s in iter_pool_samples([downloaded["out"] / "00000007.tar"], SkipReport())}
    assert fresh == first and len(fresh) == 16


def test_missing_shard_is_reported(downloaded, tmp_path, monkeypatch):
    """A shard img2dataset does not complete raises (strict) or is listed as missing."""
    out = tmp_path / "chunk"
    shutil.copytree(downloaded["out"], out)
    (out / "00000007_stats.json").unlink()
    calls = []

    def no_output(**kwargs):
        folder = Path(kwargs["output_folder"])
        calls.append((sorted(p.name for p in folder.iterdir()), kwargs["incremental_mode"]))

    monkeypatch.setattr(dl, "_run_img2dataset", no_output)
    with pytest.raises(RuntimeError, match="00000007.tar"):
        dl.download_chunk(downloaded["chunk_meta"], out, FIRST, N_SHARDS, samples_per_shard=SPS)
    assert calls == [(["00000006_curate_start_marker.json"], "extend")]
    result = dl.download_chunk(downloaded["chunk_meta"], out, FIRST, N_SHARDS, samples_per_shard=SPS, strict=False)
    assert result["missing"] == [7] and result["skipped"] == [6]
    report = dl.download_report(out)
    assert report["missing_shards"] == ["00000007"] and report["count"] == SPS


def test_retry_failed_redownloads_only_failures_and_merges(downloaded, server, tmp_path):
    out = tmp_path / "chunk"
    shutil.copytree(downloaded["out"], out)
    hits_before = {r: server.hit(r) for r in range(N_SHARDS * SPS)}
    # the first download: 404s were tried twice (retries=1), the flaky URL failed twice
    assert hits_before[3] == 2 and hits_before[17] == 2 and hits_before[0] == 1

    result = dl.retry_failed(out, retries=1, threads=4)
    assert result["attempted"] == len(FAILED)
    assert result["recovered"] == 1 and result["still_failed"] == len(FAILED) - 1
    assert result["recovered_by_shard"] == {"00000006": 1}
    assert result["verify_hash"] is True  # the metadata's sha256, joined by uid
    assert result["retry_failures_by_reason"]["hash mismatch"] == 1

    for r in range(N_SHARDS * SPS):
        extra = server.hit(r) - hits_before[r]
        if r in NOT_FOUND:
            assert extra == 2
        elif r in FAILED:
            assert extra == 1
        else:
            assert extra == 0, f"row {r} was downloaded again"

    # the flaky sample is now in shard 6 under its original key
    row_of = _row_of_uid()
    samples = {s.uid: s for s in iter_pool_samples(shard_paths(out), SkipReport())}
    flaky_uid = _uid(FIRST * SPS + 17)
    assert flaky_uid in samples and len(samples) == 40 - len(FAILED) + 1
    key = compute_key(FIRST + 17 // SPS, 17 % SPS, SPS)
    assert samples[flaky_uid].key == key and samples[flaky_uid].meta["key"] == key
    assert "pool_key" not in samples[flaky_uid].meta
    assert all(samples[u].key == compute_key(FIRST + row_of[u] // SPS, row_of[u] % SPS, SPS) for u in samples)
    rows = {r["key"]: r for r in pq.read_table(out / "00000006.parquet").to_pylist()}
    assert rows[key]["status"] == "success" and rows[key]["uid"] == flaky_uid and rows[key]["width"] == _size(17)[0]
    assert "pool_key" not in pq.read_schema(out / "00000006.parquet").names

    report = result["report"]
    assert report["successes"] == 40 - len(FAILED) + 1
    assert report["failures_by_category"] == {"http_404": 4, "decode_error": 2, "hash_mismatch": 1}
    stats6 = json.loads((out / "00000006_stats.json").read_text())
    assert stats6["successes"] == 17 and stats6["retries"][0]["recovered"] == 1
    assert not (out / "_retry_staging").exists()
    # the shared download is untouched
    assert dl.download_report(downloaded["out"])["successes"] == 40 - len(FAILED)
