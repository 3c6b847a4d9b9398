"""The bench scale plans as designed: three seeds per row, its own pool and scorers, ten scorers
fused in table2, the claims and ground-truth tables; tiny's plan keeps one seed."""

import re

import pytest

pytestmark = pytest.mark.workflow

BENCH_CHUNKS = 6  # config/pools.yaml synthetic-bench: 48 shards, 8 a chunk


def _jobs(result) -> dict:
    return {k: int(v) for k, v in re.findall(r"^(\w+)\s+(\d+)$", result.stdout + result.stderr, re.M)}


def _dry_run(snakemake_run, tmp_path, target, *config):
    result = snakemake_run(
        tmp_path, "-n", "--cores", "2", "--config", "scale=bench", *config, "--", target, timeout=600
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return _jobs(result), result.stdout + result.stderr


def test_bench_table1_trains_every_row_with_three_seeds(tmp_path, snakemake_run):
    jobs, out = _dry_run(snakemake_run, tmp_path, "results/table1.csv")
    assert jobs["table1"] == 1 and jobs["select_subset"] == 10
    assert jobs["train_clip"] == jobs["evaluate_model"] == 30  # 10 selections x 3 seeds
    assert jobs["synthesize_pool_chunk"] == BENCH_CHUNKS
    assert jobs["train_scorer"] == 3  # the clean, reading and weak bench CLIPs
    assert "bench-clip.seed2" in out and "models/synthetic-tiny" not in out


def test_tiny_table1_keeps_one_seed(tmp_path, snakemake_run):
    result = snakemake_run(tmp_path, "-n", "--cores", "2", "--", "results/table1.csv")
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = _jobs(result)
    assert jobs["train_clip"] == jobs["evaluate_model"] == jobs["select_subset"] == 10
    assert ".seed1" not in result.stdout + result.stderr


def test_bench_table2_fuses_ten_scorers_among_them_trained_itm_models(tmp_path, snakemake_run):
    jobs, out = _dry_run(snakemake_run, tmp_path, "results/table2.csv")
    assert jobs["table2"] == 1
    assert jobs["train_scorer"] == 7 and jobs["train_itm_scorer"] == 3
    assert jobs["itm_score_chunk"] == 3 * BENCH_CHUNKS
    # every table2 row x 3 seeds, and the IN weights' single-scorer filters of the scorers beyond
    # table2's three (one seed: the IN weights read replicate 0)
    assert jobs["train_clip"] >= 27 * 3
    assert "mixer" in out and "bench-clip-lowres" in out


def test_bench_claims_and_ground_truth_tables(tmp_path, snakemake_run):
    jobs, out = _dry_run(snakemake_run, tmp_path, "results/claims.csv")
    assert jobs["claims"] == 1 and jobs["train_clip"] % 3 == 0
    for target in ("results/noise_kept.csv", "results/precision_vs_average.csv", "results/noise_harm.csv"):
        table = target.rsplit("/", 1)[-1].removesuffix(".csv")
        jobs, _ = _dry_run(snakemake_run, tmp_path, target)
        assert jobs[table] == 1
    # the noise-harm rows are also evaluated on the probe suite
    assert jobs["evaluate_model"] == 2 * jobs["train_clip"] == 2 * 7 * 3


def test_bench_figures_draw_the_ground_truth_tables(tmp_path, snakemake_run):
    jobs, out = _dry_run(snakemake_run, tmp_path, "results/figures/noise_kept.png")
    assert jobs["noise_kept"] == 1
