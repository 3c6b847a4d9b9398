"""The pool loader's workers (curate/data/loader.py) read damaged shards as the serial reader
does: the same counts within the tolerance, the same errors above it or on a changed shard."""

import pytest

from curate.data.integrity import FileChangedError, ShardDamagedError, Tolerances, set_tolerances
from curate.data.loader import PoolInputs, iter_pool_input_batches
from curate.data.shards import SkipReport, iter_pool_samples, record_shard, shard_paths
from tests.faults.test_pool_shards import CUTS, _cut


def _loaded(paths, workers, **kwargs):
    report = SkipReport()
    uids = [
        u for b in iter_pool_input_batches(paths, report, PoolInputs(), 7, workers=workers, **kwargs) for u in b.uids
    ]
    return uids, report


@pytest.mark.parametrize("workers", [0, 2])
@pytest.mark.parametrize("how, reason", CUTS)
def test_a_cut_shard_is_counted_as_the_serial_reader_counts_it(pool, workers, how, reason):
    tar = shard_paths(pool)[0]
    _cut(tar, how)
    record_shard(tar)
    want = SkipReport()
    want_uids = [s.uid for s in iter_pool_samples(shard_paths(pool), want, max_missing=1.0)]
    uids, report = _loaded(shard_paths(pool), workers, max_missing=1.0, block_size=3)
    assert uids == want_uids
    assert report.as_dict() == want.as_dict() and report.as_dict()["damaged_shards"][0]["reason"] == reason


@pytest.mark.parametrize("workers", [0, 2])
def test_a_cut_shard_above_the_tolerance_stops(pool, workers):
    tar = shard_paths(pool)[0]
    _cut(tar, "mid member")
    record_shard(tar)
    set_tolerances(Tolerances(max_shard_missing=0.01))
    with pytest.raises(ShardDamagedError, match="00000000.tar is truncated"):
        _loaded(shard_paths(pool), workers)


@pytest.mark.parametrize("workers", [0, 2])
def test_a_shard_changed_since_its_record_stops(pool, workers):
    tar = shard_paths(pool)[1]
    data = bytearray(tar.read_bytes())
    data[len(data) // 2] ^= 0xFF
    tar.write_bytes(bytes(data))
    with pytest.raises(FileChangedError, match="changed since it was written"):
        _loaded(shard_paths(pool), workers, max_missing=1.0)
