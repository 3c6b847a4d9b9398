"""Faults in pool shards: a tar cut or damaged (what a killed download or a bad copy leaves), a
shard edited in place after it was made, a corrupt JPEG. Every shard is read against its own
record (its parquet's successes, its _stats.json) and its checksum record."""

import json
import logging

import numpy as np
import pytest

from curate.data.integrity import FileChangedError, IntegrityError, ShardDamagedError, Tolerances, set_tolerances
from curate.data.reshard import reshard
from curate.data.shards import (
    ShardWriter,
    SkipReport,
    checked_metadata,
    checksum_path,
    iter_pool_samples,
    record_shard,
    shard_paths,
)
from curate.data.subset import uids_to_u8u8
from tests.faults.conftest import SAMPLES_PER_SHARD, member_offsets
from tests.unit.pool_fixtures import jpg_bytes, uid


def _cut(tar_path, how: str) -> int:
    """Damage a shard's tar as ``how`` says, after its 10th sample (30 members); returns the
    byte where a reader must stop."""
    members = member_offsets(tar_path)
    at = members[30].offset  # the header of the 11th sample's first member
    data = tar_path.read_bytes()
    if how == "member boundary":
        tar_path.write_bytes(data[:at])
    elif how == "mid header":
        tar_path.write_bytes(data[: at + 100])
    elif how == "mid member":
        tar_path.write_bytes(data[: members[30].offset_data + 10])
    elif how == "bad header":
        tar_path.write_bytes(data[:at] + b"\x13" * 512 + data[at + 512 :])
    return at


CUTS = [
    ("member boundary", "truncated_shard"),
    ("mid header", "truncated_shard"),
    ("mid member", "truncated_shard"),
    ("bad header", "damaged_shard"),
]


def _read(paths, **kwargs):
    report = SkipReport()
    samples = list(iter_pool_samples(paths, report, **kwargs))
    return samples, report


@pytest.mark.parametrize("how, reason", CUTS)
def test_cut_tar_is_counted_per_shard_under_its_reason(pool, caplog, how, reason):
    """A shard that arrived damaged (its checksums recorded as it is): the samples its record
    lists but its tar does not yield are counted, per shard, under their own reason."""
    tar = shard_paths(pool)[0]
    at = _cut(tar, how)
    record_shard(tar)
    with caplog.at_level(logging.WARNING):
        samples, report = _read(shard_paths(pool), max_missing=1.0)
    unread = SAMPLES_PER_SHARD - 10
    assert report.as_dict()["unread"] == {reason: unread} | {r: 0 for r in report.unread if r != reason}
    [damaged] = report.as_dict()["damaged_shards"]
    assert damaged == {
        "shard": "00000000.tar",
        "reason": reason,
        "offset": at,
        "size": tar.stat().st_size,
        "expected": SAMPLES_PER_SHARD,
        "read": 10,
        "unread": unread,
    }
    assert report.total_seen == 10 + SAMPLES_PER_SHARD  # the second shard is whole
    assert f"{unread} of the {SAMPLES_PER_SHARD} samples" in caplog.text and str(tar) in caplog.text


@pytest.mark.parametrize("how, reason", CUTS)
def test_cut_tar_above_the_tolerance_stops_naming_shard_offset_counts(pool, how, reason):
    tar = shard_paths(pool)[0]
    at = _cut(tar, how)
    record_shard(tar)
    set_tolerances(Tolerances(max_shard_missing=0.01))  # the config's default, as a job sets it
    with pytest.raises(ShardDamagedError) as err:
        _read(shard_paths(pool))
    message = str(err.value)
    assert str(tar) in message and reason.removesuffix("_shard") in message
    assert f"at byte {at} of {tar.stat().st_size}" in message
    assert f"{SAMPLES_PER_SHARD - 10} of the {SAMPLES_PER_SHARD} samples" in message
    assert "integrity.max_shard_missing" in message and f"--forcerun {pool}" in message


def test_damaged_shard_shrinks_no_reshard_silently(pool, tmp_path):
    """The issue's run: a cut shard made reshards smaller with exit 0. Now the reshard stops."""
    tar = shard_paths(pool)[0]
    _cut(tar, "member boundary")
    record_shard(tar)
    set_tolerances(Tolerances(max_shard_missing=0.01))
    subset = uids_to_u8u8([s.uid for s in _read(shard_paths(pool), max_missing=1.0)[0]])
    with pytest.raises(ShardDamagedError, match="00000000.tar is truncated"):
        reshard(subset, shard_paths(pool), tmp_path / "reshard")


def test_shard_cut_after_it_was_recorded_stops_as_changed(pool):
    """With its checksum record from when it was made, a cut shard has changed in place: it stops
    the job whatever the tolerance, saying what changed, what was lost and what to rerun."""
    tar = shard_paths(pool)[0]
    at = _cut(tar, "member boundary")
    with pytest.raises(FileChangedError) as err:
        _read(shard_paths(pool), max_missing=1.0)
    message = str(err.value)
    assert f"pool shard {tar} changed since it was written" in message
    assert f"{at} bytes, recorded" in message and "were not read" in message
    assert f"snakemake --forcerun {pool}" in message


def test_shard_edited_in_place_stops_its_readers(pool):
    """Same size, other bytes (an image overwritten in place): only the checksum can tell."""
    tar = shard_paths(pool)[1]
    data = bytearray(tar.read_bytes())
    jpg = next(m for m in member_offsets(tar) if m.name.endswith(".jpg"))
    data[jpg.offset_data + 200 : jpg.offset_data + 210] = b"\x00" * 10
    tar.write_bytes(bytes(data))
    with pytest.raises(FileChangedError) as err:
        _read(shard_paths(pool))
    assert f"pool shard {tar} changed since it was written (00000001.tar: sha256" in str(err.value)
    assert "--forcerun" in str(err.value)


def test_shard_parquet_edited_in_place_stops_the_readers_and_the_selection(pool):
    parquet = pool / "00000000.parquet"
    parquet.write_bytes(parquet.read_bytes() + b"\0")
    with pytest.raises(FileChangedError, match="00000000.parquet"):
        next(iter_pool_samples(shard_paths(pool), SkipReport()))
    with pytest.raises(FileChangedError, match=f"pool shard metadata {parquet} changed"):
        checked_metadata(shard_paths(pool)[0])
    assert checked_metadata(shard_paths(pool)[1]) == pool / "00000001.parquet"


def test_shard_without_its_record_stops(pool):
    (pool / "00000001_stats.json").unlink()
    with pytest.raises(FileChangedError, match=r"00000001_stats.json: gone \(recorded"):
        _read(shard_paths(pool))
    checksum_path(shard_paths(pool)[1]).unlink()  # a shard made before checksums were recorded
    with pytest.raises(FileNotFoundError, match="its record 00000001_stats.json .* is missing"):
        _read(shard_paths(pool))


def test_records_that_disagree_stop(pool):
    """_stats.json says more successes than the parquet lists (no checksum record to blame)."""
    stats_path = pool / "00000000_stats.json"
    stats = json.loads(stats_path.read_text())
    stats["successes"] += 5
    stats_path.write_text(json.dumps(stats))
    checksum_path(shard_paths(pool)[0]).unlink()
    with pytest.raises(IntegrityError, match="its records disagree: 00000000.parquet lists"):
        _read(shard_paths(pool))


def test_corrupt_jpeg_is_skipped_and_counted(tmp_path):
    """What held: an image that does not decode is skipped and counted, the rest is read."""
    with ShardWriter(tmp_path, 0, 10, fixed_time=0.0) as writer:
        for i in range(5):
            jpg = jpg_bytes((200, 10 * i, 0))
            if i == 2:
                jpg = jpg[: len(jpg) // 2]  # a truncated JPEG
            writer.write(jpg, f"a red square {i}", {"uid": uid(i), "url": f"http://x/{i}.jpg"})
    record_shard(writer.tar_path)
    samples, report = _read([writer.tar_path])
    assert [s.uid for s in samples] == [uid(i) for i in (0, 1, 3, 4)]
    assert report.count("corrupt_image") == 1 and report.total_unread == 0
    assert report.as_dict()["examples"][0]["reason"] == "corrupt_image"
    assert np.all([s.image.size == (16, 16) for s in samples])
