"""Paper tables: stand-ins, shared runs, which rows build and why not, and reported/reproduced/delta."""

import copy
import json
from pathlib import Path

import pandas as pd
import pytest

from curate.registry import ConfigError
from curate.reporting.paper_tables import build_paper_table, make_paper_table, metric_value, paper_metric_spec, to_unit
from curate.reporting.papers import load_papers
from curate.selection.fusion import FUSIONS
from curate.selection.methods import SELECTIONS
from curate.workflow.config import check_config, check_references, load_config
from curate.workflow.paper_rows import (
    NOT_REQUESTED,
    implemented_methods,
    resolve_row,
    resolve_table,
    runs_as,
    table_evaluations,
)
from curate.workflow.paths import Paths
from curate.workflow.scales import apply_stand_ins

ROOT = Path(__file__).resolve().parents[2]
METHODS = implemented_methods()
D = Paths("D")
DATA = Paths("data")


def small_config(scale="tiny"):
    """Two scales: tiny moves rows to the toy pool with stand-ins; paper keeps the rows' pools."""
    return completed(
        {
            "scale": scale,
            "scales": {
                "tiny": {
                    "pool": "toy",
                    "recipe": "toy-clip",
                    "suite": "toy-suite",
                    "stand_ins": {"big-clip": "toy-clean", "small-clip": "toy-weak", "other-clip": "toy-clean"},
                },
                "paper": {"pool": "real", "recipe": "real-recipe", "suite": "real-suite"},  # keeps paper pools by name
                "medium": {"pool": "real", "recipe": "real-recipe", "suite": "real-suite", "keep_paper_pools": True},
            },
            "pools": {"toy": {"source": "synthetic"}, "real": {"source": "img2dataset"}},
            "recipes": {"toy-clip": {}, "real-recipe": {}},
            "suites": {
                "toy-suite": {
                    "groups": {"G1": ["objects"]},
                    "paper_metrics": {"imagenet_acc1": {"task": "objects"}, "average": {"group": "Average"}},
                },
                "real-suite": {"groups": {"ImageNet": ["imagenet1k"]}},
            },
            "scorers": {"toy-clean": {}, "toy-weak": {}},
            "fusions": {
                "toy_sum": {"method": "sum", "scorers": ["toy-weak", "toy-clean"]},
                "paper_sum": {"method": "sum", "scorers": ["big-clip", "small-clip", "other-clip"]},
                "paper_inw": {
                    "method": "in_weighted",
                    "scorers": ["big-clip"],
                    "r": 2,
                    "accuracy": {
                        "suite": "real-suite",
                        "task": "imagenet1k",
                        "recipe": "real-recipe",
                        "selections": {"big-clip": "big_30"},
                    },
                },
            },
            "selections": {
                "no_filter": {"method": "no_filter"},
                "clean_30": {"method": "clip_score", "scorer": "toy-clean", "fraction": 0.3},
                "toy_sum_20": {
                    "method": "fused_score",
                    "fusion": "toy_sum",
                    "sampler": "top_fraction",
                    "fraction": 0.2,
                },
                "big_30": {"method": "clip_score", "scorer": "big-clip", "fraction": 0.3},
                "big_40": {"method": "clip_score", "scorer": "big-clip", "fraction": 0.4},
                "paper_sum_20": {
                    "method": "fused_score",
                    "fusion": "paper_sum",
                    "sampler": "top_fraction",
                    "fraction": 0.2,
                },
                "oracle": {"method": "oracle"},
            },
        }
    )


def completed(config):
    """A config's selections and fusions with their registries' defaults, as the workflow has them."""
    config["selections"] = {n: SELECTIONS.complete(e, f"selections.{n}") for n, e in config["selections"].items()}
    config["fusions"] = {n: FUSIONS.complete(e, f"fusions.{n}") for n, e in config["fusions"].items()}
    return config


def row(selection="big_30", needs=("scorer:big-clip",), **extra):
    return {
        "label": "a row",
        "selection": selection,
        "pool": "real",
        "recipe": "real-recipe",
        "suite": "real-suite",
        "needs": list(needs),
        "reported": {},
    } | extra


# ---------------------------------------------------------------------------------------------
# Stand-ins and shared runs


def test_stand_ins_replace_scorers_dedupe_fusions_and_move_accuracy_to_the_analogue():
    config = small_config()
    original = copy.deepcopy(config)
    resolved = apply_stand_ins(config)
    assert config == original  # pure
    assert resolved["selections"]["big_30"]["scorer"] == "toy-clean"
    assert resolved["fusions"]["paper_sum"]["scorers"] == ["toy-clean", "toy-weak"]
    # the IN weights' per-input filters move with the rows: the scale's suite, recipe and top fraction
    assert resolved["fusions"]["paper_inw"]["accuracy"] == {
        "suite": "toy-suite",
        "task": "objects",
        "recipe": None,
        "fraction": 0.2,
        "selections": None,
    }


def test_a_scale_without_stand_ins_keeping_paper_pools_changes_nothing():
    config = small_config("paper")
    assert apply_stand_ins(config) == config


def test_selections_doing_the_same_after_stand_ins_share_one_run():
    config = apply_stand_ins(small_config())
    assert runs_as(config, "big_30") == "clean_30"
    # a fusion whose stand-ins give the same set of scorers in another order is the same fusion
    assert runs_as(config, "paper_sum_20") == "toy_sum_20"
    assert runs_as(config, "big_40") == "big_40"
    assert runs_as(config, "no_filter") == "no_filter"


# ---------------------------------------------------------------------------------------------
# Which rows build and why not


def test_a_moved_row_is_a_stand_in_run_with_no_delta():
    config = apply_stand_ins(small_config())
    resolved = resolve_row(config, row(), METHODS, D)
    assert resolved["built"] and not resolved["comparable"]
    assert (resolved["pool"], resolved["recipe"], resolved["suite"]) == ("toy", "toy-clip", "toy-suite")
    assert resolved["runs_as"] == "clean_30"
    assert resolved["evaluation"] == "D/evals/toy/clean_30/toy-clip/toy-suite.jsonl"
    assert resolved["stand_ins"] == "big-clip -> toy-clean"
    assert resolved["status"] == "stand-in run on toy (paper: real): no delta"


def test_paper_rows_builds_only_the_rows_it_names_and_keeps_the_others_listed():
    config = apply_stand_ins(small_config())
    table = {"rows": [row(label="kept"), row(label="left out"), row("drop20_x", label="unbuilt", needs=[])]}
    everything = resolve_table(config, table, METHODS, D, "p/t")
    assert [r["built"] for r in everything] == [True, True, False]
    config["paper_rows"] = {"p/t": ["kept", "unbuilt"]}
    chosen = resolve_table(config, table, METHODS, D, "p/t")
    assert [r["label"] for r in chosen] == ["kept", "left out", "unbuilt"]
    assert chosen[0] == everything[0]
    assert not chosen[1]["built"] and chosen[1]["status"] == NOT_REQUESTED and chosen[1]["evaluation"] is None
    assert chosen[2] == everything[2]  # a row that cannot build keeps its own reason
    assert resolve_table(config, table, METHODS, D, "p/other") == everything  # other tables untouched
    config["paper_rows"] = {"p/t": ["kept", "a typo"]}
    with pytest.raises(ValueError, match=r"paper_rows.p/t: no row labelled \['a typo'\]"):
        resolve_table(config, table, METHODS, D, "p/t")


@pytest.mark.parametrize(
    "paper_row, status",
    [
        (row(reproduce=False), "reported only: the method is not disclosed"),
        (
            # (a made-up method: the papers' unbuilt ones get built, density-based-pruning was here)
            row("prune_x", needs=["method:toy-pruning", "method:mos", "scorer:big-clip"]),
            "method not built yet: toy-pruning",
        ),
        (row("dfn", needs=["uids:dfn-medium"]), "published uids not available: dfn-medium"),
        (row("drop20_x", needs=["method:scs"]), "selection not in config: drop20_x"),
        (
            row("big_30", needs=["scorer:hype", "scorer:other", "data:imagenet-train"]),
            "scorer not available: hype, other; data not available: imagenet-train",
        ),
    ],
)
def test_an_unbuilt_row_says_why(paper_row, status):
    resolved = resolve_row(apply_stand_ins(small_config()), paper_row, METHODS, DATA)
    assert not resolved["built"] and resolved["evaluation"] is None and resolved["runs_as"] == ""
    assert resolved["status"] == status


def analogue_config(scale="tiny"):
    """small_config with a weighted-CLIP recipe and a captioning suite that have tiny analogues."""
    config = small_config(scale)
    config["scales"]["tiny"]["use_tiny_analogues"] = True
    config["scales"]["tiny"]["stand_ins"]["paper-captioner"] = "toy-captioner"
    config["recipes"] |= {"paper-weighted": {"tiny_analogue": "toy-weighted"}, "toy-weighted": {}}
    config["suites"] |= {
        "paper-captions": {"groups": {}, "tiny_analogue": "toy-captions"},
        "toy-captions": {"groups": {}},
    }
    config["captioners"] = {"toy-captioner": {}}
    config["selections"] |= {
        "recap_toy": {"method": "recaption", "scorer": "toy-clean", "rho": 0.1, "captioner": "toy-captioner"},
        "recap_big": {"method": "recaption", "scorer": "big-clip", "rho": 0.1, "captioner": "paper-captioner"},
    }
    return completed(config)


def test_with_tiny_analogues_a_moved_row_trains_and_scores_with_its_recipes_and_suites_analogues():
    config = apply_stand_ins(analogue_config())
    weighted = row("big_30", recipe="paper-weighted", suite="paper-captions")
    resolved = resolve_row(config, weighted, METHODS, D)
    assert (resolved["pool"], resolved["recipe"], resolved["suite"]) == ("toy", "toy-weighted", "toy-captions")
    assert resolved["evaluation"] == "D/evals/toy/clean_30/toy-weighted/toy-captions.jsonl"
    # a recipe without an analogue moves to the scale's; an unconfigured one is named, never replaced
    plain = resolve_row(config, row("big_30", suite="paper-captions"), METHODS, DATA)
    assert (plain["recipe"], plain["suite"]) == ("toy-clip", "toy-captions")
    unknown = resolve_row(config, row("big_30", recipe="paper-blip"), METHODS, DATA)
    assert not unknown["built"] and unknown["status"] == "recipe not configured: paper-blip"
    # without the flag every moved row takes the scale's recipe and suite
    config["scales"]["tiny"]["use_tiny_analogues"] = False
    assert resolve_row(config, weighted, METHODS, DATA)["recipe"] == "toy-clip"


def test_a_selections_captioner_has_a_stand_in_and_is_named_where_it_is_missing():
    tiny = apply_stand_ins(analogue_config())
    assert tiny["selections"]["recap_big"] == tiny["selections"]["recap_toy"]
    resolved = resolve_row(
        tiny, row("recap_big", needs=["scorer:big-clip", "captioner:paper-captioner"]), METHODS, DATA
    )
    assert resolved["runs_as"] == "recap_toy"
    assert resolved["stand_ins"] == "big-clip -> toy-clean; paper-captioner -> toy-captioner"
    paper = apply_stand_ins(analogue_config("paper")) | {"scorers": {"big-clip": {}, "toy-clean": {}}}
    status = resolve_row(paper, row("recap_big", needs=[]), METHODS, DATA)["status"]
    assert status == "captioner not available: paper-captioner"


def test_at_the_paper_scale_rows_keep_their_pools_and_unconfigured_things_are_named():
    config = apply_stand_ins(small_config("paper"))
    assert resolve_row(config, row(), METHODS, DATA)["status"] == "scorer not available: big-clip"
    cc3m = row("no_filter", needs=[]) | {"pool": "cc3m"}
    assert resolve_row(config, cc3m, METHODS, DATA)["status"] == "pool not configured: cc3m"
    suite = row("no_filter", needs=[]) | {"suite": "mos-llava"}
    assert resolve_row(config, suite, METHODS, DATA)["status"] == "suite not configured: mos-llava"
    # the selection's own references count too, even where the row's needs forget them
    assert resolve_row(config, row("big_40", needs=[]), METHODS, DATA)["status"] == "scorer not available: big-clip"
    oracle = resolve_row(config, row("oracle", needs=[]), METHODS, DATA)
    assert oracle["status"] == "needs ground truth, which pool real has not"


@pytest.mark.parametrize("scale", ["paper", "medium"])  # `paper` keeps the papers' pools by default
def test_a_row_on_its_own_pool_without_stand_ins_is_compared(scale):
    config = apply_stand_ins(small_config(scale))
    resolved = resolve_row(config, row("no_filter", needs=[]), METHODS, D)
    assert resolved["built"] and resolved["comparable"] and resolved["status"] == "ok"
    assert resolved["evaluation"] == "D/evals/real/no_filter/real-recipe/real-suite.jsonl"


def test_implemented_methods_come_from_the_registries():
    assert {
        "no_filter",
        "clip_score",
        "oracle",
        "fused_score",
        "top_fraction",
        "scs",
        "sum",
        "standardised_sum",
        "in_weighted",
        "mos",
    } <= METHODS
    assert "sieve" in METHODS  # a scorer library
    assert {"sample_weighting", "recaption", "drop_lowest"} <= METHODS  # MoS's strategies
    assert "density_based_pruning" in METHODS  # a DataComp leaderboard entry (docs/algorithms.md §11)


# ---------------------------------------------------------------------------------------------
# Numbers


def record(key, main, **metrics):
    return {"key": key, "dataset": key, "metrics": {"main_metric": main, **metrics}}


def test_metric_value_reads_groups_average_and_task_metrics():
    records = [record("a", 0.2), record("b", 0.4, text_retrieval_recall_at_1=0.9), record("c", None)]
    groups = {"G": ["a", "b"]}
    assert metric_value(records, groups, {"group": "G"}) == pytest.approx(0.3)
    assert metric_value(records, groups, {"group": "Average"}) == pytest.approx(0.3)
    assert metric_value(records, groups, {"task": "b", "metric": "text_retrieval_recall_at_1"}) == 0.9
    assert metric_value(records, groups, {"task": "a"}) == 0.2
    assert metric_value(records, groups, {"task": "c"}) is None
    assert metric_value(records, groups, None) is None
    with pytest.raises(ValueError, match="group 'VTAB'"):
        metric_value(records, groups, {"group": "VTAB"})
    with pytest.raises(ValueError, match="task 'zz'"):
        metric_value(records, groups, {"task": "zz"})


def test_units():
    assert to_unit(0.297, "percent") == pytest.approx(29.7)
    assert to_unit(0.297, "fraction") == 0.297
    assert to_unit(1.18, "cider") == pytest.approx(118.0)
    assert to_unit(None, "percent") is None
    with pytest.raises(ValueError, match="weight"):
        to_unit(0.5, "weight")


def built(evaluation, comparable=True, label="r"):
    return {
        "label": label,
        "scale": "paper",
        "selection": "s",
        "runs_as": "s",
        "pool": "real",
        "recipe": "real-recipe",
        "suite": "real-suite",
        "stand_ins": "",
        "built": True,
        "comparable": comparable,
        "status": "ok" if comparable else "stand-in",
        "evaluation": evaluation,
    }


def test_reported_reproduced_and_delta_in_the_papers_unit_and_decimals():
    table = {
        "unit": "percent",
        "decimals": 1,
        "columns": [
            {"key": "imagenet", "label": "IN", "metric": "imagenet_acc1"},
            {"key": "avg", "label": "Avg", "metric": "average", "decimals": 2},
            {"key": "w", "label": "Weight", "metric": "mflyt_input_weight", "kind": "param", "unit": "weight"},
        ],
        "rows": [
            {"label": "first", "reported": {"imagenet": 27.3, "avg": 32.80, "w": 0.21}},
            {"label": "second", "reported": {"imagenet": 30.0, "avg": None}},
            {"label": "third", "reported": {"imagenet": 17.6, "avg": 25.8}},
        ],
    }
    suites = {"real-suite": {"groups": {"ImageNet": ["imagenet1k"]}}}
    records = {
        "e1": [record("imagenet1k", 0.28049), record("x", 0.4)],
        "e2": [record("imagenet1k", 0.25), record("x", 0.35)],
    }
    rows = [
        built("e1", label="first"),
        built("e2", comparable=False, label="second"),
        {**built(None, label="third"), "built": False, "runs_as": "", "status": "method not built yet: m"},
    ]
    frame = build_paper_table(table, rows, records, suites)
    first, second, third = frame.to_dict("records")
    assert first["imagenet_reported"] == 27.3
    assert first["imagenet_reproduced"] == 28.0  # 28.049 at one decimal
    assert first["imagenet_delta"] == 0.7  # 28.049 - 27.3 = 0.749 -> 0.7
    assert first["avg_reproduced"] == pytest.approx(34.02)  # mean(0.28049, 0.4) = 0.340245 -> 34.02
    assert first["avg_delta"] == pytest.approx(1.22)
    assert first["w_reported"] == 0.21 and pd.isna(first["w_reproduced"]) and pd.isna(first["w_delta"])
    # a stand-in run: reproduced, but never subtracted
    assert second["imagenet_reproduced"] == 25.0 and pd.isna(second["imagenet_delta"])
    assert pd.isna(second["avg_reported"]) and pd.isna(second["avg_delta"])
    assert pd.isna(third["imagenet_reproduced"]) and third["status"] == "method not built yet: m"
    assert list(frame.columns[:7]) == ["label", "scale", "selection", "runs_as", "pool", "recipe", "suite"]
    assert list(frame.columns[-2:]) == ["stand_ins", "status"]


def test_drop_columns_are_computed_from_our_first_row_as_the_paper_does():
    table = {
        "unit": "fraction",
        "decimals": 3,
        "columns": [
            {"key": "imagenet", "label": "IN", "metric": "imagenet_acc1"},
            {"key": "imagenet_drop", "label": "drop", "metric": "imagenet_acc1", "kind": "drop", "of": "imagenet"},
        ],
        "rows": [
            {"label": "all", "reported": {"imagenet": 0.359}},
            {"label": "no x", "reported": {"imagenet": 0.355, "imagenet_drop": 0.004}},
        ],
    }
    suites = {"real-suite": {"groups": {"ImageNet": ["imagenet1k"]}}}
    records = {"e1": [record("imagenet1k", 0.36)], "e2": [record("imagenet1k", 0.35)]}
    frame = build_paper_table(table, [built("e1", label="all"), built("e2", label="no x")], records, suites)
    assert pd.isna(frame.loc[0, "imagenet_drop_reproduced"])
    assert frame.loc[1, "imagenet_drop_reproduced"] == pytest.approx(0.010)
    assert frame.loc[1, "imagenet_drop_delta"] == pytest.approx(0.006)


def test_make_paper_table_writes_every_number_at_its_printed_decimals(tmp_path):
    evaluation = tmp_path / "e.jsonl"
    evaluation.write_text(json.dumps(record("imagenet1k", 0.2)) + "\n")
    table = {
        "unit": "percent",
        "decimals": 2,
        "columns": [{"key": "imagenet", "label": "IN", "metric": "imagenet_acc1"}],
        "rows": [{"label": "r", "reported": {"imagenet": 17.6}}],
    }
    out = tmp_path / "t.csv"
    make_paper_table(table, [built(str(evaluation))], {"real-suite": {"groups": {"ImageNet": ["imagenet1k"]}}}, out)
    text = out.read_text().splitlines()
    assert text[1].split(",")[7:10] == ["17.60", "20.00", "2.40"]
    assert pd.read_csv(out)["status"].tolist() == ["ok"]


# ---------------------------------------------------------------------------------------------
# The real config and papers


@pytest.fixture(scope="module")
def tiny():
    return load_config(ROOT)


@pytest.fixture(scope="module")
def papers():
    return load_papers(ROOT / "papers")


def test_the_resolved_config_is_consistent(tiny):
    check_references(tiny)


def test_a_typo_in_a_paper_scorer_is_still_a_dangling_name(user_config):
    user_config["selections"]["clip_score_l14_30"]["scorer"] = "openai-clip-l41"
    with pytest.raises(ConfigError, match="openai-clip-l41"):
        check_config(user_config)


def status_of(tiny, papers, paper, table, label):
    rows = resolve_table(tiny, papers[paper]["tables"][table], METHODS, DATA)
    return next(r for r in rows if r["label"] == label)


def test_at_tiny_the_rows_whose_method_exists_are_built_and_share_table1_and_table2_runs(tiny, papers):
    assert (
        status_of(tiny, papers, "sieve", "table1", "Medium (128 Million) | CLIPScore")["runs_as"]
        == "clip_score_clean_30"
    )
    assert status_of(tiny, papers, "sieve", "table1", "Large (1.28 Billion) | No Filtering")["runs_as"] == "no_filter"
    # FLYT's fusions hold HYPE's three scores, at tiny the tiny hyperbolic CLIP's (config/scales.yaml):
    # their own runs, not table2's fusions of the three tiny CLIP scorers
    assert status_of(tiny, papers, "flyt", "table2", "Sum")["runs_as"] == "sum_20"
    assert status_of(tiny, papers, "flyt", "table2", "Standardized Sum")["runs_as"] == "standardized_sum_20"
    assert status_of(tiny, papers, "flyt", "table2", "IN-weighted $r = 8$")["runs_as"] == "in_weighted_r8_20"
    hype = status_of(tiny, papers, "flyt", "table2", "HYPE ϵ_i")
    assert (hype["built"], hype["runs_as"]) == (True, "hype_sum_20")
    assert status_of(tiny, papers, "flyt", "table2", "ViT-B/32")["runs_as"] == "clip_score_weak_20"
    # M-FLYT-Base (plain CE, FLYT Table 7) at tiny: its own run, not table2's tiny M-FLYT (CE with a
    # learned temperature), with ImageNet-train's and the DC-medium reference's stand-ins
    mflyt = status_of(tiny, papers, "flyt", "table2", "M-FLYT")
    assert mflyt["status"].startswith("stand-in run on synthetic-tiny") and mflyt["runs_as"] == "mflyt_20"
    # MoS's ids share the tiny strategies' runs, with its recipes' and suites' tiny analogues
    llava = status_of(tiny, papers, "mos", "table1", "CLIP Score | ViT-B/32")
    assert (llava["runs_as"], llava["recipe"], llava["suite"]) == (
        "weight_weak",
        "tiny-mos-llava",
        "synthetic-captioning",
    )
    assert status_of(tiny, papers, "mos", "table1", "MoS (Ours) | All of above")["runs_as"] == "mos_weight_tiny"
    for column in papers["mos"]["tables"]["table1"]["columns"]:  # CIDEr reads the held-out captions
        assert paper_metric_spec(tiny["suites"]["synthetic-captioning"], column["metric"]) == {
            "task": "retrieval",
            "metric": "cider",
        }
    recap = status_of(tiny, papers, "mos", "table4", "Image Re-captioning | BLIP Score | ViT-L/16 ft")
    assert (recap["runs_as"], recap["recipe"], recap["suite"]) == ("recap_reader", "tiny-mos-clip", "synthetic")
    assert recap["stand_ins"] == "blip-itm-l16-ft -> tiny-clip-reader; mos-recaptioner -> tiny-blip"
    assert status_of(tiny, papers, "mos", "table5", "CLIP Score | ViT-L/14")["runs_as"] == "drop10_clean"
    assert status_of(tiny, papers, "mos", "table5", "MoS (Ours) | All of above")["runs_as"] == "mos_drop10_tiny"
    assert status_of(tiny, papers, "sieve", "table1", "Medium (128 Million) | Sieve")["runs_as"] == "sieve_top20"
    assert (
        status_of(tiny, papers, "sieve", "table1", "Medium (128 Million) | Sieve+CLIPScore")["runs_as"]
        == "sieve_clip_top20"
    )
    # Sieve's ablations (other captioners, text encoders, caption counts) share the tiny Sieve's runs
    blip129m = status_of(tiny, papers, "sieve", "table2", "10 | BLIP-129M")
    assert (blip129m["runs_as"], blip129m["stand_ins"]) == (
        "sieve_10",
        "blip-b16-129m -> tiny-blip; all-minilm-l6-v2 -> tiny-minilm",
    )
    assert status_of(tiny, papers, "sieve", "table4", "CLIP")["runs_as"] == "sieve_top20"
    assert status_of(tiny, papers, "sieve", "table5", "1 | 0.0")["runs_as"] == "sieve_top20"
    assert status_of(tiny, papers, "sieve", "table3", "Sieve-GIT | +CLIPScore")["runs_as"] == "sieve_clip_top20"
    for paper, doc in papers.items():
        for table in doc["tables"].values():
            for resolved in resolve_table(tiny, table, METHODS, DATA):
                assert resolved["status"]
                assert not resolved["comparable"]  # every tiny run is a stand-in
                assert resolved["built"] == (resolved["evaluation"] is not None)


def test_property_columns_are_reported_only_and_flickr_retrieval_reads_its_main_metric(tmp_path):
    """The captioning table's CIDEr, CLIP-S, cosine and trigram columns describe a captioner's
    captions: reported, never reproduced; its Flickr retrieval is the Flickr task's main metric."""
    from curate.reporting.paper_tables import build_paper_table

    records = [
        {"key": "imagenet1k", "metrics": {"main_metric": 0.25}},
        {"key": "retrieval/flickr_1k_test_image_text_retrieval", "metrics": {"main_metric": 0.5}},
    ]
    table = {
        "unit": "fraction",
        "decimals": 3,
        "columns": [
            {"key": "trigrams", "label": "T", "metric": "caption_unique_trigrams", "kind": "property", "unit": "count"},
            {"key": "imagenet", "label": "IN", "metric": "imagenet_acc1"},
            {"key": "flickr", "label": "F", "metric": "flickr30k_retrieval"},
        ],
        "rows": [{"label": "r", "reported": {"trigrams": 2820000, "imagenet": 0.2, "flickr": 0.498}}],
    }
    suites = {"real-suite": {"groups": {"ImageNet": ["imagenet1k"]}}}
    frame = build_paper_table(table, [built("e.jsonl")], {"e.jsonl": records}, suites)
    row = frame.iloc[0]
    assert row["trigrams_reported"] == 2820000 and row["trigrams_reproduced"] is None
    assert row["imagenet_reproduced"] == 0.25 and row["flickr_reproduced"] == 0.5


def test_flyt_table1_sclip_loss_plus_is_the_authors_published_uids(tiny, papers):
    """FLYT's "+" rows evaluate published UIDs (0.333 / 0.352, as Table 15's reproduction row), not
    FLYT's own replication of the two-stage filter (Tables 2 and 10: 0.331 / 0.363)."""
    plus = status_of(tiny, papers, "flyt", "table1", "s-CLIPLoss ⁺ [49]")
    assert plus["status"] == "published uids not available: sclip-loss-medium"
    replication = next(r for r in papers["flyt"]["tables"]["table2"]["rows"] if r["label"] == "s-CLIPLoss")
    assert plus["selection"] == "sclip_loss_published" != replication["selection"]


def test_sieve_basic_filtering_is_datacomps_basic_filter_at_paper_scale_with_a_tiny_stand_in(tiny, papers):
    """Sieve Table 1's "Basic Filtering" is DataComp's basic filter (fastText lid.176, min side 200 px),
    not the tiny pool's settings (min side 32); at tiny the tiny basic filter stands in for it."""
    row = status_of(tiny, papers, "sieve", "table1", "Medium (128 Million) | Basic Filtering")
    assert row["selection"] == "basic_filter_datacomp" and row["runs_as"] == "basic_filter"
    assert row["stand_ins"] == "basic_filter_datacomp -> basic_filter; fasttext-lid176 -> synthetic-lid"
    paper = load_config(ROOT, {"scale": "paper"})
    entry = paper["selections"]["basic_filter_datacomp"]
    assert (entry["langid"], entry["min_side"], entry["max_aspect"]) == ("fasttext-lid176", 200, 3.0)
    assert paper["selections"]["basic_filter"]["min_side"] == 32
    row = status_of(paper, papers, "sieve", "table1", "Large (1.28 Billion) | Basic Filtering")
    assert (row["built"], row["status"], row["runs_as"]) == (True, "ok", "basic_filter_datacomp")


def test_all_paper_tables_at_tiny_need_few_distinct_runs(tiny, papers):
    runs = {
        e
        for doc in papers.values()
        for table in doc["tables"].values()
        for e in table_evaluations(resolve_table(tiny, table, METHODS, DATA))
    }
    tables = set(tiny["tables"]["table1"]["selections"]) | set(tiny["tables"]["table2"]["selections"])
    by_recipe = {}
    for evaluation in runs:
        by_recipe.setdefault(Path(evaluation).parts[-2], set()).add(Path(evaluation).parts[-3])
    # Sieve Table 1's LAION filtering among them: the tiny laion2b (a table1 run) stands in for DataComp's
    # (FLYT's Sum, Standardized Sum and IN-weighted r = 8 replace table2's three fusions, as FLYT's
    # hold HYPE's scores; HYPE's own sum is one more run)
    # FLYT's rows built since (flyt-rows) add 44: 42 runs of their own (22 E-FLYT, 9 M-FLYT, 10 SCS
    # over M-FLYT-Base, the two-stage s-CLIPLoss/NormSim filter) and 2 of table1's and table2's
    # (DataComp's image-based filter; the reading scorer's top 20 %, as FLYT's classifier rows stand)
    assert len(by_recipe["tiny-clip"]) == 21 + 44 and "laion2b" in by_recipe["tiny-clip"]
    # beyond table1's and table2's runs: FLYT's Sum, Standardized Sum, IN-weighted r = 2, 4, 8, 16
    # and its IN-weighted SCS, HYPE's sum, Sieve's top 10 and 15 %, Sieve + CLIP with CLIP weight
    # 0.3 and 0.7, and the leaderboard's Density-Based Pruning
    assert len(by_recipe["tiny-clip"] - tables) == 13 + 42  # FLYT's 42
    # MoS with the weighted CLIP loop: no filter; each tiny scorer dropping 10, 20 and 30 %,
    # weighting and re-captioning; MoS dropping 10, 20 and 30 %. LLaVA: each scorer's weights and MoS's.
    assert len(by_recipe["tiny-mos-clip"]) == 1 + 3 * 5 + 3
    assert by_recipe["tiny-mos-llava"] == {"weight_weak", "weight_clean", "weight_reader", "mos_weight_tiny"}
    assert by_recipe["tiny-mos-blip"] == {
        "no_filter",
        "drop10_weak",
        "drop10_clean",
        "drop10_reader",
        "mos_drop10_tiny",
    }


@pytest.mark.parametrize("table_id", ["table1", "table2", "table3", "table4", "table5"])
def test_every_mos_table_column_reads_its_paper_suites_records(table_id):
    """At the paper scale each MoS table's suite maps every column (Tables 2, 4, 5: mos-clip;
    Table 1: mos-llava; Table 3: mos-blip, its fine-tuned VQA, NLVR and RefCOCO+ included)."""
    import yaml

    config = load_config(ROOT)
    table = yaml.safe_load((ROOT / "papers" / "mos.yaml").read_text())["tables"][table_id]
    suite = config["suites"][table["defaults"]["suite"]]
    specs = {c["metric"]: paper_metric_spec(suite, c["metric"]) for c in table["columns"]}
    assert all(specs.values()), [m for m, s in specs.items() if not s]
    read = {}  # task -> the metrics the table reads from it
    for spec in specs.values():
        read.setdefault(spec["task"], set()).add(spec.get("metric", "main_metric"))
    assert set(read) <= set(suite["tasks"])
    records = [record(task, 0.5, **{m: 0.5 for m in metrics}) for task, metrics in read.items()]
    row = built("e") | {"suite": table["defaults"]["suite"]}
    frame = build_paper_table(dict(table, rows=table["rows"][:1]), [row], {"e": records}, config["suites"])
    assert [frame.iloc[0][f"{c['key']}_reproduced"] for c in table["columns"]] == [50.0] * len(table["columns"])
