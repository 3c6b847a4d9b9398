"""The download rule trusts a shard it already has only after reading it against its record:
a damaged or changed tar is fetched again (img2dataset is replaced by a stand-in that writes the
same files, so no network and no img2dataset run is needed)."""

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import curate.data.download as dl
from curate.data.shards import ShardWriter, SkipReport, checksum_path, iter_pool_samples, shard_paths
from tests.faults.test_pool_shards import _cut
from tests.unit.pool_fixtures import jpg_bytes, uid

SPS, FIRST, N_SHARDS = 20, 4, 2


class FakeImg2dataset:
    """Writes what img2dataset would for its url list: shards numbered from its start marker."""

    def __init__(self):
        self.calls: list[list[int]] = []

    def __call__(self, url_list, output_folder, number_sample_per_shard, **kwargs):
        folder = Path(output_folder)
        markers = sorted(folder.glob(f"*{dl._MARKER_SUFFIX}"))
        start = int(markers[-1].name[:8]) + 1 if markers else 0
        rows = pq.read_table(url_list).to_pylist()
        ids = []
        for k in range(0, len(rows), number_sample_per_shard):
            shard_id = start + k // number_sample_per_shard
            ids.append(shard_id)
            with ShardWriter(folder, shard_id, number_sample_per_shard) as writer:
                for row in rows[k : k + number_sample_per_shard]:
                    writer.write(
                        jpg_bytes((int(row["uid"][-2:], 16), 0, 0)), row["text"], {"uid": row["uid"], "url": row["url"]}
                    )
        self.calls.append(ids)


@pytest.fixture
def fake(monkeypatch):
    fake = FakeImg2dataset()
    monkeypatch.setattr(dl, "_run_img2dataset", fake)
    monkeypatch.setattr(dl, "_img2dataset_parameters", lambda: set(dl.DATACOMP_DOWNLOAD_ARGS) | set(dl.MANAGED_ARGS))
    return fake


@pytest.fixture
def chunk(tmp_path, fake):
    n = SPS * N_SHARDS
    metadata = tmp_path / "metadata.parquet"
    pq.write_table(
        pa.table(
            {
                "uid": [uid(i) for i in range(n)],
                "url": [f"http://x/{i}.jpg" for i in range(n)],
                "text": [f"a red square {i}" for i in range(n)],
            }
        ),
        metadata,
    )
    out = tmp_path / "shards" / "00002"
    first = dl.download_chunk(metadata, out, FIRST, N_SHARDS, samples_per_shard=SPS)
    assert first["downloaded"] == [4, 5] and fake.calls == [[4, 5]]
    assert all(checksum_path(tar).is_file() for tar in shard_paths(out))  # recorded as they arrive
    fake.calls.clear()
    return metadata, out


def _download_again(metadata, out):
    return dl.download_chunk(metadata, out, FIRST, N_SHARDS, samples_per_shard=SPS)


def test_intact_shards_are_not_fetched_again(chunk, fake):
    result = _download_again(*chunk)
    assert result["skipped"] == [4, 5] and result["refetched"] == {} and fake.calls == []


def test_damaged_shard_is_fetched_again(chunk, fake):
    metadata, out = chunk
    _cut(out / "00000005.tar", "bad header")
    result = _download_again(metadata, out)
    assert fake.calls == [[5]] and result["skipped"] == [4] and result["downloaded"] == [5]
    why = result["refetched"]["00000005"]
    assert why.startswith("changed since it was downloaded (00000005.tar: sha256") and "were not read" in why
    samples = list(iter_pool_samples(shard_paths(out), SkipReport()))
    assert len(samples) == SPS * N_SHARDS


def test_shard_damaged_when_it_arrived_is_fetched_again(chunk, fake):
    """A damaged tar with no checksum record to compare with: its parquet's successes tell."""
    metadata, out = chunk
    _cut(out / "00000004.tar", "member boundary")
    checksum_path(out / "00000004.tar").unlink()
    result = _download_again(metadata, out)
    assert fake.calls == [[4]] and result["downloaded"] == [4]
    assert "10 of the 20 samples" in result["refetched"]["00000004"]
    assert checksum_path(out / "00000004.tar").is_file()
