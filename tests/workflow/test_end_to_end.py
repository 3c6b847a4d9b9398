"""The whole default chain on the synthetic pool, in a temporary folder, with sanity that can fail."""

import glob
import json
from pathlib import Path

import pandas as pd
import pytest

from curate.data.subset import load_subset
from tests.workflow.conftest import user_config

pytestmark = [pytest.mark.workflow, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
CONFIG = user_config()
POOL = CONFIG["scales"]["tiny"]["pool"]


@pytest.fixture(scope="module")
def run(tmp_path_factory, request):
    from tests.workflow.conftest import run_snakemake

    workdir = tmp_path_factory.mktemp("tiny_run")
    result = run_snakemake(workdir, "--cores", "2")
    assert result.returncode == 0, (result.stdout + result.stderr)[-5000:]
    return workdir, result


@pytest.fixture(scope="module")
def table(run):
    workdir, _ = run
    return pd.read_csv(workdir / "results" / "table1.csv").set_index("selection")


@pytest.fixture(scope="module")
def truth(run):
    workdir, _ = run
    files = sorted(glob.glob(str(workdir / "data" / "ground_truth" / POOL / "*.parquet")))
    return pd.concat([pd.read_parquet(path) for path in files], ignore_index=True)


def chance(workdir, task):
    classnames = workdir / "data" / "tasks" / "synthetic" / task / "classnames.txt"
    return 1 / len(classnames.read_text().split("\n"))


def test_run_says_where_the_table_is(run):
    workdir, result = run
    assert str((workdir / "results" / "table1.csv").resolve()) in result.stdout + result.stderr


def test_every_selection_is_a_row(table):
    assert list(table.index) == CONFIG["tables"]["table1"]["selections"]


def test_oracle_has_precision_one(table, truth):
    assert table.loc["oracle", "precision"] == 1.0
    assert table.loc["oracle", "unique_uids"] == truth["is_clean"].sum()


def test_no_filter_precision_is_the_pool_clean_rate(table, truth):
    listed = truth[truth["noise_type"] != "missing_uid"]  # a sample without a uid cannot be selected
    assert table.loc["no_filter", "unique_uids"] == len(listed)
    assert table.loc["no_filter", "precision"] == pytest.approx(listed["is_clean"].mean(), abs=1e-4)
    assert table.loc["no_filter", "recall"] == 1.0


def test_clip_score_filter_beats_no_filter(table):
    for selection in ("clip_score_clean_30", "clip_score_weak_30"):
        assert table.loc[selection, "precision"] > table.loc["no_filter", "precision"] + 0.1


def test_trained_models_beat_chance(run, table):
    workdir, _ = run
    for task in ("objects", "colour"):
        assert (table[task] > 1.5 * chance(workdir, task)).all(), table[task]
    assert table.loc["clip_score_clean_30", "Average"] > table.loc["no_filter", "Average"]


def test_bad_samples_are_counted_not_dropped_silently(run, truth):
    workdir, _ = run
    reports = [
        json.loads(Path(p).read_text())
        for p in glob.glob(str(workdir / "data" / "scores" / POOL / "tiny-clip-clean" / "*.report.json"))
    ]
    for reason in ("corrupt_image", "empty_caption", "missing_uid"):
        assert sum(r["skipped"][reason] for r in reports) == (truth["noise_type"] == reason).sum()
    assert (
        sum(r["kept"] for r in reports)
        == len(truth) - truth["noise_type"].isin(["corrupt_image", "empty_caption", "missing_uid"]).sum()
    )


def test_reshards_hold_the_subsets(run):
    workdir, _ = run
    for selection in CONFIG["tables"]["table1"]["selections"]:
        subset = load_subset(workdir / "data" / "subsets" / POOL / f"{selection}.npy")
        meta = json.loads((workdir / "data" / "reshards" / POOL / selection / "meta.json").read_text())
        assert meta["subset_size"] == len(subset)
        assert meta["written"] + meta["missing_uids"] == len(subset)  # no repeats in these subsets


def test_a_second_run_has_nothing_to_do(run, snakemake_run):
    workdir, _ = run
    result = snakemake_run(workdir, "-n", "--cores", "2")
    assert result.returncode == 0
    assert "Nothing to be done" in result.stdout + result.stderr


def kept_truth(workdir, truth, selection):
    from curate.data.subset import u8u8_to_uids

    uids = set(u8u8_to_uids(load_subset(workdir / "data" / "subsets" / POOL / f"{selection}.npy")))
    return truth[truth["uid"].isin(uids)]


def test_datacomp_baselines_drop_what_they_look_for(run, truth):
    workdir, _ = run
    basic = kept_truth(workdir, truth, "basic_filter")
    assert len(basic) > 0.5 * len(truth)
    # English, long enough, not tiny, not extreme in aspect: these noise types are gone
    assert basic["noise_type"].isin(["non_english", "tiny_image", "extreme_aspect"]).mean() < 0.01
    text_based = kept_truth(workdir, truth, "text_based")
    assert text_based["noise_type"].isin(["non_english", "gibberish"]).mean() < 0.01
    # the CLIP half of image_based ∩ clip_score is the whole pool's top 30 %, so it never keeps
    # a sample the plain CLIP-score filter of the same scorer drops
    both = set(kept_truth(workdir, truth, "image_based_clip_score_30")["uid"])
    assert both <= set(kept_truth(workdir, truth, "clip_score_clean_30")["uid"])
    assert both <= set(kept_truth(workdir, truth, "image_based")["uid"])
