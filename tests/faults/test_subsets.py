"""Faults in subsets: uids the pool does not hold, a wrong dtype, a full disk while resharding.
A subset is checked against the pool when it is resharded (the reshard_subset rule's script)."""

import errno
import json
import logging

import numpy as np
import pytest

import curate.data.reshard
from curate.data.integrity import SubsetCoverageError
from curate.data.records import write_records
from curate.data.shards import SkipReport, iter_pool_samples, shard_paths
from curate.data.subset import save_subset
from curate.reporting.tables import comparison_table, leaderboard
from tests.faults.conftest import FakeSnakemake, Files, run_script
from tests.unit.pool_fixtures import uid

RESHARD = {"samples_per_shard": 50, "shuffle_buffer": 0, "seed": 0}


def _pool_uids(pool) -> list[str]:
    return [s.uid for s in iter_pool_samples(shard_paths(pool), SkipReport())]  # the readable ones


def _reshard(config, tmp_path, pool, subset_path, selection="fault"):
    out = tmp_path / "reshards" / selection
    snakemake = FakeSnakemake(
        config,
        tmp_path / f"{selection}.log",
        input=Files(subset=str(subset_path), pool=[str(pool)]),
        output=Files(str(out)),
        params=Files(reshard=RESHARD),
        wildcards=Files(selection=selection, pool="synthetic-tiny"),
    )
    run_script("reshard_subset.py", snakemake)
    return out


def test_half_absent_subset_stops_the_reshard(config, tmp_path, pool):
    """The issue's run: half the subset's uids absent, half resharded, exit 0."""
    present = _pool_uids(pool)[:20]
    subset = save_subset(tmp_path / "half.npy", present + [uid(10**6 + i) for i in range(20)])
    with pytest.raises(SubsetCoverageError) as err:
        _reshard(config, tmp_path, pool, tmp_path / "half.npy", "half")
    message = str(err.value)
    assert message.startswith(f"subset half ({tmp_path / 'half.npy'}): 20 of its 40 uids (50.00%) are not among")
    assert "more than integrity.max_subset_missing (1.00%)" in message
    assert len(subset) == 40


def test_few_absent_uids_are_counted_in_the_log_and_the_tables(config, tmp_path, pool, caplog):
    config["integrity"]["max_subset_missing"] = 0.05
    present = _pool_uids(pool)
    save_subset(tmp_path / "most.npy", present + [uid(10**6)])
    with caplog.at_level(logging.INFO):
        out = _reshard(config, tmp_path, pool, tmp_path / "most.npy", "most")
    log = (tmp_path / "most.log").read_text()
    assert f"1 of its {len(present) + 1} uids" in log and "within integrity.max_subset_missing" in log
    assert f"subset most: 1 of {len(present) + 1} uids absent from the pool" in log
    assert json.loads((out / "meta.json").read_text())["missing_uids"] == 1
    evaluation = tmp_path / "most.jsonl"
    write_records([{"key": "shape", "dataset": "Shape", "metrics": {"main_metric": 0.5}}], evaluation)
    row = {"selection": "most", "pool": "p", "recipe": "r", "suite": "s", "subset": tmp_path / "most.npy"}
    row |= {"evaluation": evaluation, "reshard": out}
    table = leaderboard([row], None, {"Attributes": ["shape"]})
    assert table.loc[0, "absent_uids"] == 1
    row2 = row | {"fusion": "", "scorers": "", "sampler": "all"}
    assert comparison_table([row2], [], None, {"Attributes": ["shape"]}).loc[0, "absent_uids"] == 1


def test_wrong_subset_dtype_is_refused(config, tmp_path, pool):
    """What held: a subset that is not u8,u8 stops the reshard naming the file."""
    np.save(tmp_path / "floats.npy", np.arange(10, dtype=np.float64))
    with pytest.raises(ValueError, match=f"{tmp_path / 'floats.npy'}: subset dtype must be"):
        _reshard(config, tmp_path, pool, tmp_path / "floats.npy")


def test_full_disk_while_resharding_names_the_folder(config, tmp_path, pool, monkeypatch):
    save_subset(tmp_path / "all.npy", _pool_uids(pool))
    real = curate.data.reshard.add_tar_member
    calls = []

    def disk_fills(tar, name, data):
        calls.append(name)
        if len(calls) > 7:
            raise OSError(errno.ENOSPC, "No space left on device")
        real(tar, name, data)

    monkeypatch.setattr(curate.data.reshard, "add_tar_member", disk_fills)
    with pytest.raises(OSError) as err:
        _reshard(config, tmp_path, pool, tmp_path / "all.npy", "all")
    assert err.value.errno == errno.ENOSPC
    assert str(tmp_path / "reshards" / "all") in str(err.value) and "No space left on device" in str(err.value)
