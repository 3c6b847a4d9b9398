import copy
from pathlib import Path

import pytest
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from curate.config import ConfigError, check_references

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = str(ROOT / "schemas" / "config.schema.yaml")


def test_default_config_is_valid(config):
    validate(copy.deepcopy(config), SCHEMA)
    check_references(config)


@pytest.mark.parametrize(
    "mutate, key",
    [
        (lambda c: c["pools"]["synthetic-tiny"].update(n_shards=0), "n_shards"),
        (lambda c: c["pools"]["synthetic-tiny"]["noise_rates"].update(typo_noise=0.1), "typo_noise"),
        (lambda c: c["selections"].update(x={"method": "clip_score", "scorer": "tiny-clip-clean"}), "selections"),
        (lambda c: c["selections"].update(x={"method": "magic"}), "method"),
        (lambda c: c["recipes"]["tiny-clip"].pop("lr"), "lr"),
        (lambda c: c.update(unknown_key=1), "unknown_key"),
        (lambda c: c["models"]["openai-clip-b32"].update(sha256="abc"), "sha256"),
        (lambda c: c["pools"]["datacomp-small"].pop("metadata"), "metadata"),
        (lambda c: c["suites"]["datacomp38"]["tasks"]["imagenet1k"].update(type="magic"), "magic"),
        # MoS's strategies, recipes and suites
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
        (lambda c: c.update(scale="huge"), "scale"),
        (lambda c: c["selections"]["clip_score_clean_30"].update(scorer="nope"), r"selections\.clip_score_clean_30\.scorer"),
        (lambda c: c["scorers"]["tiny-clip-clean"].update(curated_set="nope"), r"scorers\.tiny-clip-clean\.curated_set"),
        (lambda c: c["tables"]["table1"]["selections"].append("nope"), r"tables\.table1\.selections"),
        (lambda c: c["suites"]["synthetic"]["groups"].update(Extra=["nope"]), r"suites\.synthetic\.groups\.Extra"),
        (lambda c: c["scorers"]["openai-clip-b32"].update(model="nope"), r"scorers\.openai-clip-b32\.model"),
        (lambda c: c["scales"]["small"]["tables"].update(table1=["nope"]), r"scales\.small\.tables\.table1"),
        (lambda c: c.update(scale="small") or c["scales"]["small"].update(tables={}), r"'oracle' needs ground truth"),
        (lambda c: c["selections"]["recap_clean"].update(captioner="nope"), r"selections\.recap_clean\.captioner"),
        (lambda c: c["selections"]["mos_weight_tiny"].update(fusion="nope"), r"selections\.mos_weight_tiny\.fusion"),
        (lambda c: c["recipes"]["mos-clip"].update(tiny_analogue="nope"), r"recipes\.mos-clip\.tiny_analogue"),
        (lambda c: c["suites"]["mos-llava"].update(tiny_analogue="nope"), r"suites\.mos-llava\.tiny_analogue"),
        (lambda c: c["recipes"]["mos-llava"]["base"].update(language_model="nope"),
         r"recipes\.mos-llava\.base\.language_model"),
    ],
)
def test_dangling_reference_names_the_key(config, mutate, key):
    mutate(config)
    with pytest.raises(ConfigError, match=key):
        check_references(config)
