"""A real single-node SLURM for the tests of profiles/slurm: started once per session by
cluster/slurm-up.sh and stopped by cluster/slurm-down.sh afterwards (unless it was already up,
or CURATE_SLURM_KEEP=1)."""

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
STATE_DIR = Path(os.environ.get("CURATE_SLURM_STATE", "/run/curate-slurm"))
DAEMONS = ("munged", "slurmctld", "slurmd")


def pytest_configure(config):
    config.addinivalue_line("markers", "slurm: runs jobs through a real local SLURM (cluster/slurm-up.sh; root, apt)")


def _running(name):
    """Whether slurm-up.sh's recorded PID for `name` is alive and still that program."""
    try:
        pid = (STATE_DIR / f"{name}.pid").read_text().strip()
        return Path(f"/proc/{pid}/comm").read_text().strip() == name
    except (OSError, ValueError):
        return False


def default_partition():
    out = subprocess.run(["sinfo", "-h", "-o", "%P"], capture_output=True, text=True, check=True).stdout
    names = [line.strip() for line in out.splitlines() if line.strip().endswith("*")]
    assert names, f"no default partition in sinfo output: {out!r}"
    return names[0].rstrip("*")


@pytest.fixture(scope="session")
def slurm_cluster():
    """Start the local SLURM; skip (saying why) only when its packages cannot be installed."""
    was_up = all(_running(name) for name in DAEMONS)
    up = subprocess.run(["bash", str(ROOT / "cluster" / "slurm-up.sh")], capture_output=True, text=True, timeout=600)
    output = (up.stdout + up.stderr).strip()
    if up.returncode == 2:
        pytest.skip(f"no local SLURM: cluster/slurm-up.sh could not install or run it: {output[-1500:]}")
    assert up.returncode == 0, f"cluster/slurm-up.sh failed (exit {up.returncode}):\n{output[-4000:]}"
    yield {"partition": default_partition(), "up_log": output}
    if not was_up and os.environ.get("CURATE_SLURM_KEEP") != "1":
        subprocess.run(["bash", str(ROOT / "cluster" / "slurm-down.sh")], capture_output=True, timeout=120)
