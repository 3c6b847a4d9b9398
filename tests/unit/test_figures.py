"""Figures: which a scale can draw, the quantities they show, and PNGs written from small fabricated inputs."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from curate.data.subset import save_subset
from curate.reporting.figures import curve_values, draw, repetition_histogram, score_disparity
from curate.workflow.config import load_config
from curate.workflow.figure_plans import figure_plan, figure_plans
from curate.workflow.workspace import Workspace

ROOT = Path(__file__).resolve().parents[2]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def uid(i):
    return f"{i:032x}"


def test_repetition_histogram_counts_samples_by_how_often_they_appear():
    subset = np.sort(np.array([(0, 1), (0, 1), (0, 1), (0, 2), (0, 3), (0, 3)], dtype="u8,u8"))
    assert repetition_histogram(subset) == {1: 1, 2: 1, 3: 1}
    assert repetition_histogram(np.zeros(0, dtype="u8,u8")) == {}


def test_score_disparity_is_the_row_std_of_pool_min_max_normalised_scores():
    S = np.array([[0.0, 10.0], [1.0, 20.0], [2.0, 10.0]])
    # normalised: [[0, 0], [0.5, 1], [1, 0]] -> unbiased std per row
    assert score_disparity(S) == pytest.approx([0.0, np.std([0.5, 1], ddof=1), np.std([1, 0], ddof=1)])


def record(key, main):
    return {"key": key, "dataset": key, "metrics": {"main_metric": main}}


def test_curve_values_read_the_suites_analogue_in_percent():
    suite = {
        "groups": {"G": ["objects", "shape"]},
        "paper_metrics": {"imagenet_acc1": {"task": "objects"}, "average": {"group": "Average"}},
    }
    points = [{"series": "s", "x": 30, "evaluation": "b"}, {"series": "s", "x": 10, "evaluation": "a"}]
    records = {"a": [record("objects", 0.1), record("shape", 0.3)], "b": [record("objects", 0.2), record("shape", 0.5)]}
    values = curve_values(points, records, suite, "imagenet_acc1")
    assert values["x"].tolist() == [10, 30]
    assert values["value"].tolist() == pytest.approx([10.0, 20.0])
    assert curve_values(points, records, suite, "average")["value"].tolist() == pytest.approx([20.0, 35.0])


@pytest.fixture(scope="module")
def tiny():
    return load_config(ROOT) | {"data_root": "D"}


def test_at_tiny_every_figure_is_planned_and_shares_runs(tiny):
    plans = figure_plans(Workspace(tiny))
    assert sorted(plans) == sorted(tiny["figures"])
    sieve = plans["sieve_figure4"]["params"]["points"]
    assert [(p["series"], p["x"]) for p in sieve] == [("CLIP score (L/14)", x) for x in (10, 20, 30, 40, 50)] + [
        ("Sieve", x) for x in (10, 15, 20)
    ]
    assert sieve[2]["evaluation"] == "D/evals/synthetic-tiny/clip_score_clean_30/tiny-clip/synthetic.jsonl"
    assert sieve[-1]["evaluation"] == "D/evals/synthetic-tiny/sieve_top20/tiny-clip/synthetic.jsonl"
    flyt = plans["flyt_figure3"]["params"]["points"]
    assert flyt[2]["evaluation"] == "D/evals/synthetic-tiny/single_clean_scs/tiny-clip/synthetic.jsonl"
    noise = plans["noise_scores"]
    assert len(noise["inputs"]["ground_truth"]) == 4 and len(noise["inputs"]["scores"]) == 12


def test_a_figure_the_pool_cannot_give_is_left_out(tiny):
    config = json.loads(json.dumps(tiny))
    config["pools"]["synthetic-tiny"]["source"] = "img2dataset"  # no ground truth
    config["scorers"].pop("sieve-tiny")  # no Sieve score: the curve keeps its CLIP score series
    assert figure_plan(Workspace(config), "noise_scores") is None
    assert {p["series"] for p in figure_plan(Workspace(config), "sieve_figure4")["params"]["points"]} == {
        "CLIP score (L/14)"
    }
    config["selections"] = {k: v for k, v in config["selections"].items() if not k.startswith("clip_score_l14")}
    assert figure_plan(Workspace(config), "sieve_figure4") is None
    assert figure_plan(Workspace(config), "flyt_figure3") is not None


def assert_png(path):
    data = Path(path).read_bytes()
    assert data[:8] == PNG_MAGIC and len(data) > 5000


def test_draw_every_figure_type_from_fabricated_inputs(tmp_path):
    rng = np.random.default_rng(0)
    # curve
    suite = {
        "groups": {"G": ["objects"]},
        "paper_metrics": {"imagenet_acc1": {"task": "objects"}, "average": {"group": "Average"}},
    }
    points, evaluations = [], []
    for x in (10, 20, 30):
        path = tmp_path / f"e{x}.jsonl"
        path.write_text(json.dumps(record("objects", x / 100)) + "\n")
        points.append({"series": "CLIP score", "x": x, "evaluation": str(path)})
        evaluations.append(str(path))
    draw(
        "curve",
        {"evaluations": evaluations},
        {
            "title": "t",
            "points": points,
            "metrics": ["imagenet_acc1", "average"],
            "x_label": "kept (%)",
            "suite": suite,
            "scale": "tiny",
        },
        tmp_path / "curve.png",
    )
    assert_png(tmp_path / "curve.png")
    # repetitions
    subset = tmp_path / "s.npy"
    save_subset(subset, [uid(i % 7) for i in range(30)])
    draw("repetitions", {"subsets": [str(subset)]}, {"title": "t", "labels": ["SCS"]}, tmp_path / "rep.png")
    assert_png(tmp_path / "rep.png")
    # disparity and noise scores: two scorers, two chunks each (scorer-major)
    uids = [uid(i) for i in range(200)]
    scores = []
    for scorer in ("a", "b"):
        for chunk in range(2):
            path = tmp_path / f"{scorer}{chunk}.parquet"
            part = uids[chunk * 100 : (chunk + 1) * 100]
            pd.DataFrame({"uid": part, "clip_score": rng.random(100).astype("float32")}).to_parquet(path)
            scores.append(str(path))
    draw("disparity", {"scores": scores}, {"title": "t", "scorers": ["a", "b"], "n_chunks": 2}, tmp_path / "disp.png")
    assert_png(tmp_path / "disp.png")
    truth = []
    for chunk in range(2):
        path = tmp_path / f"gt{chunk}.parquet"
        part = uids[chunk * 100 : (chunk + 1) * 100]
        pd.DataFrame(
            {
                "uid": part,
                "is_clean": [i % 2 == 0 for i in range(100)],
                "noise_type": ["clean" if i % 2 == 0 else "gibberish" for i in range(100)],
            }
        ).to_parquet(path)
        truth.append(str(path))
    draw(
        "noise_scores",
        {"scores": scores, "ground_truth": truth},
        {"title": "t", "scorers": ["a", "b"], "n_chunks": 2},
        tmp_path / "noise.png",
    )
    assert_png(tmp_path / "noise.png")
