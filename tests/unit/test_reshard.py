import hashlib
import json
import tarfile

import numpy as np
import pytest

from curate.data.reshard import repeat_counts, reshard, train_data
from curate.data.subset import uids_to_u8u8
from tests.unit.pool_fixtures import uid, write_pool


def members(tar_path):
    with tarfile.open(tar_path) as tar:
        return tar.getnames()


def keys_of(out_dir):
    return [
        name[: -len(".jpg")]
        for path in sorted(out_dir.glob("*.tar"))
        for name in members(path)
        if name.endswith(".jpg")
    ]


@pytest.fixture
def pool(tmp_path):
    return write_pool(tmp_path / "pool", samples_per_shard=3, n_samples=6, corrupt={4})


def test_repeats_are_written_with_numbered_keys(tmp_path, pool):
    subset = uids_to_u8u8([uid(0), uid(2), uid(2), uid(2), uid(5)])
    meta = reshard(subset, pool, tmp_path / "out", samples_per_shard=2, shuffle_buffer=0)
    keys = keys_of(tmp_path / "out")
    assert sorted(keys) == sorted([f"{uid(0)}-0", f"{uid(2)}-0", f"{uid(2)}-1", f"{uid(2)}-2", f"{uid(5)}-0"])
    assert meta["written"] == 5 and meta["written_unique"] == 3 and meta["missing_uids"] == 0
    # 5 samples at 2 per shard: shards 0, 1, 2 numbered contiguously, the last one short.
    assert [p.name for p in sorted((tmp_path / "out").glob("*.tar"))] == [
        "00000000.tar",
        "00000001.tar",
        "00000002.tar",
    ]
    assert meta["shard_sizes"] == [2, 2, 1]
    with tarfile.open(tmp_path / "out" / "00000000.tar") as tar:
        names = tar.getnames()
        assert {name.rsplit(".", 1)[1] for name in names} == {"jpg", "txt", "json"}
        sample_json = json.loads(tar.extractfile([n for n in names if n.endswith(".json")][0]).read())
    assert sample_json["uid"] in {uid(0), uid(2)}


def test_corrupt_and_missing_samples_are_counted(tmp_path, pool):
    subset = uids_to_u8u8([uid(1), uid(4), uid(99)])
    meta = reshard(subset, pool, tmp_path / "out", samples_per_shard=10)
    assert keys_of(tmp_path / "out") == [f"{uid(1)}-0"]
    assert meta["missing_uids"] == 2  # uid 4 is corrupt in the pool, uid 99 is not in it
    assert meta["pool_report"]["skipped"]["corrupt_image"] == 1
    assert json.loads((tmp_path / "out" / "meta.json").read_text()) == meta


def test_same_seed_same_bytes_and_shuffle_spreads_repeats(tmp_path, pool):
    subset = uids_to_u8u8([uid(0)] * 3 + [uid(1)] * 3 + [uid(2)] * 3)
    digests = []
    for run in ("a", "b"):
        reshard(subset, pool, tmp_path / run, samples_per_shard=100, shuffle_buffer=6, seed=3)
        digests.append(hashlib.sha256((tmp_path / run / "00000000.tar").read_bytes()).hexdigest())
    assert digests[0] == digests[1]
    reshard(subset, pool, tmp_path / "plain", samples_per_shard=100, shuffle_buffer=0)
    plain = keys_of(tmp_path / "plain")
    shuffled = keys_of(tmp_path / "a")
    assert sorted(plain) == sorted(shuffled) and plain != shuffled
    reshard(subset, pool, tmp_path / "other", samples_per_shard=100, shuffle_buffer=6, seed=4)
    assert keys_of(tmp_path / "other") != shuffled


def test_repeat_counts_and_train_data(tmp_path, pool):
    counts = repeat_counts(uids_to_u8u8([uid(3), uid(3), uid(1)]))
    assert counts == {uid(3): 2, uid(1): 1}
    reshard(uids_to_u8u8([uid(0), uid(1), uid(2)]), pool, tmp_path / "out", samples_per_shard=2)
    spec = train_data(tmp_path / "out")
    assert spec.split("::") == [str(tmp_path / "out" / "00000000.tar"), str(tmp_path / "out" / "00000001.tar")]
    empty = tmp_path / "empty"
    reshard(np.zeros(0, dtype="u8,u8"), pool, empty)
    with pytest.raises(ValueError, match="no shards"):
        train_data(empty)
