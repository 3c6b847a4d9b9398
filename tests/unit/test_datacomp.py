import math
import random
from pathlib import Path

import numpy as np
import pytest

from curate.evaluation.datacomp import (
    DATACOMP38,
    DATACOMP38_GROUPS,
    DATACOMP38_SCORED,
    datacomp38_suite,
    datacomp_average,
    missing_task_dirs,
)
from curate.evaluation.evaluate import classification_metrics, retrieval_metrics
from curate.evaluation.task_types import TASK_TYPES
from curate.training.clip import clip_train_argv
from curate.training.datacomp import DATACOMP_RECIPES, DATACOMP_SCALES, datacomp_recipe
from curate.training.trainers import TRAINERS

REPO = Path(__file__).resolve().parents[2]

# docs/algorithms.md §3: scale -> (samples seen, model, global batch, lr, warmup, beta2)
SPEC = {
    "small": (12_800_000, "ViT-B-32", 4096, 5e-4, 500, 0.98),
    "medium": (128_000_000, "ViT-B-32", 4096, 5e-4, 500, 0.98),
    "large": (1_280_000_000, "ViT-B-16", 8192, 5e-4, 500, 0.98),
    "xlarge": (12_800_000_000, "ViT-L-14", 90112, 1e-3, 10000, 0.95),
}


def opt(argv, flag):
    """The value after `flag` (which must occur once)."""
    assert argv.count(flag) == 1, flag
    return argv[argv.index(flag) + 1]


# --------------------------------------------------------------------------------------------
# Recipes
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("scale", DATACOMP_SCALES)
def test_recipe_argv_follows_the_spec(scale, tmp_path):
    seen, model, batch, lr, warmup, beta2 = SPEC[scale]
    recipe = DATACOMP_RECIPES[scale]
    argv = clip_train_argv(recipe, "shards/{00000000..00000009}.tar", 1234, tmp_path, "run", seed=0, workers=4)
    world, epochs = recipe["world_size"], recipe["epochs"]
    assert opt(argv, "--model") == model
    assert int(opt(argv, "--batch-size")) == batch // world
    assert float(opt(argv, "--lr")) == lr
    assert int(opt(argv, "--warmup")) == warmup
    assert float(opt(argv, "--wd")) == 0.2
    assert float(opt(argv, "--beta1")) == 0.9
    assert float(opt(argv, "--beta2")) == beta2
    assert float(opt(argv, "--eps")) == 1e-6
    assert opt(argv, "--lr-scheduler") == "cosine"
    assert opt(argv, "--precision") == "amp"
    assert "--dataset-resampled" in argv
    assert "--grad-checkpointing" in argv
    # samples seen are fixed whatever the subset size (1234 here)
    assert int(opt(argv, "--epochs")) == epochs
    assert int(opt(argv, "--train-num-samples")) == math.ceil(seen / epochs)
    assert int(opt(argv, "--train-num-samples")) * epochs == seen


def test_xlarge_recipe():
    argv = clip_train_argv(DATACOMP_RECIPES["xlarge"], "s/{0..9}.tar", 10, "logs", "run", seed=0)
    assert float(opt(argv, "--lr")) == 1e-3
    assert int(opt(argv, "--warmup")) == 10000
    assert float(opt(argv, "--beta2")) == 0.95
    assert opt(argv, "--model") == "ViT-L-14"


@pytest.mark.parametrize("scale", DATACOMP_SCALES)
def test_open_clip_train_parses_the_recipe_argv(scale, tmp_path):
    from open_clip_train.params import parse_args

    seen, model, batch, lr, warmup, beta2 = SPEC[scale]
    recipe = DATACOMP_RECIPES[scale]
    args = parse_args(clip_train_argv(recipe, "s/{0..9}.tar", 10, tmp_path, "run", seed=1))
    assert (args.model, args.lr, args.warmup, args.wd, args.beta1, args.beta2, args.eps) == (
        model,
        lr,
        warmup,
        0.2,
        0.9,
        beta2,
        1e-6,
    )
    assert args.batch_size * recipe["world_size"] * args.accum_freq == batch
    assert args.dataset_resampled and args.grad_checkpointing and args.local_loss and args.gather_with_grad
    assert args.train_num_samples * args.epochs == seen


@pytest.mark.parametrize("scale", ["small", "medium", "large"])
def test_epochs_are_whole_numbers_of_global_batches(scale):
    recipe = DATACOMP_RECIPES[scale]
    per_epoch = recipe["samples_seen"] // recipe["epochs"]
    assert per_epoch % recipe["batch_size"] == 0
    steps = per_epoch // recipe["batch_size"] * recipe["epochs"]
    assert steps == {"small": 3125, "medium": 31250, "large": 156250}[scale]


def test_datacomp_recipe_parameters():
    r = datacomp_recipe("large", world_size=32, epochs=8, precision="amp_bf16", grad_checkpointing=False)
    argv = clip_train_argv(r, "s/{0..9}.tar", 10, "logs", "run", seed=0)
    assert int(opt(argv, "--batch-size")) == 8192 // 32
    assert opt(argv, "--precision") == "amp_bf16"
    assert int(opt(argv, "--train-num-samples")) == 160_000_000
    assert "--grad-checkpointing" not in argv and "--local-loss" in argv
    with pytest.raises(ValueError, match="does not divide"):
        datacomp_recipe("small", world_size=3)
    with pytest.raises(ValueError, match="unknown DataComp scale"):
        datacomp_recipe("huge")
    # the shared dict is not modified by building another recipe
    assert (
        DATACOMP_RECIPES["large"]["world_size"] == 8
        and "--grad-checkpointing" in DATACOMP_RECIPES["large"]["extra_args"]
    )


def test_recipes_are_complete_open_clip_recipes():
    for scale, recipe in DATACOMP_RECIPES.items():
        assert TRAINERS.complete(recipe, f"recipes.datacomp-{scale}")["trainer"] == "open_clip"


# --------------------------------------------------------------------------------------------
# Suite
# --------------------------------------------------------------------------------------------


def test_suite_has_40_tasks_38_scored():
    assert len(DATACOMP38) == 40
    assert len(DATACOMP38_SCORED) == 38
    assert [k for k, t in DATACOMP38.items() if t["main_metric"] is None] == ["fairness/fairface", "fairness/utkface"]
    assert len({t["name"] for t in DATACOMP38.values()}) == 40
    assert {t["type"] for t in DATACOMP38.values()} == {
        "classification",
        "retrieval",
        "iwildcam",
        "fmow",
        "dollar_street",
        "geode",
        "fairface",
        "winogavil",
    }
    # every type has an evaluator of CLIP models
    assert all("clip" in TASK_TYPES[t["type"]].runners for t in DATACOMP38.values())


def test_main_metrics_per_spec():
    special = {
        "vtab/caltech101": "mean_per_class_recall",
        "fgvc_aircraft": "mean_per_class_recall",
        "vtab/flowers": "mean_per_class_recall",
        "vtab/pets": "mean_per_class_recall",
        "wilds/iwildcam": "F1-macro_all",
        "wilds/fmow": "acc_worst_region",
        "fairness/dollar_street": "acc_top5_wg",
        "fairness/geode": "acc_wg",
        "retrieval/flickr_1k_test_image_text_retrieval": "mean_recall@1",
        "retrieval/mscoco_2014_5k_test_image_text_retrieval": "mean_recall@1",
        "misc/winogavil": "jaccard_score_10-12",
        "fairness/fairface": None,
        "fairness/utkface": None,
    }
    for key, task in DATACOMP38.items():
        assert task["main_metric"] == special.get(key, "acc1"), key
    assert sum(t["main_metric"] == "acc1" for t in DATACOMP38.values()) == 27


def test_types_and_datasets():
    assert [k for k, t in DATACOMP38.items() if t["type"] == "retrieval"] == [
        "retrieval/flickr_1k_test_image_text_retrieval",
        "retrieval/mscoco_2014_5k_test_image_text_retrieval",
    ]
    assert DATACOMP38["imagenet1k"]["dataset"] == "wds/imagenet1k"
    assert DATACOMP38["vtab/cifar100"]["dataset"] == "wds/vtab/cifar100"
    assert DATACOMP38["vtab/cifar100"]["source"] == "djghosh/wds_vtab-cifar100_test"
    assert DATACOMP38["fairness/fairface"]["dataset"] == "wds/fairface"
    assert DATACOMP38["misc/winogavil"]["dataset"] == "wds/winogavil"
    assert DATACOMP38["retrieval/mscoco_2014_5k_test_image_text_retrieval"]["dataset"] == "wds/mscoco_captions"
    assert all(t["dataset"].startswith("wds/") for t in DATACOMP38.values())


def test_main_metrics_are_what_curate_evaluate_computes():
    """Every classification/retrieval task's main metric is a key curate.evaluation.evaluate produces."""
    cls = classification_metrics(np.eye(6)[[0, 1, 2, 3, 4, 5, 0]], [0, 1, 2, 3, 4, 5, 1])
    ret = retrieval_metrics(np.eye(3), [0, 1, 2])
    for key, task in DATACOMP38.items():
        if task["type"] == "classification":
            assert task["main_metric"] in cls, key
        elif task["type"] == "retrieval":
            assert task["main_metric"] in ret, key


def test_groups_per_spec():
    assert list(DATACOMP38_GROUPS) == ["ImageNet", "ImageNet dist. shifts", "VTAB", "Retrieval"]
    names = {g: {DATACOMP38[k]["name"] for k in keys} for g, keys in DATACOMP38_GROUPS.items()}
    assert names["ImageNet"] == {"ImageNet 1k"}
    assert names["ImageNet dist. shifts"] == {
        "ImageNet Sketch",
        "ImageNet v2",
        "ImageNet-A",
        "ImageNet-O",
        "ImageNet-R",
        "ObjectNet",
    }
    assert names["VTAB"] == {
        "Caltech-101",
        "CIFAR-100",
        "CLEVR Counts",
        "CLEVR Distance",
        "Describable Textures",
        "EuroSAT",
        "KITTI Vehicle Distance",
        "Oxford Flowers-102",
        "Oxford-IIIT Pet",
        "PatchCamelyon",
        "RESISC45",
        "SVHN",
        "SUN397",
    }
    assert names["Retrieval"] == {"Flickr", "MSCOCO", "WinoGAViL"}
    for keys in DATACOMP38_GROUPS.values():
        assert len(keys) == len(set(keys)) and set(keys) <= set(DATACOMP38_SCORED)


# --------------------------------------------------------------------------------------------
# Average
# --------------------------------------------------------------------------------------------

DIST = dict(zip(DATACOMP38_GROUPS["ImageNet dist. shifts"], [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]))  # mean 0.35
VTAB = {k: (i + 1) / 100 for i, k in enumerate(DATACOMP38_GROUPS["VTAB"])}  # 0.01 .. 0.13, mean 0.07
RETR = dict(zip(DATACOMP38_GROUPS["Retrieval"], [0.3, 0.6, 0.9]))  # mean 0.6


def fabricated_records():
    """40 DataComp records: ImageNet 0.5, the groups above, the other 15 scored tasks 0.8,
    FairFace/UTKFace with other metrics but a null main metric."""
    records = []
    for key, task in DATACOMP38.items():
        if task["main_metric"] is None:
            metrics = {"acc_race_avg": 99.0, "main_metric": None}
        else:
            value = 0.5 if key == "imagenet1k" else DIST.get(key, VTAB.get(key, RETR.get(key, 0.8)))
            metrics = {task["main_metric"]: value, "acc1": 123.0, "main_metric": value}
        records.append({"key": key, "dataset": task["name"], "metrics": metrics})
    return records


def test_datacomp_average_by_hand():
    records = fabricated_records()
    random.Random(0).shuffle(records)
    scores = datacomp_average(records)
    assert set(scores) == {"ImageNet", "ImageNet dist. shifts", "VTAB", "Retrieval", "Average"}
    assert scores["ImageNet"] == pytest.approx(0.5)
    assert scores["ImageNet dist. shifts"] == pytest.approx(0.35)
    assert scores["VTAB"] == pytest.approx(0.07)
    assert scores["Retrieval"] == pytest.approx(0.6)
    # 38 scored tasks: 0.5 + 6 * 0.35 + 13 * 0.07 + 3 * 0.6 + 15 * 0.8
    assert scores["Average"] == pytest.approx((0.5 + 2.1 + 0.91 + 1.8 + 12.0) / 38)


def test_datacomp_average_without_fairness_records():
    records = [r for r in fabricated_records() if r["key"] not in ("fairness/fairface", "fairness/utkface")]
    assert datacomp_average(records)["Average"] == pytest.approx(17.31 / 38)


def test_datacomp_average_ignores_a_fairness_main_metric():
    records = fabricated_records()
    for r in records:
        if r["key"] == "fairness/utkface":
            r["metrics"]["main_metric"] = 50.0
    assert datacomp_average(records)["Average"] == pytest.approx(17.31 / 38)


@pytest.mark.parametrize("drop", ["objectnet", "cifar10", "misc/winogavil"])
def test_datacomp_average_missing_task_raises(drop):
    records = [r for r in fabricated_records() if r["key"] != drop]
    with pytest.raises(ValueError, match=drop):
        datacomp_average(records)


def test_datacomp_average_rejects_bad_records():
    records = fabricated_records()
    with pytest.raises(ValueError, match="two records"):
        datacomp_average(records + [records[0]])
    with pytest.raises(ValueError, match="unknown task 'retrieval/flickr30k'"):
        datacomp_average(records + [{"key": "retrieval/flickr30k", "dataset": "Flickr", "metrics": {"main_metric": 1}}])
    for bad in (None, float("nan")):
        broken = fabricated_records()
        broken[0]["metrics"]["main_metric"] = bad
        with pytest.raises(ValueError, match="vtab/caltech101"):
            datacomp_average(broken)


# --------------------------------------------------------------------------------------------
# Suite config
# --------------------------------------------------------------------------------------------


def test_suite_entry_for_the_config():
    suite = datacomp38_suite("/evalsets")
    assert suite["source"] == "local" and suite["root"] == "/evalsets"
    assert list(suite["tasks"]) == list(DATACOMP38)
    for key, task in suite["tasks"].items():
        assert task == {f: DATACOMP38[key][f] for f in ("type", "main_metric", "name", "source")}
    assert suite["groups"] == DATACOMP38_GROUPS and suite["groups"] is not DATACOMP38_GROUPS
    assert datacomp38_suite()["root"] is None


def test_missing_task_dirs(tmp_path):
    assert missing_task_dirs(tmp_path) == list(DATACOMP38)
    for key in ("imagenet1k", "vtab/cifar100"):
        (tmp_path / key / "test").mkdir(parents=True)
        (tmp_path / key / "test" / "nshards.txt").write_text("1\n")
    missing = missing_task_dirs(tmp_path)
    assert len(missing) == 38 and "imagenet1k" not in missing and "vtab/cifar100" not in missing
