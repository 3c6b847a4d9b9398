"""A download read where it is (curate.data.inplace) and the metadata scorers' reading of a
pool's metadata (curate.data.metadata), on a DataComp download made by hand."""

import hashlib
import os

import numpy as np
import pytest

from curate.data.inplace import index_chunk
from curate.data.integrity import FileChangedError, ShardDamagedError, Tolerances, set_tolerances
from curate.data.metadata import build_layout, chunk_metadata, npz_rows, shard_rows
from curate.data.shards import SkipReport, iter_pool_samples, shard_paths
from tests.unit.inplace_fixtures import uid_of, write_datacomp_download

SPS = 20


@pytest.fixture
def download(tmp_path):
    root = tmp_path / "datacomp_small"
    info = write_datacomp_download(root, samples_per_shard=SPS)
    return root, info


def snapshot(root):
    """Every file of a folder with its size, mtime and sha256: what must not change."""
    return {
        p.relative_to(root).as_posix(): (
            p.stat().st_size,
            p.stat().st_mtime_ns,
            hashlib.sha256(p.read_bytes()).digest(),
        )
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_the_layout_is_img2dataset_s_cut_of_each_metadata_file(download):
    root, info = download
    layout = build_layout(root / "metadata", SPS, "per_file")
    # 50 rows -> shards 0, 1, 2 (20, 20, 10); 35 rows -> shards 3, 4 (20, 15)
    assert layout["n_shards"] == info["n_shards"] == 5 and layout["n_rows"] == 85
    assert [shard_rows(layout, s) for s in range(5)] == [
        [(0, 0, 20)],
        [(0, 20, 40)],
        [(0, 40, 50)],
        [(1, 0, 20)],
        [(1, 20, 35)],
    ]
    assert layout["npz_keys"] == ["b32_img", "b32_txt", "l14_img", "l14_txt"]
    # the workflow's own split concatenates the files: shard 2 takes rows 40..60, across both
    concatenated = build_layout(root / "metadata", SPS, "concatenated")
    assert concatenated["n_shards"] == 5 and shard_rows(concatenated, 2) == [(0, 40, 50), (1, 0, 10)]
    # an uncompressed npz member is memory-mapped: only the rows asked for are read
    np.testing.assert_array_equal(
        npz_rows(layout["files"][1]["npz"], "l14_img", 5, 9), info["features"]["l14_img"][55:59]
    )


def test_a_chunk_is_indexed_in_place_never_copied_and_root_is_not_written(download, tmp_path):
    root, info = download
    before = snapshot(root)
    chunk = tmp_path / "data" / "pools" / "dc" / "shards" / "00001"
    report = index_chunk(root / "shards", chunk, [2, 3], pool_shards=5)
    assert snapshot(root) == before  # not a byte written, not a file added
    tars = shard_paths(chunk)
    assert [p.name for p in tars] == ["00000002.tar", "00000003.tar"]
    assert all(
        p.is_symlink() and p.resolve() == (root / "shards" / p.name).resolve()
        for p in chunk.iterdir()
        if not p.name.startswith("_")
    )
    assert sorted(p.name for p in chunk.glob("_*")) == ["_00000002_sha256.json", "_00000003_sha256.json"]
    assert report["source"] == str(root / "shards") and report["missing_shards"] == []
    assert report["count"] == 30 and report["successes"] == 29  # rows 40..69, of which row 61 failed
    # the shards read through the links, against the records written by the index
    uids = [s.uid for s in iter_pool_samples(tars, SkipReport(), decode_images=False)]
    failed = {3, 10, 17, 24, 61}
    assert uids == [uid_of(r) for r in list(range(40, 50)) + list(range(50, 70)) if r not in failed]
    # a shard of root changed after it was indexed: its readers stop, saying what to do
    tar = root / "shards" / "00000003.tar"
    os.chmod(tar, 0o644)
    data = bytearray(tar.read_bytes())
    data[600] ^= 0xFF
    tar.write_bytes(bytes(data))
    with pytest.raises(FileChangedError, match=r"(?s)read in place from .*never writes.*--forcerun .*00001.index.json"):
        list(iter_pool_samples(tars, SkipReport(), decode_images=False))


def test_missing_and_damaged_shards_of_the_download_are_counted_or_stop_the_index(download, tmp_path):
    root, _ = download
    for f in (root / "shards").glob("00000001*"):
        f.unlink()  # img2dataset lost a worker
    report = index_chunk(root / "shards", tmp_path / "c0", [0, 1], pool_shards=5)
    assert report["missing_shards"] == ["00000001"] and [p.name for p in shard_paths(tmp_path / "c0")] == [
        "00000000.tar"
    ]
    tar = root / "shards" / "00000003.tar"
    tar.write_bytes(tar.read_bytes()[: tar.stat().st_size // 2])  # cut
    set_tolerances(Tolerances(max_shard_missing=0.01))
    try:
        with pytest.raises(ShardDamagedError, match=r"(?s)00000003.tar is truncated.*never written by the workflow"):
            index_chunk(root / "shards", tmp_path / "c1", [2, 3], pool_shards=5)
    finally:
        set_tolerances(Tolerances())


def test_the_last_chunk_checks_the_pools_shard_count(download, tmp_path):
    root, _ = download
    with pytest.raises(ValueError, match="beyond the pool's n_shards 4.*set the pool's n_shards"):
        index_chunk(root / "shards", tmp_path / "c", [2, 3], pool_shards=4)


def test_metadata_scores_and_features_of_the_downloaded_samples(download, tmp_path):
    root, info = download
    layout = build_layout(root / "metadata", SPS, "per_file")
    chunk = tmp_path / "c"
    index_chunk(root / "shards", chunk, [2, 3], pool_shards=5)
    uids, values, (image, text), report = chunk_metadata(
        shard_paths(chunk), layout, "clip_l14_similarity_score", features="l14", pool_shards=5
    )
    rows = [r for r in range(40, 70) if r not in {3, 10, 17, 24, 61}]
    assert uids == [uid_of(r) for r in rows]
    np.testing.assert_array_equal(values, info["scores"]["clip_l14_similarity_score"][rows])
    expected = info["features"]["l14_img"][rows].astype(np.float32)
    np.testing.assert_allclose(image, expected / np.linalg.norm(expected, axis=1, keepdims=True), atol=1e-6)
    assert text.shape == (len(rows), 12)
    assert report["rows"] == 30 and report["read"] == 29 and report["skipped"]["not_downloaded"] == 1


def test_shard_rows_in_the_order_downloads_finished_are_read_in_the_inputs_order(download, tmp_path):
    """img2dataset writes a shard's parquet rows as its threads finish (a stalled url comes last);
    the keys count the input rows, and the metadata is matched in that order."""
    import pyarrow.parquet as pq

    from curate.data.shards import record_shard

    root, info = download
    parquet = root / "shards" / "00000002.parquet"
    table = pq.read_table(parquet)
    pq.write_table(table.take(list(reversed(range(table.num_rows)))), parquet)
    record_shard(root / "shards" / "00000002.tar")
    layout = build_layout(root / "metadata", SPS, "per_file")
    chunk = tmp_path / "c"
    index_chunk(root / "shards", chunk, [2, 3], pool_shards=5)
    uids, values, _, report = chunk_metadata(shard_paths(chunk), layout, "clip_l14_similarity_score", pool_shards=5)
    rows = [r for r in range(40, 70) if r not in {3, 10, 17, 24, 61}]
    assert uids == [uid_of(r) for r in rows]
    np.testing.assert_array_equal(values, info["scores"]["clip_l14_similarity_score"][rows])


def test_a_download_not_made_from_this_metadata_stops_naming_the_shard(download, tmp_path):
    root, _ = download
    layout = build_layout(root / "metadata", SPS, "concatenated")  # the wrong cut: rows 40..60 for shard 2
    chunk = tmp_path / "c"
    index_chunk(root / "shards", chunk, [2], pool_shards=5)
    with pytest.raises(ValueError, match=r"shard 00000002.tar: .*lists 10 rows, the metadata 20 \(concatenated"):
        chunk_metadata(shard_paths(chunk), layout, "clip_b32_similarity_score", pool_shards=5)


def test_an_img2dataset_folder_without_metadata_reads_the_column_from_its_shard_parquets(download, tmp_path):
    root, _ = download
    chunk = tmp_path / "c"
    index_chunk(root / "shards", chunk, [0], pool_shards=5)
    uids, values, _, _ = chunk_metadata(shard_paths(chunk), None, "original_width", pool_shards=5)
    assert uids == [uid_of(r) for r in range(20) if r not in {3, 10, 17}]
    assert values.tolist() == [24 + r % 5 for r in range(20) if r not in {3, 10, 17}]
    with pytest.raises(ValueError, match="has no column 'clip_l14_similarity_score'.*no metadata files"):
        chunk_metadata(shard_paths(chunk), None, "clip_l14_similarity_score", pool_shards=5)


class _ImageServer:
    """Loopback HTTP: /img/<row>.jpg is the row's image, except rows in ``gone`` (404)."""

    def __init__(self, gone=()):
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
        from threading import Thread

        from tests.unit.inplace_fixtures import image_of

        self.hits = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                row = int(self.path.rsplit("/", 1)[-1].split(".")[0])
                server.hits.append(row)
                if row in gone:
                    self.send_error(404)
                    return
                data = image_of(row)
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        Thread(target=self.httpd.serve_forever, daemon=True).start()

    def url(self, row):
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/img/{row}.jpg"


@pytest.mark.slow
def test_retrying_failed_urls_writes_new_shards_beside_the_old_ones(tmp_path, monkeypatch):
    """retry_failed (opt-in): the failed rows of the chunk's shards go to img2dataset once more, into
    a new shard beyond the pool's ids, in data_root; root is untouched; the metadata reads the
    recovered samples by uid; a second retry fetches nothing it already has."""
    from curate.data.inplace import retry_in_place
    from curate.data.metadata import build_layout

    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    server = _ImageServer(gone={17})
    root = tmp_path / "dc"
    info = write_datacomp_download(root, samples_per_shard=SPS, url=server.url)
    layout = build_layout(root / "metadata", SPS, "per_file")
    before = snapshot(root)
    chunk = tmp_path / "data" / "c0"
    index_chunk(root / "shards", chunk, [0, 1], pool_shards=5)
    settings = {"processes": 1, "threads": 2, "retries": 0}
    retry = retry_in_place(chunk, [0, 1], 5, SPS, layout=layout, **settings)
    assert snapshot(root) == before
    assert retry["attempted"] == 4 and retry["recovered"] == 3 and retry["shards"] == ["00000005"]
    assert sorted(server.hits) == [3, 10, 17, 24]
    assert [p.name for p in shard_paths(chunk)] == ["00000000.tar", "00000001.tar", "00000005.tar"]
    assert not (chunk / "00000005.tar").is_symlink()
    uids, values, _, report = chunk_metadata(shard_paths(chunk), layout, "clip_b32_similarity_score", pool_shards=5)
    rows = [r for r in range(40) if r not in {3, 10, 17, 24}]
    assert uids[:36] == [uid_of(r) for r in rows] and report["skipped"]["not_downloaded"] == 1
    rows += sorted([3, 10, 24], key=lambda r: uids.index(uid_of(r)))  # img2dataset's order of completion
    assert uids == [uid_of(r) for r in rows]
    np.testing.assert_array_equal(values, info["scores"]["clip_b32_similarity_score"][rows])
    # indexed again (forcerun): the links are made anew, the retry's shard stays; its retry fetches nothing again
    index_chunk(root / "shards", chunk, [0, 1], pool_shards=5)
    again = retry_in_place(chunk, [0, 1], 5, SPS, layout=layout, **settings)
    assert again["skipped"] == ["00000005"] and again["downloaded"] == [] and sorted(server.hits) == [3, 10, 17, 24]
    server.httpd.shutdown()


def test_the_workflows_own_download_is_read_across_its_metadata_files(download, tmp_path):
    """The workflow downloads a DataComp pool from its metadata files concatenated (its split), so
    a shard can hold the end of one file and the start of the next: its rows are read from both."""
    from curate.data.shards import ShardWriter, record_shard
    from tests.unit.inplace_fixtures import image_of

    root, info = download
    chunk = tmp_path / "pools" / "dc" / "shards" / "00001"
    for shard in (2, 3):  # rows 40..59 (file 0: 40..49, file 1: 0..9) and 60..79
        with ShardWriter(chunk, shard, SPS) as writer:
            for r in range(shard * SPS, (shard + 1) * SPS):
                writer.write(image_of(r) if r != 45 else None, "caption", {"uid": uid_of(r), "url": f"http://x/{r}"})
        record_shard(writer.tar_path)
    layout = build_layout(root / "metadata", SPS, "concatenated")
    uids, values, (image, _), report = chunk_metadata(
        shard_paths(chunk), layout, "clip_b32_similarity_score", features="b32", pool_shards=5
    )
    rows = [r for r in range(40, 80) if r != 45]
    assert uids == [uid_of(r) for r in rows] and report["skipped"]["not_downloaded"] == 1
    np.testing.assert_array_equal(values, info["scores"]["clip_b32_similarity_score"][rows])
    expected = info["features"]["b32_img"][rows].astype(np.float32)
    np.testing.assert_allclose(image, expected / np.linalg.norm(expected, axis=1, keepdims=True), atol=1e-6)


def test_in_place_pools_of_both_layouts_in_the_workflow():
    """An img2dataset folder has no metadata files: no layout job, its metadata scorers read the
    shard parquets; a DataComp download's metadata layout is made from root/metadata."""
    from curate.workflow.config import load_config
    from curate.workflow.workspace import Workspace

    pools = {
        "mine": {"source": "download", "layout": "img2dataset", "root": "/data/mine", "n_shards": 4}
        | {"samples_per_shard": 10000, "shards_per_chunk": 2, "retry_failed": True},
        "datacomp-small": {"layout": "datacomp", "root": "/data/dc_small"},
    }
    ws = Workspace(load_config(overrides={"pools": pools}))
    assert ws.chunk_inputs("mine") == [
        "data/pools/mine/shards/00000.index.json",
        "data/pools/mine/shards/00001.index.json",
    ]
    assert not ws.has_metadata("mine") and ws.index_inputs("mine") == {}
    assert ws.metadata_inputs("mine", "00001") == {"chunk": "data/pools/mine/shards/00001.index.json"}
    assert ws.has_metadata("datacomp-small") and ws.metadata_layout_params("datacomp-small")["sharding"] == "per_file"
    assert ws.metadata_inputs("datacomp-small", "00003") == {
        "chunk": "data/pools/datacomp-small/shards/00003.index.json",
        "layout": "data/pools/datacomp-small/metadata/layout.json",
    }
    assert ws.scorer_on("datacomp-small", "openai-clip-b32") == "datacomp-clip-b32"
    assert ws.scorer_on("mine", "openai-clip-b32") == "openai-clip-b32"


@pytest.mark.parametrize(
    "pools, scorers, key",
    [
        ({"datacomp-small": {"root": "/data/x"}}, {}, "datacomp-small: an existing download is read with both"),
        ({"datacomp-small": {"retry_failed": True}}, {}, "datacomp-small.retry_failed: only for a pool read in place"),
        (
            {"datacomp-small": {"precomputed": {"openai-clip-l14": "tiny-clip-clean"}}},
            {},
            "is not a `library: metadata`",
        ),
        (
            {"datacomp-small": {"precomputed": {"openai-clip-l14": "raw-l14"}}},
            {"raw-l14": {"library": "metadata", "column": "clip_l14_similarity_score"}},
            r"precomputed.openai-clip-l14: 'raw-l14' writes the columns \['uid', 'clip_l14_similarity_score'\]",
        ),
    ],
)
def test_pool_config_errors_name_the_key(pools, scorers, key):
    from curate.registry import ConfigError
    from curate.workflow.config import load_config

    with pytest.raises(ConfigError, match=key):
        load_config(overrides={"pools": pools, "scorers": scorers})
