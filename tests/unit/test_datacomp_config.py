"""config.yaml's real scales: DataComp's pools, recipes (docs/algorithms.md §3) and the datacomp38 suite."""

from pathlib import Path

import pytest

from curate.data.chunks import n_chunks
from curate.evaluation.datacomp import DATACOMP38, DATACOMP38_GROUPS, DATACOMP38_SCORED
from curate.training.clip import clip_train_argv
from curate.training.datacomp import DATACOMP_RECIPES, DATACOMP_SCALES
from curate.workflow.tables import table_selections

REPO = Path(__file__).resolve().parents[2]
POOL_SIZES = {"small": 12_800_000, "medium": 128_000_000, "large": 1_280_000_000, "xlarge": 12_800_000_000}


@pytest.mark.parametrize("scale", DATACOMP_SCALES)
def test_scale_puts_the_tables_on_its_datacomp_pool(config, scale):
    entry = config["scales"][scale]
    assert entry == dict(entry, pool=f"datacomp-{scale}", recipe=f"datacomp-{scale}", suite="datacomp38")
    pool = config["pools"][f"datacomp-{scale}"]
    assert pool["samples_per_shard"] == 10000 and pool["n_shards"] * 10000 == POOL_SIZES[scale]
    assert pool["metadata"]["hf_dataset"] == f"mlfoundations/datacomp_{scale}"
    assert 100 <= n_chunks(pool["n_shards"], pool["shards_per_chunk"]) <= 1300


@pytest.mark.parametrize("scale", DATACOMP_SCALES)
def test_config_recipes_are_datacomps_and_reach_open_clip_unchanged(config, scale, tmp_path):
    recipe = config["recipes"][f"datacomp-{scale}"]
    assert {key: recipe[key] for key in DATACOMP_RECIPES[scale]} == DATACOMP_RECIPES[scale]
    argv = clip_train_argv(recipe, "s/{0..9}.tar", 10, tmp_path, "run", seed=0)
    assert argv == clip_train_argv(DATACOMP_RECIPES[scale], "s/{0..9}.tar", 10, tmp_path, "run", seed=0)


def test_datacomp38_suite_is_datacomps(config):
    suite = config["suites"]["datacomp38"]
    assert suite["source"] == "local"
    assert list(suite["tasks"]) == list(DATACOMP38)
    for key, task in suite["tasks"].items():
        spec = DATACOMP38[key]
        assert (task["name"], task["main_metric"]) == (spec["name"], spec["main_metric"]), key
        assert (task["type"], task["source"]) == (spec["type"], spec["source"]), key
    assert sum(t["main_metric"] is not None for t in suite["tasks"].values()) == len(DATACOMP38_SCORED) == 38
    assert suite["groups"] == DATACOMP38_GROUPS


def test_the_tiny_run_uses_no_pretrained_model(config):
    pretrained = {name for name, s in config["scorers"].items() if s.get("source") == "pretrained"}
    assert pretrained and config["scale"] == "tiny"
    for table in config["tables"]:
        for selection in table_selections(config, table):
            entry = config["selections"][selection]
            scorers = [entry.get("scorer")] + config.get("fusions", {}).get(entry.get("fusion"), {}).get("scorers", [])
            assert not pretrained & set(scorers), selection
    assert config["pools"][config["scales"]["tiny"]["pool"]]["source"] == "synthetic"


def test_pretrained_scorers_name_fetched_models_of_their_library(config):
    """CLIP scorers load open_clip models (fetched, the workflow's own trained ones, or a seeded
    random initialisation, FLYT Table 12's); BLIP / BLIP-2 ITM scorers Hub folders or converted
    original checkpoints (curate/scoring/itm.py)."""
    for name, scorer in config["scorers"].items():
        if scorer.get("source") == "pretrained":
            model = config["models"][scorer["model"]]
            if scorer["library"] == "open_clip":
                assert model["library"] in ("open_clip", "trained", "random"), name
            elif scorer["library"] == "hyperbolic_clip":  # HYPE's release: two plain files
                assert model["library"] == config["models"][scorer["reference"]]["library"] == "url", name
            else:
                assert scorer["library"] == "blip_itm", name
                assert model["library"] == "huggingface" or model.get("convert") == "blip_itm", name
