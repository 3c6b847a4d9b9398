"""The config: assembled from config.yaml and the catalogues, checked, completed. Every error
names its key; unknown keys inside any entry are errors; defaults come from the schema or the
registries, once."""

import subprocess
import sys
from pathlib import Path

import pytest

from curate.registry import ConfigError
from curate.workflow.config import check_config, expand_selection_grids, short_scorer_name

ROOT = Path(__file__).resolve().parents[2]


def test_default_config_is_valid(user_config):
    config = check_config(user_config)
    assert config["scale"] == "tiny" and config["data_root"] == "data"


def test_integrity_tolerances_have_defaults_and_are_checked(user_config):
    """What a job tolerates losing (curate.data.integrity) comes from config.yaml, else the schema."""
    assert check_config(user_config)["integrity"] == {"max_shard_missing": 0.01, "max_subset_missing": 0.01}
    del user_config["integrity"]
    assert check_config(user_config)["integrity"] == {"max_shard_missing": 0.01, "max_subset_missing": 0.01}
    user_config["integrity"] = {"max_subset_missing": 1.5}
    with pytest.raises(ConfigError, match="integrity.max_subset_missing"):
        check_config(user_config)


def test_parsing_the_workflow_imports_no_torch():
    """What rules/common.smk imports, and the config's preparation, never import torch."""
    code = (
        "import sys\n"
        "from curate.workflow.config import load_config\n"
        "from curate.workflow.workspace import Workspace\n"
        "from curate.workflow.figure_plans import figure_plans\n"
        "from curate.workflow.paper_rows import implemented_methods, resolve_table\n"
        "from curate.workflow.tables import table_inputs\n"
        "from curate.reporting.papers import load_papers\n"
        "ws = Workspace(load_config())\n"
        "figure_plans(ws); implemented_methods()\n"
        "assert 'torch' not in sys.modules, sorted(m for m in sys.modules if m.startswith('torch'))\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


@pytest.mark.parametrize(
    "mutate, key",
    [
        (lambda c: c["pools"]["synthetic-tiny"].update(n_shards=0), r"pools\.synthetic-tiny\.n_shards"),
        (lambda c: c["pools"]["synthetic-tiny"]["noise_rates"].update(typo_noise=0.1), "typo_noise"),
        # a misspelt key inside an entry stops the run, naming it
        (lambda c: c["pools"]["synthetic-tiny"].update(noise_rate={}), "noise_rate"),
        (lambda c: c["recipes"]["tiny-clip"].update(weight_decay=0.1), r"recipes\.tiny-clip\.weight_decay"),
        (lambda c: c["scorers"]["tiny-clip-clean"].update(curated=1), r"scorers\.tiny-clip-clean\.curated"),
        (lambda c: c["fusions"]["mos"].update(temperature=1), r"fusions\.mos\.temperature"),
        (lambda c: c["selections"]["sum_scs"].update(alpah=1), r"selections\.sum_scs\.alpah"),
        (lambda c: c["suites"]["synthetic"]["tasks"]["objects"].update(metric="acc1"), r"tasks\.objects\.metric"),
        (lambda c: c["selections"].update(x={"method": "clip_score", "scorer": "tiny-clip-clean"}), r"selections\.x"),
        (
            lambda c: c["selections"].update(x={"method": "magic"}),
            r"selections\.x\.method: unknown selection method 'magic'",
        ),
        (
            lambda c: c["selections"].update(x={"method": "fused_score", "fusion": "mos", "sampler": "magic"}),
            r"selections\.x\.sampler: unknown sampler 'magic'",
        ),
        (lambda c: c["recipes"]["tiny-clip"].pop("lr"), r"recipes\.tiny-clip\.lr: required"),
        (lambda c: c.update(unknown_key=1), "unknown_key"),
        (lambda c: c["models"]["openai-clip-b32"].update(sha256="abc"), "sha256"),
        (lambda c: c["pools"]["datacomp-small"].pop("metadata"), "metadata"),
        (lambda c: c["suites"]["datacomp38"]["tasks"]["imagenet1k"].update(type="magic"), "magic"),
        # MoS's strategies, recipes and suites
        (lambda c: c["selections"].update(x={"method": "drop_lowest", "scorer": "tiny-clip-clean"}), "rho"),
        (lambda c: c["selections"].update(x={"method": "drop_lowest", "scorer": "tiny-clip-clean", "rho": 1.0}), "rho"),
        (lambda c: c["selections"].update(x={"method": "sample_weighting"}), r"selections\.x"),
        (
            lambda c: c["selections"].update(
                x={"method": "sample_weighting", "scorer": "tiny-clip-clean", "fusion": "mos"}
            ),
            r"selections\.x",
        ),
        (lambda c: c["recipes"]["tiny-mos-clip"].pop("warmup_epochs"), "warmup_epochs"),
        (lambda c: c["recipes"]["tiny-mos-llava"].pop("base"), "base"),
        (lambda c: c["recipes"]["mos-llava"]["base"].pop("vision_tower"), "vision_tower"),
        (lambda c: c["suites"]["mos-llava"]["tasks"]["nocaps"].update(type="dialogue"), "dialogue"),
    ],
)
def test_config_error_names_the_key(user_config, mutate, key):
    mutate(user_config)
    with pytest.raises(ConfigError, match=key):
        check_config(user_config)


@pytest.mark.parametrize(
    "mutate, key",
    [
        (
            lambda c: c["selections"]["clip_score_clean_30"].update(scorer="nope"),
            r"selections\.clip_score_clean_30\.scorer",
        ),
        (
            lambda c: c["scorers"]["tiny-clip-clean"].update(curated_set="nope"),
            r"scorers\.tiny-clip-clean\.curated_set",
        ),
        (lambda c: c["tables"]["table1"]["selections"].append("nope"), r"tables\.table1\.selections"),
        (lambda c: c["suites"]["synthetic"]["groups"].update(Extra=["nope"]), r"suites\.synthetic\.groups\.Extra"),
        (lambda c: c["scorers"]["openai-clip-b32"].update(model="nope"), r"scorers\.openai-clip-b32\.model"),
        (lambda c: c["scales"]["small"]["tables"].update(table1=["nope"]), r"scales\.small\.tables\.table1"),
        (lambda c: c.update(scale="small") or c["scales"]["small"].update(tables={}), r"'oracle' needs ground truth"),
        (lambda c: c["selections"]["recap_clean"].update(captioner="nope"), r"selections\.recap_clean\.captioner"),
        (lambda c: c["selections"]["mos_weight_tiny"].update(fusion="nope"), r"selections\.mos_weight_tiny\.fusion"),
        (lambda c: c["recipes"]["mos-clip"].update(tiny_analogue="nope"), r"recipes\.mos-clip\.tiny_analogue"),
        (lambda c: c["suites"]["mos-llava"].update(tiny_analogue="nope"), r"suites\.mos-llava\.tiny_analogue"),
        (
            lambda c: c["recipes"]["mos-llava"]["base"].update(language_model="nope"),
            r"recipes\.mos-llava\.base\.language_model",
        ),
    ],
)
def test_dangling_reference_names_the_key(user_config, mutate, key):
    mutate(user_config)
    with pytest.raises(ConfigError, match=key):
        check_config(user_config)


def test_an_unknown_scale_names_the_scale_and_the_valid_ones(user_config):
    user_config["scale"] = "huge"
    with pytest.raises(ConfigError, match=r"scale: 'huge' is not a scale \(scales: tiny, small, medium"):
        check_config(user_config)


def test_defaults_are_filled_once_from_their_registry(config):
    """Every entry holds every parameter its registry declares, so no code guesses a default."""
    assert config["selections"]["mflyt_scs"]["standardise"] is False  # a sampler's default
    assert (
        config["selections"]["mflyt_scs"]["n"] == "samples_seen" and config["selections"]["mflyt_scs"]["recipe"] is None
    )
    assert config["fusions"]["mos"]["tmin"] == 0.5 and config["fusions"]["sum"]["method"] == "sum"
    assert config["recipes"]["tiny-clip"]["trainer"] == "open_clip" and config["recipes"]["tiny-clip"]["seed"] == 0
    assert config["recipes"]["tiny-mos-clip"]["workers"] == 0 and config["recipes"]["mos-blip"]["workers"] == 4
    assert config["scorers"]["tiny-clip-clean"]["batch_size"] is None  # the run's score_batch_size then
    assert config["pools"]["datacomp-small"]["download"]["retry_failed"] is True
    assert config["pools"]["cc3m"]["metadata"]["sample"] is None
    assert config["suites"]["synthetic"]["tasks"]["objects"]["source"] is None


def test_datacomp_entries_have_one_source(config):
    from curate.evaluation.datacomp import DATACOMP38
    from curate.training.datacomp import DATACOMP_RECIPES

    for scale, recipe in DATACOMP_RECIPES.items():
        assert {k: config["recipes"][f"datacomp-{scale}"][k] for k in recipe} == recipe
    assert list(config["suites"]["datacomp38"]["tasks"]) == list(DATACOMP38)


def test_a_user_override_changes_a_generated_entry(user_config):
    user_config["recipes"]["datacomp-small"]["world_size"] = 4
    user_config["suites"]["datacomp38"]["root"] = "/evalsets"
    config = check_config(user_config)
    assert config["recipes"]["datacomp-small"]["world_size"] == 4
    assert config["suites"]["datacomp38"]["root"] == "/evalsets"


def test_mos_paper_ids_are_generated_from_grids(config):
    assert short_scorer_name("openai-clip-l14-336") == "clip_l14_336"
    assert short_scorer_name("blip2-itm-g14-pt") == "blip2_g14_pt"
    grids = expand_selection_grids(
        [
            {
                "prefix": "drop10",
                "method": "drop_lowest",
                "params": {"rho": 0.1},
                "scorers": ["evaclip-l14"],
                "fusions": {"mos_drop10_s8": "mos_s8"},
            }
        ]
    )
    assert grids == {
        "drop10_evaclip_l14": {"method": "drop_lowest", "scorer": "evaclip-l14", "rho": 0.1},
        "mos_drop10_s8": {"method": "drop_lowest", "fusion": "mos_s8", "rho": 0.1},
    }
    mos = [n for n in config["selections"] if n.startswith(("drop", "weight_", "recap_", "mos_drop", "mos_weight"))]
    assert "drop30_blip2_g14_ft" in mos and "recap_evaclip_g14_plus" in mos and "mos_weight_s11" in mos


def test_the_user_config_is_short():
    from curate.workflow.config import REPO

    assert len((REPO / "config.yaml").read_text().splitlines()) <= 300


def test_score_group_names_scorers_of_a_grouped_kind(user_config):
    import copy

    bad = copy.deepcopy(user_config)
    bad["score_group"] = ["nope"]
    with pytest.raises(ConfigError, match="score_group"):
        check_config(bad)
    sieve = next(n for n, e in user_config["scorers"].items() if e["library"] not in ("open_clip", "blip_itm"))
    user_config["score_group"] = [sieve]
    with pytest.raises(ConfigError, match=rf"score_group: '{sieve}' is a .* scorer; only open_clip and blip_itm"):
        check_config(user_config)


def test_score_group_takes_the_scales_stand_ins(user_config):
    user_config["score_group"] = ["openai-clip-l14", "openai-clip-b32"]
    stand_ins = user_config["scales"][user_config["scale"]]["stand_ins"]
    resolved = check_config(user_config)
    want = list(dict.fromkeys(stand_ins.get(s, s) for s in ["openai-clip-l14", "openai-clip-b32"]))
    assert resolved["score_group"] == want and all(s in resolved["scorers"] for s in want)
    assert "openai-clip-l14" not in want  # tiny: a stand-in scores in its place
