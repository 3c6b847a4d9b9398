"""Fixtures of the fault suite: a few shards of the synthetic pool (built once), a way to run a
rule's script as Snakemake would (its `snakemake` object), the workflow's config."""

import copy
import runpy
import shutil
import tarfile
from pathlib import Path

import pytest
import yaml

from curate.data.integrity import Tolerances, set_tolerances
from curate.data.synthetic.pool import write_pool_chunk
from curate.workflow.config import load_config

ROOT = Path(__file__).resolve().parents[2]
SAMPLES_PER_SHARD = 40


@pytest.fixture(autouse=True)
def _no_tolerance_left_behind():
    """Each test starts (and leaves) the process with nothing tolerated, as outside a job."""
    set_tolerances(Tolerances())
    yield
    set_tolerances(Tolerances())


@pytest.fixture(scope="session")
def _built_pool(tmp_path_factory):
    root = tmp_path_factory.mktemp("synthetic")
    entry = yaml.safe_load((ROOT / "config" / "pools.yaml").read_text())["pools"]["synthetic-tiny"]
    write_pool_chunk(
        out_dir=root / "shards" / "00000",
        ground_truth_path=root / "ground_truth.parquet",
        chunk_index=0,
        shard_ids=[0, 1],
        samples_per_shard=SAMPLES_PER_SHARD,
        noise_rates=entry["noise_rates"],
        seed=entry["seed"],
        image_size=entry["image_size"],
        sign_rate=entry["sign_rate"],
    )
    return root / "shards" / "00000"


@pytest.fixture
def pool(_built_pool, tmp_path):
    """A fresh copy of one chunk of the synthetic pool: two shards of 40 samples, each with its
    parquet, _stats.json and checksum record. Returns the chunk folder."""
    folder = tmp_path / "pools" / "synthetic-tiny" / "shards" / "00000"
    shutil.copytree(_built_pool, folder)
    return folder


def member_offsets(tar_path) -> list[tarfile.TarInfo]:
    with tarfile.open(tar_path) as tar:
        return tar.getmembers()


@pytest.fixture(scope="session")
def _config():
    return load_config(ROOT)


@pytest.fixture
def config(_config):
    """The workflow's complete config (integrity defaults included), a copy."""
    return copy.deepcopy(_config)


class Files(list):
    """A stand-in for Snakemake's named file lists: positional items, and named ones reachable as
    attributes, by name, and through ``keys()``."""

    def __init__(self, *positional, **named):
        super().__init__([*positional, *named.values()])
        self._named = named

    def keys(self):
        return self._named.keys()

    def __getattr__(self, name):
        try:
            return self.__dict__["_named"][name]
        except KeyError:
            raise AttributeError(name) from None

    def __getitem__(self, index):
        return self._named[index] if isinstance(index, str) else super().__getitem__(index)


class FakeSnakemake:
    def __init__(self, config, log, input=None, output=None, params=None, wildcards=None, threads=1):
        self.config = config
        self.log = Files(str(log))
        self.input = input or Files()
        self.output = output or Files()
        self.params = params or Files()
        self.wildcards = wildcards or Files()
        self.threads = threads


def run_script(name: str, snakemake: FakeSnakemake) -> None:
    """Run ``scripts/<name>`` as Snakemake's script directive does, with ``snakemake`` in scope."""
    runpy.run_path(str(ROOT / "scripts" / name), init_globals={"snakemake": snakemake}, run_name="__main__")
