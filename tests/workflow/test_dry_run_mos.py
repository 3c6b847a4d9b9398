"""Dry runs of MoS's strategies, recipes and suites (issue 6)."""

import re

import pytest

from tests.workflow.conftest import ROOT, user_config

pytestmark = pytest.mark.workflow


def job_counts(result):
    return dict(re.findall(r"^(\w+)\s+(\d+)$", result.stdout + result.stderr, re.M))


def test_tiny_strategies_train_with_the_weighted_clip_recipe(tmp_path, snakemake_run):
    targets = [
        f"data/evals/synthetic-tiny/{selection}/tiny-mos-clip/synthetic.jsonl"
        for selection in ("drop10_clean", "weight_clean", "recap_clean", "mos_weight_tiny")
    ]
    result = snakemake_run(tmp_path, "-n", "--cores", "2", "--", *targets)
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = job_counts(result)
    assert jobs["train_weighted_clip"] == "4" and "train_clip" not in jobs
    assert jobs["sample_weights"] == "2" and jobs["recaption_texts"] == "1"
    assert jobs["caption_chunk"] == "4" and jobs["train_captioner"] == "1"
    assert jobs["reshard_subset"] == "4" and jobs["fusion_stats"] == "1"


def test_the_open_clip_recipe_still_trains_with_open_clip_train(tmp_path, snakemake_run):
    result = snakemake_run(tmp_path, "-n", "--cores", "2", "--", "data/models/synthetic-tiny/drop10_weak/tiny-clip")
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = job_counts(result)
    assert jobs["train_clip"] == "1" and "train_weighted_clip" not in jobs


def test_paper_recipe_and_suite_dry_run_from_local_task_folders(tmp_path, snakemake_run):
    """mos-clip (ViT-B/32, weighted loop) evaluated on the mos-clip suite: its tasks are read from
    local clip_benchmark folders under data_root/tasks/mos-clip/, never synthesised."""
    suite = user_config()["suites"]["mos-clip"]
    target = "data/evals/synthetic-tiny/weight_clean/mos-clip/mos-clip.jsonl"
    for task in suite["tasks"]:
        (tmp_path / "data" / "evalsets" / "mos-clip" / task / "test").mkdir(parents=True)
    result = snakemake_run(tmp_path, "-n", "--cores", "2", "--", target)
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = job_counts(result)
    assert jobs["train_weighted_clip"] == "1" and jobs["evaluate_model"] == "1"
    assert "synthesize_task" not in jobs


def test_a_recaption_selection_without_a_captioner_fails_at_start(tmp_path, snakemake_run):
    extra = tmp_path / "bad.yaml"
    extra.write_text("selections:\n  bad: {method: recaption, scorer: tiny-clip-clean, rho: 0.1}\n")
    result = snakemake_run(tmp_path, "-n", "--cores", "1", "--configfile", str(ROOT / "config.yaml"), str(extra))
    assert result.returncode != 0
    assert "captioner" in result.stdout + result.stderr


def test_tiny_llava_builds_its_base_and_evaluates_by_captioning(tmp_path, snakemake_run):
    targets = [
        f"data/evals/synthetic-tiny/{selection}/tiny-mos-llava/synthetic-captioning.jsonl"
        for selection in ("weight_clean", "mos_weight_tiny")
    ]
    result = snakemake_run(tmp_path, "-n", "--cores", "2", "--", *targets)
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = job_counts(result)
    assert jobs["build_llava_base"] == "1" and jobs["train_llava"] == "2" and jobs["evaluate_llava"] == "2"
    assert "evaluate_model" not in jobs and "train_clip" not in jobs and "train_weighted_clip" not in jobs


def test_paper_llava_recipe_assembles_its_base_from_two_fetched_models(tmp_path, snakemake_run):
    config = user_config()
    base, suite = config["recipes"]["mos-llava"]["base"], config["suites"]["mos-llava"]
    for task in suite["tasks"]:
        (tmp_path / "data" / "evalsets" / "mos-llava" / task / "test").mkdir(parents=True)
    result = snakemake_run(
        tmp_path, "-n", "--cores", "2", "--", "data/evals/synthetic-tiny/weight_clean/mos-llava/mos-llava.jsonl"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = job_counts(result)
    assert jobs["build_llava_base"] == "1" and jobs["train_llava"] == "1" and jobs["evaluate_llava"] == "1"
    assert jobs["fetch_model"] == "2"
    for part in ("vision_tower", "language_model"):
        assert f"data/models/pretrained/{base[part]}" in result.stdout + result.stderr


def test_tiny_blip_trains_with_transformers_and_evaluates_on_its_tiny_suite(tmp_path, snakemake_run):
    targets = [
        f"data/evals/synthetic-tiny/{selection}/tiny-mos-blip/synthetic-blip.jsonl"
        for selection in ("no_filter", "drop10_clean", "weight_clean", "mos_drop10_tiny")
    ]
    result = snakemake_run(tmp_path, "-n", "--cores", "2", "--", *targets)
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = job_counts(result)
    assert jobs["train_blip"] == "4" and jobs["evaluate_blip"] == "4"
    assert jobs["synthesize_task"] == str(len(user_config()["suites"]["synthetic-blip"]["tasks"])) == "6"
    assert jobs["sample_weights"] == "1" and int(jobs["synthesize_curated_set"]) >= 1
    for other in ("train_blip_lavis", "evaluate_model", "evaluate_llava", "train_clip", "train_weighted_clip"):
        assert other not in jobs


def test_paper_blip_recipe_runs_lavis_and_reads_local_task_folders(tmp_path, snakemake_run):
    """mos-blip (LAVIS, its own env) evaluated on the mos-blip suite's local task folders."""
    suite = user_config()["suites"]["mos-blip"]
    for task in suite["tasks"]:
        (tmp_path / "data" / "evalsets" / "mos-blip" / task / "test").mkdir(parents=True)
    result = snakemake_run(
        tmp_path, "-n", "--cores", "2", "--", "data/evals/synthetic-tiny/weight_clean/mos-blip/mos-blip.jsonl"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = job_counts(result)
    assert jobs["train_blip_lavis"] == "1" and jobs["convert_blip_lavis"] == "1" and jobs["evaluate_blip"] == "1"
    assert "train_blip" not in jobs and "synthesize_task" not in jobs
    # LAVIS's initialisations are fetched `models`, not downloaded by the training job
    assert jobs["fetch_model"] == "2"
    for model in ("deit-base-patch16-224", "bert-base-uncased"):
        assert f"data/models/pretrained/{model}" in result.stdout + result.stderr
    assert "data/models/synthetic-tiny/weight_clean/mos-blip.transformers" in result.stdout + result.stderr
