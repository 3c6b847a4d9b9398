import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from curate.workflow.config import assemble_config

ROOT = Path(__file__).resolve().parents[2]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))


def run_snakemake(workdir, *args, timeout=1800, configfiles=(), hub_offline=True):
    """Run the repo's workflow with `workdir` as working directory (outputs land there), its
    config.yaml and then ``configfiles`` merged over it. ``hub_offline=False`` lets jobs reach the
    config's ``hub_endpoint`` (a loopback Hub)."""
    command = [
        SNAKEMAKE,
        "--snakefile",
        str(ROOT / "Snakefile"),
        "--configfile",
        str(ROOT / "config.yaml"),
        *map(str, configfiles),
        "--directory",
        str(workdir),
        *args,
    ]
    env = dict(
        os.environ, HF_HUB_OFFLINE="1" if hub_offline else "0", NO_ALBUMENTATIONS_UPDATE="1", WANDB_MODE="disabled"
    )
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env, cwd=workdir)


@pytest.fixture
def snakemake_run():
    return run_snakemake


def user_config() -> dict:
    """config.yaml over the catalogues and generated entries: what a test changes and writes as
    its --configfile."""
    return assemble_config(yaml.safe_load((ROOT / "config.yaml").read_text()), ROOT)
