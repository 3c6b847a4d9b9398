"""Fixtures shared by the unit tests."""

from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def config():
    """The repository's config.yaml, freshly parsed (tests may change their copy)."""
    return yaml.safe_load((ROOT / "config.yaml").read_text())
