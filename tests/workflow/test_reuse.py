"""What a researcher already has, through the workflow: an existing DataComp download read where
it is (`layout: datacomp`, `root:`), DataComp's precomputed CLIP scores and features read as
scorers (`library: metadata`, the pool's `precomputed`), and a subset made elsewhere
(`method: uids_file`) trained, evaluated, in a table row and a submission."""

import hashlib
import json
import re

import numpy as np
import pandas as pd
import pytest
import yaml

from curate.data.subset import u8u8_to_uids, uids_to_u8u8
from curate.selection.sampling import top_fraction
from tests.unit.inplace_fixtures import uid_of, write_datacomp_download

pytestmark = pytest.mark.workflow

FILE_ROWS, SPS, FAILED = (60, 45), 20, (3, 10, 17, 24, 61, 99)
N_SHARDS = 6  # 60 rows -> 3 shards, 45 -> 3 shards (img2dataset cuts each file on its own)


def pool_entry(root):
    return {
        "source": "datacomp",
        "layout": "datacomp",
        "root": str(root),
        "n_shards": N_SHARDS,
        "samples_per_shard": SPS,
        "shards_per_chunk": 2,
        "precomputed": {"openai-clip-l14": "datacomp-clip-l14", "openai-clip-b32": "datacomp-clip-b32"},
    }


def reuse_scale(root, **tables) -> dict:
    """A scale of the download read in place (no stand-ins: the papers' scorers are its own)."""
    return {
        "scale": "reuse",
        "scales": {
            "reuse": {
                "pool": "dc-local",
                "recipe": "tiny-clip",
                "suite": "synthetic",
                "tables": {"table1": ["no_filter"], "table2": ["no_filter"]} | tables,
            }
        },
        "pools": {"dc-local": pool_entry(root)},
    }


def snapshot(root):
    return {
        p.relative_to(root).as_posix(): (p.stat().st_mtime_ns, hashlib.sha256(p.read_bytes()).hexdigest())
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def job_counts(result):
    return {k: int(v) for k, v in re.findall(r"^(\w+)\s+(\d+)$", result.stdout + result.stderr, re.M)}


@pytest.fixture
def download(tmp_path):
    root = tmp_path / "datacomp_small"  # DataComp's download_upstream.py --data_dir
    info = write_datacomp_download(root, FILE_ROWS, SPS, failed=FAILED)
    return root, info


def test_an_existing_download_and_its_precomputed_scores_need_no_model(tmp_path, download, snakemake_run):
    """A CLIP-score subset and an s-CLIPLoss score on OpenAI L/14, from the download in place: the
    chunks are indexed (links, not copies), the scores and embeddings read from the metadata; no
    scoring job, no model, nothing written under root."""
    root, info = download
    before = snapshot(root)
    overlay = tmp_path / "reuse.yaml"
    overlay.write_text(
        yaml.safe_dump(
            reuse_scale(root)
            | {
                "scorers": {
                    "s-clip-loss-l14": {
                        "library": "embedding",
                        "method": "s_clip_loss",
                        "embeddings": "openai-clip-l14",
                        "batch_size": 16,
                    }
                },
            }
        )
    )
    work = tmp_path / "run"
    work.mkdir()
    targets = [
        "data/subsets/dc-local/clip_score_openai_l14_30.npy",
        "data/scores/dc-local/s-clip-loss-l14/00001.parquet",
    ]
    result = snakemake_run(work, "--cores", "2", "--", *targets, configfiles=[overlay], timeout=900)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    jobs = job_counts(result)
    assert jobs["index_pool_chunk"] == 3 and jobs["index_pool_metadata"] == 1
    assert jobs["metadata_score_chunk"] == 3 and jobs["metadata_embed_chunk"] == 1
    assert not {"score_chunk", "fetch_model", "download_pool_chunk", "fetch_pool_metadata"} & set(jobs)
    assert snapshot(root) == before
    chunk = work / "data/pools/dc-local/shards/00000"
    assert all(p.is_symlink() for p in chunk.glob("*.tar"))
    # the subset: DataComp's top 30 % by OpenAI L/14 among the downloaded samples
    rows = [r for r in range(sum(FILE_ROWS)) if r not in FAILED]
    scores = info["scores"]["clip_l14_similarity_score"][rows]
    expected = sorted(uid_of(rows[i]) for i in top_fraction(scores, 0.3))
    subset = np.load(work / targets[0])
    assert u8u8_to_uids(subset) == expected
    s_clip = pd.read_parquet(work / targets[1])
    assert list(s_clip.columns) == ["uid", "s_clip_loss"] and len(s_clip) == 40 - 1  # chunk 1: rows 40..79; 61 failed


@pytest.mark.slow
def test_a_subset_made_elsewhere_trains_evaluates_and_is_a_table_row_and_a_submission(
    tmp_path, download, snakemake_run
):
    root, _ = download
    mine = [uid_of(r) for r in (5, 40, 41, 41, 70, 100)] + [
        uid_of(3),
        "f" * 32,
    ]  # a repeat; a failed row; not in the pool
    pd.DataFrame({"uid": mine}).to_csv(tmp_path / "mine.csv", index=False)
    overlay = tmp_path / "reuse.yaml"
    overlay.write_text(
        yaml.safe_dump(
            reuse_scale(root, table1=["no_filter", "mine"])
            | {
                "selections": {"mine": {"method": "uids_file", "path": str(tmp_path / "mine.csv"), "max_missing": 0.5}},
                "recipes": {"tiny-clip": {"samples_seen": 256, "epochs": 1, "batch_size": 64}},
            }
        )
    )
    work = tmp_path / "run"
    work.mkdir()
    submission = "results/submissions/dc-local/mine/tiny-clip/synthetic/info.json"
    result = snakemake_run(work, "--cores", "2", "--", "results/table1.csv", submission, configfiles=[overlay])
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    log = (work / "data/logs/select_subset/dc-local/mine.log").read_text()
    assert "8 uids, 7 unique, 1 repeats" in log and "not sorted (written sorted)" in log
    assert u8u8_to_uids(np.load(work / "data/subsets/dc-local/mine.npy")) == sorted(mine)
    reshard = json.loads((work / "data/reshards/dc-local/mine/meta.json").read_text())
    assert reshard["written"] == 6 and reshard["missing_uids"] == 2  # the failed download and the stranger
    log = (work / "data/logs/reshard_subset/dc-local/mine.log").read_text()
    assert "1 of its 7 uids are listed by the pool as failed downloads" in log  # counted, not held against it
    assert "1 of its 7 uids (14.29%) are not among the pool's samples" in log  # within max_missing 0.5
    table = pd.read_csv(work / "results/table1.csv")
    row = table[table["selection"] == "mine"].iloc[0]
    assert row["absent_uids"] == 2
    info = json.loads((work / submission).read_text())
    assert info["selection"] == "mine"
    uids = np.load(work / submission.replace("info.json", "uids.npy"))
    assert u8u8_to_uids(uids) == sorted(mine) and uids.dtype == uids_to_u8u8([]).dtype
