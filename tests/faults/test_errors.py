"""Every error names the file and what was expected there (parquet, npy, npz, tar, json),
including a full disk: the write fails naming the file it was writing."""

import errno

import numpy as np
import pandas as pd
import pyarrow.parquet
import pytest

from curate.data.integrity import ShardDamagedError, UnreadableFileError, read_json
from curate.data.scorefiles import load_embeddings, save_embeddings, save_scores
from curate.data.shards import SkipReport, checksum_path, iter_pool_samples, record_shard, shard_paths
from curate.data.subset import load_subset, save_subset
from curate.reporting.tables import absent_uids
from tests.unit.pool_fixtures import uid


def _halve(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def test_full_disk_while_writing_a_subset_names_the_file(tmp_path, monkeypatch):
    """Was: "1180 requested and 504 written" (numpy's message on a full disk), no path."""
    real_save = np.save

    def disk_fills(file, arr, allow_pickle=True):
        real_save(file, arr[: len(arr) // 2], allow_pickle=allow_pickle)
        raise OSError("1180 requested and 504 written")

    monkeypatch.setattr(np, "save", disk_fills)
    path = tmp_path / "subsets" / "clip_score_clean_30.npy"
    with pytest.raises(OSError) as err:
        save_subset(path, [uid(i) for i in range(70)])
    assert str(err.value).startswith(f"{path}: could not write the subset (.npy, u8,u8)")
    assert "1180 requested and 504 written" in str(err.value)
    assert not path.exists() and list(path.parent.iterdir()) == []  # nothing half-written left


def test_full_disk_while_writing_scores_names_the_file(tmp_path, monkeypatch):
    def disk_full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pyarrow.parquet, "write_table", disk_full)
    frame = pd.DataFrame({"uid": pd.Series([uid(0)], dtype=object), "clip_score": np.float32([0.3])})
    path = tmp_path / "00000.parquet"
    with pytest.raises(OSError) as err:
        save_scores(frame, path)
    assert err.value.errno == errno.ENOSPC and err.value.filename == str(path)
    assert str(err.value) == f"[Errno 28] could not write the score parquet: No space left on device: '{path}'"
    assert not path.exists()


def test_unreadable_subset_npy_names_the_file(tmp_path):
    path = save_subset(tmp_path / "s.npy", [uid(i) for i in range(50)]) is not None and tmp_path / "s.npy"
    _halve(path)
    with pytest.raises(UnreadableFileError, match=f"{path}: not a readable subset .npy \\(a 1-D u8,u8 array\\)"):
        load_subset(path)


def test_unreadable_embeddings_npz_names_the_file(tmp_path):
    path = tmp_path / "00000.npz"
    save_embeddings(path, [uid(0), uid(1)], np.ones((2, 4)), np.ones((2, 4)))
    _halve(path)
    with pytest.raises(UnreadableFileError, match=f"{path}: not a readable embeddings .npz"):
        load_embeddings(path)


def test_unreadable_json_names_the_file(tmp_path):
    reshard = tmp_path / "reshards" / "clip_score_clean_30"
    reshard.mkdir(parents=True)
    (reshard / "meta.json").write_text('{"missing_uids": 3, "shard')
    with pytest.raises(UnreadableFileError, match=f"{reshard / 'meta.json'}: not a readable reshard meta.json"):
        absent_uids(reshard)
    with pytest.raises(FileNotFoundError, match="fusion statistics .json. not found"):
        read_json(tmp_path / "stats.json", "fusion statistics (json)")


def test_shard_that_is_not_a_tar_names_the_file(pool):
    """An error page saved in place of a shard (recorded as it arrived): every sample is unread."""
    tar = shard_paths(pool)[0]
    tar.write_bytes(b"<html><body>503 Service Unavailable</body></html>\n" * 40)
    record_shard(tar)
    with pytest.raises(ShardDamagedError) as err:
        list(iter_pool_samples([tar], SkipReport()))
    assert f"pool shard {tar} is damaged: the tar stops at an unreadable tar header at byte 0" in str(err.value)


def test_unreadable_shard_records_name_the_file(pool):
    tar = shard_paths(pool)[0]
    _halve(checksum_path(tar))
    with pytest.raises(UnreadableFileError, match=f"{checksum_path(tar)}: not a readable checksum record"):
        list(iter_pool_samples([tar], SkipReport()))
    checksum_path(tar).unlink()
    _halve(pool / "00000000.parquet")
    with pytest.raises(UnreadableFileError, match=f"{pool / '00000000.parquet'}: not a readable shard parquet"):
        list(iter_pool_samples([tar], SkipReport()))
