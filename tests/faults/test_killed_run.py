"""A run killed with SIGKILL in the middle of a rule, then recovered as the README says: the
half-written output stops a plain rerun (without profiles/default, which sets rerun-incomplete),
the lock it leaves stops the next, `--unlock` removes it (no other Snakemake runs there), and
`--rerun-incomplete` rebuilds the output byte-identical to an uninterrupted build.

The kill lands at a fixed point: a plugin (the config's `plugins`, imported by every job) makes the
job pause once its first shard is complete, until it is killed."""

import filecmp
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from curate.data.synthetic.pool import write_pool_chunk

pytestmark = pytest.mark.workflow

ROOT = Path(__file__).resolve().parents[2]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
POOL = {"n_shards": 2, "samples_per_shard": 30, "shards_per_chunk": 2}

PAUSE_PLUGIN = '''
"""Fault injection: the first job that closes shard 0 pauses there (after writing a mark) until killed."""
import os
import time
from pathlib import Path

import curate.data.shards as shards

_close = shards.ShardWriter.close


def close(self):
    stats = _close(self)
    mark = Path(os.environ["CURATE_FAULT_MARK"])
    if self.shard_id == 0 and not mark.exists():
        mark.write_text(str(os.getpid()))
        time.sleep(600)
    return stats


shards.ShardWriter.close = close
'''


def _snakemake(workdir, env, *args, background=False):
    command = [
        SNAKEMAKE,
        "--snakefile",
        str(ROOT / "Snakefile"),
        "--configfile",
        str(ROOT / "config.yaml"),
        str(workdir / "fault.yaml"),
        "--directory",
        str(workdir),
        "--cores",
        "1",
        "--workflow-profile",  # not profiles/default, which sets rerun-incomplete: the flags below say it
        "none",
        *args,
    ]
    if background:  # its own process group, so that the kill takes the job with it
        return subprocess.Popen(
            command, cwd=workdir, env=env, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
    return subprocess.run(command, cwd=workdir, env=env, capture_output=True, text=True, timeout=300)


def test_kill_mid_rule_then_rerun_is_byte_identical(tmp_path):
    workdir, plugins = tmp_path / "run", tmp_path / "plugins"
    workdir.mkdir()
    plugins.mkdir()
    (plugins / "pause_after_first_shard.py").write_text(PAUSE_PLUGIN)
    (workdir / "fault.yaml").write_text(
        yaml.safe_dump({"pools": {"synthetic-tiny": POOL}, "plugins": ["pause_after_first_shard"]})
    )
    mark = tmp_path / "paused"
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join(filter(None, [str(plugins), str(ROOT), os.environ.get("PYTHONPATH")])),
        CURATE_FAULT_MARK=str(mark),
        HF_HUB_OFFLINE="1",
        NO_ALBUMENTATIONS_UPDATE="1",
    )
    chunk = Path("data/pools/synthetic-tiny/shards/00000")

    run = _snakemake(workdir, env, str(chunk), background=True)
    try:
        deadline = time.monotonic() + 240
        while not mark.exists() and run.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert mark.exists(), run.stdout.read().decode()[-3000:] if run.poll() is not None else "the job never paused"
    finally:
        os.killpg(run.pid, signal.SIGKILL)  # kill -9 of Snakemake and its job, mid-rule
        run.wait()
        run.stdout.close()
    written = sorted(p.name for p in (workdir / chunk).iterdir())
    assert "00000000.tar" in written and "00000001.tar" not in written  # half of the chunk

    plain = _snakemake(workdir, env, str(chunk))  # the half-written chunk is not taken as done
    assert plain.returncode != 0 and "IncompleteFilesException" in plain.stderr and "--rerun-incomplete" in plain.stderr
    locked = _snakemake(workdir, env, "--rerun-incomplete", str(chunk))  # the killed run's lock is still there
    assert locked.returncode != 0 and "cannot be locked" in locked.stderr
    unlock = _snakemake(workdir, env, "--unlock")  # safe: no other Snakemake runs in workdir
    assert unlock.returncode == 0, unlock.stderr[-3000:]
    rerun = _snakemake(workdir, env, "--rerun-incomplete", str(chunk))
    assert rerun.returncode == 0, (rerun.stdout + rerun.stderr)[-3000:]

    # byte-identical to the chunk built without interruption
    entry = yaml.safe_load((ROOT / "config" / "pools.yaml").read_text())["pools"]["synthetic-tiny"]
    reference = tmp_path / "reference"
    write_pool_chunk(
        reference / "shards",
        reference / "ground_truth.parquet",
        0,
        [0, 1],
        POOL["samples_per_shard"],
        entry["noise_rates"],
        entry["seed"],
        entry["image_size"],
        entry["sign_rate"],
    )
    names = sorted(p.name for p in (reference / "shards").iterdir())
    assert sorted(p.name for p in (workdir / chunk).iterdir() if not p.name.startswith(".snakemake")) == names
    _, mismatch, errors = filecmp.cmpfiles(reference / "shards", workdir / chunk, names, shallow=False)
    assert mismatch == [] and errors == []
    truth = workdir / "data/ground_truth/synthetic-tiny/00000.parquet"
    assert filecmp.cmp(reference / "ground_truth.parquet", truth, shallow=False)
