import re
from pathlib import Path

import pytest

from curate.reporting.papers import load_papers, table_ids
from tests.workflow.conftest import user_config

pytestmark = pytest.mark.workflow

TARGETS = ["results/table1.csv", "results/table2.csv"]


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("scale", ["tiny"])
def test_dry_run(tmp_path, snakemake_run, target, scale):
    result = snakemake_run(tmp_path, "-n", "--cores", "2", "--config", f"scale={scale}", "--", target)
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = dict(re.findall(r"^(\w+)\s+(\d+)$", result.stdout + result.stderr, re.M))
    assert int(jobs["total"]) > 10
    table = target.rsplit("/", 1)[-1].removesuffix(".csv")
    assert jobs[table] == "1"
    if table == "table2":
        # every fusion: statistics once, then chunk by chunk; the IN weights read the evaluations of
        # each input's top-20 % run (table2's own rows), not the scorers' zero-shot accuracy
        assert int(jobs["fusion_stats"]) >= 5
        assert int(jobs["fuse_chunk"]) == 4 * int(jobs["fusion_stats"])
        assert "evaluate_scorer" not in jobs


def test_bad_config_fails_at_start_naming_the_key(tmp_path, snakemake_run):
    result = snakemake_run(tmp_path, "-n", "--cores", "1", "--config", "threads=0")
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "threads" in output and "minimum" in output


def test_tiny_run_fetches_nothing(tmp_path, snakemake_run):
    result = snakemake_run(tmp_path, "-n", "--cores", "2", "--", "results/table1.csv", "results/table2.csv")
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = dict(re.findall(r"^(\w+)\s+(\d+)$", result.stdout + result.stderr, re.M))
    assert not [rule for rule in jobs if rule.startswith(("fetch_", "download_", "split_pool", "prepare_pool"))]


# chunks per DataComp pool: n_shards / shards_per_chunk in config.yaml
REAL_CHUNKS = {"small": 128, "medium": 256, "large": 512, "xlarge": 640}


@pytest.mark.parametrize("scale", list(REAL_CHUNKS))
def test_dry_run_real_scale(tmp_path, snakemake_run, scale):
    """results/table1.csv on a DataComp pool: metadata fetched and split once, every chunk
    downloaded; OpenAI's L/14 and B/32 CLIP scores read from DataComp's metadata (the pool's
    `precomputed`: one layout job, then a CPU job per chunk and scorer), so no GPU scoring job and
    no model fetched; 40 evaluation tasks."""
    result = snakemake_run(
        tmp_path,
        "-n",
        "--quiet",
        "rules",
        "--cores",
        "2",
        "--config",
        f"scale={scale}",
        "--",
        "results/table1.csv",
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = {k: int(v) for k, v in re.findall(r"^(\w+)\s+(\d+)$", result.stdout + result.stderr, re.M)}
    chunks = REAL_CHUNKS[scale]
    assert jobs["fetch_pool_metadata"] == jobs["split_pool_metadata"] == 1
    assert "prepare_pool_metadata" not in jobs  # DataComp's parquet is split as it is
    assert jobs["download_pool_chunk"] == chunks
    assert jobs["metadata_score_chunk"] == 2 * chunks and jobs["index_pool_metadata"] == 1
    assert "score_chunk" not in jobs and "fetch_model" not in jobs  # 256 GPU jobs and 2 models before, at small
    assert jobs["fetch_eval_task"] == 40
    assert jobs["train_clip"] == jobs["evaluate_model"] == jobs["select_subset"] == 3
    assert not [rule for rule in jobs if rule.startswith(("synthesize_", "train_scorer"))]


def test_dry_run_laion100m_draws_its_sample(tmp_path, snakemake_run):
    result = snakemake_run(
        tmp_path,
        "-n",
        "--quiet",
        "rules",
        "--cores",
        "2",
        "--",
        "data/pools/laion100m/shards/00007.download.json",
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = {k: int(v) for k, v in re.findall(r"^(\w+)\s+(\d+)$", result.stdout + result.stderr, re.M)}
    assert jobs == {
        "fetch_pool_metadata": 1,
        "prepare_pool_metadata": 1,
        "split_pool_metadata": 1,
        "download_pool_chunk": 1,
        "total": 4,
    }


# ---- Paper tables, figures, submissions ---------------------------------------------------------

ROOT = Path(__file__).resolve().parents[2]
PAPER_TABLES = {
    paper: [f"results/{paper}/{table}.csv" for p, table in table_ids(load_papers(ROOT / "papers")) if p == paper]
    for paper in ("datacomp", "sieve", "mos", "flyt")
}
SCALES = [s for s in ("tiny", "paper") if s in user_config()["scales"]]


def job_counts(result):
    return dict(re.findall(r"^(\w+)\s+(\d+)$", result.stdout + result.stderr, re.M))


@pytest.mark.parametrize("paper", sorted(PAPER_TABLES))
@pytest.mark.parametrize("scale", SCALES)
def test_dry_run_paper_tables(tmp_path, snakemake_run, paper, scale):
    targets = PAPER_TABLES[paper]
    result = snakemake_run(tmp_path, "-n", "--cores", "2", "--config", f"scale={scale}", "--", *targets)
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = job_counts(result)
    assert jobs["paper_table"] == str(len(targets))


def test_dry_run_papers_and_figures_at_tiny_share_runs(tmp_path, snakemake_run):
    result = snakemake_run(tmp_path, "-n", "--cores", "2", "--config", "scale=tiny", "--", "papers", "figures")
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = job_counts(result)
    assert int(jobs["paper_table"]) == sum(len(t) for t in PAPER_TABLES.values())
    # 7 figures: the 5 curves and mixtures, plus the ground-truth figures noise_kept and
    # precision_vs_average (issue 16), drawn from tables whose runs the papers already train
    assert jobs["figure"] == "7"
    # rows and points that are the same method after stand-ins share a run: the paper tables need
    # 19 (11 of them table1's or table2's), the figures 8 more (CLIP score 10, 40, 50 %; SCS at five
    # alphas), and the IN weights one: the reading scorer's top 20 %, the run that weighs that input
    # (FLYT Table 2, left) and that no paper row at tiny trains; HYPE's sum (FLYT Tables 2 and 10) and
    # the IN weights of HYPE's three scores (the tiny hyperbolic CLIP's, each one's top 20 %) four
    # more. FLYT's Sum, Standardized Sum and IN-weighted r = 8 hold HYPE's scores and no longer
    # share table2's runs, which the paper tables no longer need: no change. The DataComp
    # leaderboard's Density-Based Pruning one more (its own subset); the precision_vs_average figure 6
    # more: table2's six top-20 % fusions (sum, standardised_sum, in_weighted_r8, mean, mos, mflyt),
    # none of which a paper row trains at tiny (FLYT's fusions hold HYPE's scores)
    # FLYT's rows built since (flyt-rows) add 43: 22 E-FLYT runs (Tables 2 and 11-13; DC-1B's and DC
    # medium's initialisations share one at tiny), 9 M-FLYT ones (M-FLYT-Base's plain CE and Tables
    # 8-10's variants that stay distinct after stand-ins), 10 of SCS over M-FLYT-Base (Tables 3 and
    # 14), the two-stage s-CLIPLoss/NormSim filter and DataComp's image-based filter (FLYT's
    # DC-medium reference model stands as table1's unfiltered tiny run)
    assert jobs["train_clip"] == "82"
    # the tiny hyperbolic CLIP: trained once, scores every chunk, each of its columns a scorer
    assert jobs["train_scorer"] == "4" and jobs["hype_score_chunk"] == "4"
    assert jobs["column_score_chunk"] == "12"
    # MoS's rows: 19 weighted-CLIP, 4 LLaVA and 5 BLIP runs (tests/unit/test_paper_tables.py)
    assert jobs["train_weighted_clip"] == "19" and jobs["train_llava"] == "4" and jobs["train_blip"] == "5"


def test_dry_run_submission(tmp_path, snakemake_run):
    target = "results/submissions/synthetic-tiny/clip_score_clean_30/tiny-clip/synthetic/info.json"
    result = snakemake_run(tmp_path, "-n", "--cores", "2", "--", target)
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = job_counts(result)
    assert jobs["submission"] == "1" and jobs["train_clip"] == "1"


def jobs_by_rule(result) -> dict[str, list[dict]]:
    """Each job of a dry run's listing, by rule: its wildcards as a dict."""
    jobs: dict[str, list[dict]] = {}
    for rule, body in re.findall(
        r"^(?:local)?rule (\w+):\n(.*?)(?:\n\n|\Z)", result.stdout + result.stderr, re.M | re.S
    ):
        wildcards = re.search(r"^\s+wildcards: (.*)$", body, re.M)
        pairs = [w.split("=", 1) for w in wildcards.group(1).split(", ")] if wildcards else []
        jobs.setdefault(rule, []).append(dict(pairs))
    return jobs


def test_dry_run_paper_sieve_and_datacomp_baselines_use_the_papers_models(tmp_path, snakemake_run):
    """At the paper scale, Sieve's tables and DataComp's baselines run with the papers' own models
    on real pools: each captioner, sentence encoder and language detector is fetched (BLIP's
    checkpoints converted), the pool is captioned and Sieve-scored, and nothing is trained on the
    synthetic world. The DataComp pools are cut to two chunks each to keep the DAG small."""
    small = tmp_path / "small.yaml"
    small.write_text(
        "pools:\n"
        "  datacomp-medium: {n_shards: 4, shards_per_chunk: 2}\n"
        "  datacomp-large: {n_shards: 4, shards_per_chunk: 2}\n"
    )
    targets = [*PAPER_TABLES["sieve"], "results/datacomp/leaderboard_medium.csv"]
    targets.append("data/subsets/datacomp-medium/text_based_datacomp.npy")
    result = snakemake_run(
        tmp_path, "-n", "--cores", "2", "--config", "scale=paper", "--", *targets, configfiles=[small], timeout=600
    )
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = jobs_by_rule(result)
    fetched = {job["model"] for job in jobs["fetch_model"]}
    assert fetched == {
        "blip-b16-14m",  # Sieve's captioner (its pretraining checkpoint) ...
        "blip-b16-129m",  # ... Table 2's ...
        "git-base-10m",  # ... and Table 3's
        "blip-caption-b16",  # the Hub BLIP captioner whose tokenizer the converted BLIPs use
        "all-minilm-l6-v2",  # Sieve's sentence encoder; Table 4's: CLIP L/14's text tower, BLIP-14M's
        "openai-clip-l14",
        "blip-itm-b16-14m",
        "blip-itm-b16-ft",
        "fasttext-lid176",  # DataComp's basic and text-based filters
        "wordnet",  # the text-based filter's WordNet and ImageNet-21k ids
        "imagenet21k-wordnet-ids",
        "dinov2-l14",  # the leaderboard's Density-Based Pruning clusters DINOv2-L/14 embeddings
    }
    # the LAION filter's CLIP B/32 scores (and the L/14 CLIP scores of Sieve + CLIP) are DataComp's
    # precomputed metadata columns on these pools (`precomputed`): read, no model fetched for them
    assert {job["scorer"] for job in jobs["metadata_score_chunk"]} >= {"datacomp-clip-b32"}
    assert not {job["scorer"] for job in jobs.get("score_chunk", [])} & {"openai-clip-b32", "openai-clip-l14"}
    assert {job["model"] for job in jobs["convert_model"]} == {"blip-b16-14m", "blip-b16-129m", "blip-itm-b16-14m"}
    captioned = {(job["pool"], job["captioner"]) for job in jobs["caption_chunk"]}
    assert captioned == {
        ("datacomp-medium", "blip-b16-14m"),
        ("datacomp-medium", "blip-b16-129m"),
        ("datacomp-medium", "git-base-10m"),
        ("datacomp-large", "blip-b16-14m"),
    }
    assert len(jobs["caption_chunk"]) == 2 * len(captioned)
    assert {job["scorer"] for job in jobs["sieve_score_chunk"]} == {
        "sieve-blip14m",
        "sieve-blip129m",
        "sieve-git",
        "sieve-blip14m-clip-text",
        "sieve-blip14m-blip-text",
        "sieve-blip14m-caps1",
        "sieve-blip14m-caps2",
        "sieve-blip14m-caps4",
    }
    selections = {job["selection"] for job in jobs["select_subset"]}
    assert {
        "basic_filter_datacomp",
        "laion2b_filter",
        "text_based_datacomp",
        "sieve_20",
        "sieve_caps1_20",
    } <= selections
    assert not {"basic_filter", "laion2b", "text_based", "sieve_top20"} & selections  # the tiny pool's settings
    built_here = ("train_captioner", "train_sentence_encoder", "train_langid", "train_scorer", "synthesize_")
    assert not [rule for rule in jobs if rule.startswith(built_here)]


def test_dry_run_score_group_scores_each_chunk_once(tmp_path, snakemake_run):
    """config score_group: the two CLIP-score filters of table1 in ONE job per chunk (each image
    decoded once), no job of their own; nothing else changes. (The pool's precomputed OpenAI
    scores are switched off: with them table1 runs no CLIP at all.)"""
    mine = tmp_path / "group.yaml"
    mine.write_text("score_group: [openai-clip-l14, openai-clip-b32]\npools: {datacomp-small: {precomputed: null}}\n")
    args = ("-n", "--quiet", "rules", "--cores", "2", "--config", "scale=small", "--", "results/table1.csv")
    result = snakemake_run(tmp_path, *args, timeout=600, configfiles=[mine])
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = {k: int(v) for k, v in re.findall(r"^(\w+)\s+(\d+)$", result.stdout + result.stderr, re.M)}
    assert jobs["score_group_chunk"] == REAL_CHUNKS["small"] and "score_chunk" not in jobs
    assert jobs["fetch_model"] == 2 and jobs["train_clip"] == 3
