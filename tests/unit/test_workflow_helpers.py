import pytest

from curate.workflow import chunk_name, chunk_names, chunk_shard_ids, n_chunks


def test_chunks_cover_every_shard_once():
    n_shards, per_chunk = 11, 4
    names = chunk_names(n_shards, per_chunk)
    assert names == ["00000", "00001", "00002"]
    ids = [i for name in names for i in chunk_shard_ids(name, n_shards, per_chunk)]
    assert ids == list(range(11))
    assert chunk_shard_ids("00002", n_shards, per_chunk) == [8, 9, 10]


def test_chunk_counts():
    assert n_chunks(1_280_000, 500) == 2560
    assert n_chunks(8, 2) == 4
    assert chunk_name(7) == "00007"


@pytest.mark.parametrize("chunk", ["00003", "-0001"])
def test_chunk_outside_the_pool_is_refused(chunk):
    with pytest.raises(ValueError, match="outside"):
        chunk_shard_ids(chunk, 8, 3)
