"""The SLURM profile gives every rule its memory and runtime, and GPUs where the rule computes on one."""

import re
from pathlib import Path

import pytest
import yaml

from curate.training.trainers import training_gpus
from tests.unit.registry_fixtures import recipe as complete_recipe

ROOT = Path(__file__).resolve().parents[2]
PROFILE = yaml.safe_load((ROOT / "profiles" / "slurm" / "config.yaml").read_text())

#: Rules whose models run on a GPU (a training rule's GPUs come from its recipe instead).
GPU_RULES = {
    "train_scorer",
    "score_chunk",
    "evaluate_model",
    "evaluate_scorer",
    "evaluate_llava",
    "train_captioner",
    "caption_chunk",
    "train_sentence_encoder",
    "sieve_score_chunk",
    "embed_curated_set",
    "embed_downstream_set",
    "train_mixer",
    "itm_score_chunk",
    "evaluate_blip",
}
TRAINING_RULES = {"train_clip", "train_weighted_clip", "train_llava", "train_blip", "train_blip_lavis"}


def rules():
    return {
        name for smk in (ROOT / "rules").glob("*.smk") for name in re.findall(r"^rule (\w+):", smk.read_text(), re.M)
    }


def test_every_rule_has_memory_and_runtime_and_no_entry_is_stale():
    resources = PROFILE["set-resources"]
    assert set(resources) == rules()
    assert "runtime" in PROFILE["default-resources"]  # for rules that name none
    for rule, entry in resources.items():
        assert "mem_mb" in entry, rule


def test_gpus_go_to_the_rules_that_compute_on_one():
    resources = PROFILE["set-resources"]
    assert GPU_RULES | TRAINING_RULES <= rules()
    assert {rule for rule, entry in resources.items() if entry.get("gpu")} == GPU_RULES


def test_training_rules_ask_for_their_recipes_gpus():
    for smk in ("train.smk", "llava.smk", "blip.smk"):
        text = (ROOT / "rules" / smk).read_text()
        for block in re.split(r"^rule ", text, flags=re.M)[1:]:
            if block.split(":", 1)[0] in TRAINING_RULES:
                assert re.search(r"resources:\s*\n\s+gpu=get_training_gpus,", block), block[:200]


@pytest.mark.parametrize(
    "recipe, gpus",
    [
        ({}, 0),  # CPU by default
        ({"device": "cpu", "world_size": 4}, 0),
        ({"device": "cuda"}, 1),
        ({"device": "cuda", "world_size": 8}, 8),
    ],
)
def test_training_gpus(recipe, gpus):
    base = {
        "model": "ViT-B-32",
        "epochs": 1,
        "batch_size": 8,
        "lr": 1e-3,
        "wd": 0.1,
        "warmup": 0,
        "beta1": 0.9,
        "beta2": 0.98,
        "eps": 1e-6,
        "samples_seen": 80,
    }
    assert training_gpus(complete_recipe(**base, **recipe)) == gpus


def test_the_configured_recipes_ask_for_what_they_run_on(config):
    recipes = config["recipes"]
    assert training_gpus(recipes["datacomp-medium"]) == recipes["datacomp-medium"]["world_size"] == 8
    assert training_gpus(recipes["tiny-clip"]) == 0 and training_gpus(recipes["mos-llava"]) == 1
    assert training_gpus(recipes["tiny-mos-blip"]) == 0 and training_gpus(recipes["mos-blip"]) == 14
