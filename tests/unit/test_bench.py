"""The seed axis, the bench scale's config and the claims' plan, without running anything."""

from pathlib import Path

import numpy as np
import pytest
import yaml

from curate.registry import ConfigError
from curate.workflow.config import assemble_config, check_config
from curate.workflow.paths import replicate_name
from curate.workflow.scales import replicates, seeds


def _checked(user_config, **changes):
    user_config.update(changes)
    return check_config(user_config)


def test_one_seed_adds_no_recipes_and_keeps_the_paths(user_config):
    config = _checked(user_config)
    assert seeds(config) == 1 and replicates(config, "tiny-clip") == ["tiny-clip"]
    assert not [name for name in config["recipes"] if ".seed" in name]


def test_k_seeds_train_the_recipe_with_its_seed_plus_the_replicate(user_config):
    user_config["recipes"]["tiny-clip"]["seed"] = 5
    config = _checked(user_config, seeds=3)
    assert replicates(config, "tiny-clip") == ["tiny-clip", "tiny-clip.seed6", "tiny-clip.seed7"]
    assert config["recipes"]["tiny-clip.seed7"] == config["recipes"]["tiny-clip"] | {"seed": 7}
    assert replicate_name("bench-clip", 2) == "bench-clip.seed2"


def test_table_rows_list_one_evaluation_per_seed(user_config):
    from curate.workflow.tables import table_inputs, table_rows
    from curate.workflow.workspace import Workspace

    ws = Workspace(_checked(user_config, seeds=2))
    row = table_rows(ws, "table1")[0]
    assert row["evaluation"] == "data/evals/synthetic-tiny/no_filter/tiny-clip/synthetic.jsonl"
    assert row["evaluations"][1] == "data/evals/synthetic-tiny/no_filter/tiny-clip.seed1/synthetic.jsonl"
    assert len(table_inputs(ws, "table1")["evaluations"]) == 2 * len(table_rows(ws, "table1"))


ROOT = Path(__file__).resolve().parents[2]


def bench_config(**overrides) -> dict:
    """The checked config of a run with ``--config scale=bench`` (the scale's own ``config`` is
    merged when the run's config is assembled)."""
    user = yaml.safe_load((ROOT / "config.yaml").read_text()) | {"scale": "bench"} | overrides
    return check_config(assemble_config(user, ROOT))


@pytest.fixture(scope="module")
def bench():
    return bench_config()


def test_the_bench_scale_trains_three_seeds_unless_the_run_says_otherwise(bench):
    assert seeds(bench) == 3
    assert seeds(bench_config(seeds=1)) == 1


def test_bench_fuses_ten_distinct_scorers_of_several_kinds(bench):
    scorers = bench["fusions"]["mos"]["scorers"]
    assert len(set(scorers)) == 10
    entries = [bench["scorers"][s] for s in scorers]
    assert {e["library"] for e in entries} == {"open_clip", "blip_itm"}
    assert len({e.get("arch") for e in entries if e["library"] == "open_clip"}) >= 4
    assert len({e["curated_set"] for e in entries}) >= 5
    for fusion in ("sum", "standardised_sum", "in_weighted_r8", "mean", "mflyt"):
        assert bench["fusions"][fusion]["scorers"] == scorers
    assert bench["fusions"]["mflyt"]["reference"]["recipe"] == "bench-clip"


def test_bench_stand_ins_keep_the_papers_fused_scorers_apart(bench):
    """MoS's eight scorers (Tables 2, 3) and FLYT's twelve inputs stand in as as many bench
    scorers, so their rows no longer repeat one number."""
    for fusion in ("mos_s8", "mos_s8b", "flyt_standardised_sum"):
        assert len(bench["fusions"][fusion]["scorers"]) == (12 if fusion.startswith("flyt") else 8)
    assert len(bench["fusions"]["mos_s11"]["scorers"]) == 10  # eleven papers' scorers, ten bench ones
    drop20 = {bench["selections"][f"drop20_{s}"]["scorer"] for s in ("clip_b32", "clip_l14", "evaclip_l14")}
    assert len(drop20) == 3


def test_bench_keeps_tinys_selection_names_on_its_own_scorers(bench):
    assert bench["selections"]["clip_score_clean_30"]["scorer"] == "bench-clip-clean"
    assert bench["selections"]["image_based"]["embeddings"] == "bench-clip-clean"
    assert bench["scales"]["bench"]["recipe"] == "bench-clip"


def test_a_trained_itm_scorer_needs_a_tiny_blip_recipe(user_config):
    user_config["scorers"]["bench-itm"]["recipe"] = "bench-clip"
    with pytest.raises(ConfigError, match=r"scorers\.bench-itm: a trained ITM scorer"):
        check_config(user_config)


@pytest.mark.parametrize(
    "mutate, key",
    [
        (lambda c: c["claims"]["mos_at_least_mean"].update(baseline="nope"), r"claims\.mos_at_least_mean"),
        (lambda c: c["claims"]["sieve_drops_text_in_image"].update(noise_type="nope"), r"noise_type"),
        (lambda c: c["claims"]["mos_at_least_each_scorer"].update(selection="no_filter"), "fuses no scorers"),
        (lambda c: c["claims"]["basic_at_least_no_filter"].pop("baseline"), r"claims\.basic_at_least_no_filter"),
        (lambda c: c["selections"]["mix_gibberish_10"].update(share=2), r"selections\.mix_gibberish_10\.share"),
    ],
)
def test_claims_and_noise_mix_errors_name_the_key(user_config, mutate, key):
    mutate(user_config)
    with pytest.raises(ConfigError, match=key):
        check_config(user_config)


def test_claim_comparisons_at_tiny_and_at_a_real_scale(user_config):
    from curate.workflow.claims import claim_comparisons, claims_inputs
    from curate.workflow.workspace import Workspace

    tiny = claim_comparisons(Workspace(_checked(user_config)))
    assert {c["status"] for c in tiny} == {"ok"}
    each = [c for c in tiny if c["name"] == "mos_at_least_each_scorer"]
    assert [c["selections"][1] for c in each] == ["clip_score_clean_20", "clip_score_reader_20", "clip_score_weak_20"]
    scs = [c for c in tiny if c["name"] == "scs_at_least_top20"]
    assert scs[0]["metric"] == "objects" and len(scs) == 4
    small = claim_comparisons(Workspace(_checked(user_config, scale="small")))
    ground_truth = {"sieve_drops_text_in_image", "precision_ranks_average"}
    assert {c["status"] for c in small if c["name"] in ground_truth} == {"needs ground truth (synthetic pools only)"}
    assert "ground_truth" not in claims_inputs(Workspace(_checked(user_config, scale="small")))


def test_a_claim_set_to_null_is_left_out(user_config):
    from curate.workflow.claims import claim_comparisons
    from curate.workflow.workspace import Workspace

    user_config["claims"]["precision_ranks_average"] = None
    names = {c["name"] for c in claim_comparisons(Workspace(_checked(user_config)))}
    assert "precision_ranks_average" not in names and "mos_at_least_mean" in names


def test_ground_truth_figures_only_on_synthetic_pools(user_config):
    from curate.workflow.figure_plans import figure_plan
    from curate.workflow.workspace import Workspace

    plan = figure_plan(Workspace(_checked(user_config)), "noise_kept")
    assert plan["inputs"] == {"table": ["results/noise_kept.csv"]}
    assert figure_plan(Workspace(_checked(user_config, scale="small")), "noise_kept") is None


def test_the_mean_fusion_averages_the_min_max_normalised_scores():
    from curate.selection.fusion import fuse_mean

    S = np.array([[0.0, 10.0], [1.0, 20.0], [0.5, 30.0]])
    stats = {"min": [0.0, 10.0], "max": [1.0, 30.0], "mean": [0.5, 20.0], "std": [0.5, 10.0], "n": 3}
    assert np.allclose(fuse_mean(S, stats, {"normalise": "minmax"}), [0.0, 0.75, 0.75])


def test_the_typographic_probe_labels_the_written_colour(tmp_path):
    from curate.data.synthetic.tasks import task_classnames, write_task
    from curate.data.synthetic.world import COLOUR_NAMES

    summary = write_task(tmp_path / "typographic", "typographic", 16, seed=0)
    assert summary["n_classes"] == 8 and task_classnames("typographic") == list(COLOUR_NAMES)
    assert (tmp_path / "typographic" / "zeroshot_classification_templates.txt").is_file()
