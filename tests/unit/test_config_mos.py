"""Config checks of MoS's strategies, recipes and suites."""

import copy
from pathlib import Path

import pytest
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from curate.config import ConfigError, check_references

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = str(ROOT / "schemas" / "config.schema.yaml")


def test_the_mos_entries_are_there_and_valid(config):
    validate(copy.deepcopy(config), SCHEMA)
    check_references(config)
    assert {"mos-clip", "tiny-mos-clip", "mos-llava", "tiny-mos-llava"} <= set(config["recipes"])
    assert {"mos-clip", "mos-llava", "synthetic-captioning"} <= set(config["suites"])
    clip = config["recipes"]["mos-clip"]
    assert (clip["model"], clip["epochs"], clip["batch_size"], clip["lr"], clip["wd"], clip["warmup_epochs"]) == \
        ("ViT-B-32", 32, 2048, 1e-4, 0.2, 1)
    llava = config["recipes"]["mos-llava"]
    assert (llava["epochs"], llava["batch_size"], llava["lr"], llava["wd"]) == (1, 256, 1e-3, 0.0)
    methods = {entry["method"] for entry in config["selections"].values()}
    assert {"drop_lowest", "sample_weighting", "recaption"} <= methods


@pytest.mark.parametrize(
    "mutate, key",
    [
        (lambda c: c["selections"].update(x={"method": "drop_lowest", "scorer": "tiny-clip-clean"}), "rho"),
        (lambda c: c["selections"].update(x={"method": "drop_lowest", "scorer": "tiny-clip-clean", "rho": 1.0}), "rho"),
        (lambda c: c["selections"].update(x={"method": "sample_weighting"}), "selections"),
        (lambda c: c["selections"].update(x={"method": "sample_weighting", "scorer": "tiny-clip-clean",
                                             "fusion": "mos"}), "selections"),
        (lambda c: c["recipes"]["tiny-mos-clip"].pop("warmup_epochs"), "warmup_epochs"),
        (lambda c: c["recipes"]["tiny-mos-llava"].pop("base"), "base"),
        (lambda c: c["recipes"]["mos-llava"]["base"].pop("vision_tower"), "vision_tower"),
        (lambda c: c["suites"]["mos-llava"]["tasks"]["nocaps"].update(type="dialogue"), "dialogue"),
    ],
)
def test_schema_error_names_the_key(config, mutate, key):
    mutate(config)
    with pytest.raises(WorkflowError, match=key):
        validate(config, SCHEMA)


@pytest.mark.parametrize(
    "mutate, key",
    [
        (lambda c: c["selections"]["recap_clean"].update(captioner="nope"), r"selections\.recap_clean\.captioner"),
        (lambda c: c["selections"]["mos_weight_tiny"].update(fusion="nope"), r"selections\.mos_weight_tiny\.fusion"),
        (lambda c: c["recipes"]["mos-clip"].update(tiny_analogue="nope"), r"recipes\.mos-clip\.tiny_analogue"),
        (lambda c: c["suites"]["mos-llava"].update(tiny_analogue="nope"), r"suites\.mos-llava\.tiny_analogue"),
    ],
)
def test_dangling_reference_names_the_key(config, mutate, key):
    mutate(config)
    with pytest.raises(ConfigError, match=key):
        check_references(config)
