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


def test_chunk_input_is_the_folder_or_the_download_report(tmp_path):
    from curate.shards import chunk_folder, shard_paths
    from curate.workflow import chunk_input

    synthetic = chunk_input("data", "synthetic-tiny", {"source": "synthetic"}, "00003")
    assert synthetic == "data/pools/synthetic-tiny/shards/00003"
    real = chunk_input("data", "datacomp-small", {"source": "datacomp"}, "00003")
    assert real == "data/pools/datacomp-small/shards/00003.download.json"
    assert str(chunk_folder(real)) == "data/pools/datacomp-small/shards/00003"
    assert str(chunk_folder(synthetic)) == synthetic
    (tmp_path / "00003").mkdir()
    for name in ("00000031.tar", "00000030.tar", "00000030.parquet"):
        (tmp_path / "00003" / name).write_bytes(b"")
    expected = [tmp_path / "00003" / "00000030.tar", tmp_path / "00003" / "00000031.tar"]
    assert shard_paths(tmp_path / "00003.download.json") == expected == shard_paths(tmp_path / "00003")


def test_table_selections_per_scale():
    from curate.workflow import table_selections

    config = {"scale": "tiny", "tables": {"table1": {"selections": ["a", "oracle"]}},
              "scales": {"tiny": {}, "small": {"tables": {"table1": ["a", "b"]}}}}
    assert table_selections(config, "table1") == ["a", "oracle"]
    assert table_selections(config, "table1", "small") == ["a", "b"]
