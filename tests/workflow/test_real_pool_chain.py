"""The real-pool rules end to end on a loopback HTTP server: metadata (as if fetched) prepared
with made uids, split, two chunks downloaded by img2dataset through the download rule, scored by
a "pretrained" scorer (a tiny open_clip model in the fetched-model folder) and selected from,
downstream rules reading each chunk through its download report."""

import json
import os
import subprocess

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from tests.unit.model_fixtures import export_random_tiny_model
from tests.unit.test_download import FAILED, N_SHARDS, SPS, server  # noqa: F401 - the server fixture
from tests.workflow.conftest import ROOT, SNAKEMAKE, user_config

pytestmark = pytest.mark.workflow
POOL = "loopback"


def test_download_score_and_select_a_real_pool(tmp_path, server):  # noqa: F811
    data = tmp_path / "data"
    source = data / "pools" / POOL / "metadata" / "source"
    source.mkdir(parents=True)
    rows = N_SHARDS * SPS
    pq.write_table(
        pa.table({"URL": [server.url(r) for r in range(rows)], "TEXT": [f"caption of row {r}" for r in range(rows)]}),
        source / "part-0.parquet",
    )
    (source / "fetch.json").write_text("{}\n")  # as fetch_pool_metadata leaves it
    export_random_tiny_model(tmp_path / "tiny")
    model_dir = data / "models" / "pretrained" / "tiny-pretrained"
    model_dir.parent.mkdir(parents=True)
    (tmp_path / "tiny" / "model").rename(model_dir)

    config = user_config()
    config["pools"][POOL] = {
        "source": "download",
        "n_shards": N_SHARDS,
        "samples_per_shard": SPS,
        "shards_per_chunk": 1,
        "metadata": {"hf_dataset": "none/offline", "columns": {"url": "URL", "text": "TEXT"}, "uid_from": "url"},
        "download": {"processes": 1, "threads": 4, "retries": 1, "retry_failed": True, "timeout": 5},
    }
    config["models"]["tiny-pretrained"] = {
        "library": "open_clip",
        "arch": "tiny-vit-narrow",
        "pretrained": "unused",
        "sha256": None,
    }
    config["scorers"]["tiny-pretrained"] = {"library": "open_clip", "source": "pretrained", "model": "tiny-pretrained"}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    targets = [
        f"data/scores/{POOL}/tiny-pretrained/00000.parquet",
        f"data/scores/{POOL}/tiny-pretrained/00001.parquet",
        f"data/subsets/{POOL}/no_filter.npy",
    ]
    env = dict(
        os.environ,
        HF_HUB_OFFLINE="1",
        NO_ALBUMENTATIONS_UPDATE="1",
        WANDB_MODE="disabled",
        no_proxy="127.0.0.1,localhost",
        NO_PROXY="127.0.0.1,localhost",
    )
    command = [
        SNAKEMAKE,
        "--snakefile",
        str(ROOT / "Snakefile"),
        "--configfile",
        str(tmp_path / "config.yaml"),
        "--directory",
        str(tmp_path),
        "--cores",
        "2",
        "--",
        *targets,
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=900, env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-4000:]
    jobs = result.stdout + result.stderr
    for rule in ("prepare_pool_metadata", "split_pool_metadata", "download_pool_chunk", "score_chunk"):
        assert f"rule {rule}:" in jobs or f"localrule {rule}:" in jobs, rule
    assert "fetch_pool_metadata" not in jobs and "fetch_model" not in jobs

    # the download reports, one per chunk: every failing url of the server is counted
    reports = [json.loads((data / "pools" / POOL / "shards" / f"{c:05d}.download.json").read_text()) for c in (0, 1)]
    assert [r["n_shards"] for r in reports] == [1, 1] and not any(r["missing_shards"] for r in reports)
    failures = sum(r["count"] - r["successes"] for r in reports)
    # the flaky url succeeds on the retry; no sha256 in this metadata, so the wrong-hash row passes
    assert failures == len(FAILED - {17, 20})
    successes = sum(r["successes"] for r in reports)
    # scored and selected: exactly the downloaded samples, under the made uids
    import pandas as pd

    scores = pd.concat(
        [pd.read_parquet(data / "scores" / POOL / "tiny-pretrained" / f"{c:05d}.parquet") for c in (0, 1)]
    )
    assert len(scores) == successes
    prepared = pd.read_parquet(data / "pools" / POOL / "metadata" / "prepared.parquet")
    assert set(scores["uid"]) <= set(prepared["uid"])
    # no_filter is every uid of the pool's metadata (DataComp's), failed downloads included
    from curate.data.subset import load_subset, uids_to_u8u8

    subset = load_subset(data / "subsets" / POOL / "no_filter.npy")
    np.testing.assert_array_equal(subset, np.sort(uids_to_u8u8(prepared["uid"].tolist())))
