"""Fixtures shared by the unit tests."""

import copy
from pathlib import Path

import pytest
import yaml

from curate.workflow.config import assemble_config, load_config

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def _complete_config():
    return load_config(ROOT)


@pytest.fixture
def config(_complete_config):
    """The workflow's complete config (config.yaml over the catalogues, every default filled, the
    scale's stand-ins applied), freshly copied (tests may change their copy)."""
    return copy.deepcopy(_complete_config)


@pytest.fixture
def user_config():
    """config.yaml merged over the catalogues and generated entries, as a run starts: not yet
    completed or checked. Tests change it and hand it to `curate.workflow.config.check_config`."""
    return assemble_config(yaml.safe_load((ROOT / "config.yaml").read_text()), ROOT)
