"""DataComp's 38-score evaluation suite (docs/algorithms.md §3): its 40 tasks, groups and Average.

Sources, all in the DataComp repository (github.com/mlfoundations/datacomp):

- ``scale_configs.py``: model, global batch, lr, warmup, samples seen (= pool size) and beta2
  (``None``, i.e. open_clip's default, except 0.95 at xlarge) per scale.
- ``train.py``: what it hands to open_clip's ``main``. It never passes ``--wd``, ``--beta1``,
  ``--eps`` or ``--lr-scheduler``, so open_clip's defaults apply; for ViT models they are wd 0.2,
  beta1 0.9, beta2 0.98, eps 1e-6, cosine schedule (``open_clip_train.params``: the CLIP paper's
  values, checked against open_clip_train 3.3.0). It always passes ``--dataset-resampled``,
  ``--grad-checkpointing``, ``--local-loss``, ``--gather-with-grad`` and ``--ddp-static-graph``
  (at every scale, not only large/xlarge), ``--precision amp`` by default, ``--epochs
  num_checkpoints`` with ``--train-num-samples samples_seen // num_checkpoints``, and a per-GPU
  batch of ``global batch // (world_size * accum_freq)`` (``accum_freq`` 1 by default).
- ``tasklist.yml`` (after PR #12, "Update with correct Flickr30k test set"): the 40 evaluation
  tasks, their keys, display names and main metrics (``acc1`` where none is given, as
  ``evaluate.py`` does); FairFace and UTKFace have none, leaving 38 scores.
- ``aggregate_scores.py``: the groups (by display name) and ``Average`` = plain mean of the 38.
- ``eval_utils/``: how each task is run, which fixes the clip_benchmark dataset names below.
"""

from __future__ import annotations

import math
from pathlib import Path

from curate.data.records import aggregate

# --------------------------------------------------------------------------------------------
# Evaluation suite
# --------------------------------------------------------------------------------------------


def _task(name, dataset, type_, main_metric, size, source):
    return {"name": name, "dataset": dataset, "type": type_, "main_metric": main_metric, "size": size, "source": source}


def _wds(key, name, size, main_metric="acc1", type_="classification", short=None):
    """A task DataComp reads as a webdataset: ``build_dataset("wds/<short>")`` on the HF folder
    ``djghosh/wds_<short with / as ->_test`` (fairness tasks drop their ``fairness/`` prefix).
    ``type_``: the task type that evaluates it (`curate.evaluation.task_types`)."""
    short = short or key
    return key, _task(name, f"wds/{short}", type_, main_metric, size, f"djghosh/wds_{short.replace('/', '-')}_test")


#: DataComp's 40 evaluation tasks in tasklist.yml order: key -> name (DataComp's display name, the
#: record's "dataset"), dataset (clip_benchmark dataset name of a local webdataset copy), type (the
#: task type that evaluates it: classification, retrieval, or the evaluator of a task that needs
#: more than a classifier - iWildCam macro-F1, FMoW worst region, Dollar Street top-5 worst income
#: group, GeoDE worst region, FairFace/UTKFace, WinoGAViL; curate.evaluation.datacomp_special),
#: main_metric (None: FairFace, UTKFace), size (test samples; captioned images for retrieval,
#: instances for WinoGAViL) and source (the Hugging Face dataset `fetch_eval_task` downloads).
#:
#: Retrieval: DataComp loads ``nlphuji/flickr_1k_test_image_text_retrieval`` (Karpathy 1k test) and
#: ``nlphuji/mscoco_2014_5k_test_image_text_retrieval`` (Karpathy 5k test) with ``datasets``; the
#: workflow fetches clip_benchmark's webdatasets of the same test splits (``wds/flickr30k``,
#: ``wds/mscoco_captions``). WinoGAViL (``nlphuji/winogavil``) is its ``datasets`` test split.
DATACOMP38 = dict(
    [
        _wds("vtab/caltech101", "Caltech-101", 6085, "mean_per_class_recall"),
        _wds("cifar10", "CIFAR-10", 10000),
        _wds("vtab/cifar100", "CIFAR-100", 10000),
        _wds("vtab/clevr_count_all", "CLEVR Counts", 15000),
        _wds("vtab/clevr_closest_object_distance", "CLEVR Distance", 15000),
        _wds("country211", "Country211", 21100),
        _wds("vtab/dtd", "Describable Textures", 1880),
        _wds("vtab/eurosat", "EuroSAT", 5400),
        _wds("fgvc_aircraft", "FGVC Aircraft", 3333, "mean_per_class_recall"),
        _wds("food101", "Food-101", 25250),
        _wds("gtsrb", "GTSRB", 12630),
        _wds("imagenet1k", "ImageNet 1k", 50000),
        _wds("imagenet_sketch", "ImageNet Sketch", 50889),
        _wds("imagenetv2", "ImageNet v2", 10000),
        _wds("imagenet-a", "ImageNet-A", 7500),
        _wds("imagenet-o", "ImageNet-O", 2000),
        _wds("imagenet-r", "ImageNet-R", 30000),
        _wds("vtab/kitti_closest_vehicle_distance", "KITTI Vehicle Distance", 711),
        _wds("mnist", "MNIST", 10000),
        _wds("objectnet", "ObjectNet", 18574),
        _wds("vtab/flowers", "Oxford Flowers-102", 6149, "mean_per_class_recall"),
        _wds("vtab/pets", "Oxford-IIIT Pet", 3669, "mean_per_class_recall"),
        _wds("voc2007", "Pascal VOC 2007", 14976),
        _wds("vtab/pcam", "PatchCamelyon", 32768),
        _wds("renderedsst2", "Rendered SST2", 1821),
        _wds("vtab/resisc45", "RESISC45", 6300),
        _wds("cars", "Stanford Cars", 8041),
        _wds("stl10", "STL-10", 8000),
        _wds("sun397", "SUN397", 108754),
        _wds("vtab/svhn", "SVHN", 26032),
        (
            "retrieval/flickr_1k_test_image_text_retrieval",
            _task("Flickr", "wds/flickr30k", "retrieval", "mean_recall@1", 1000, "clip-benchmark/wds_flickr30k"),
        ),
        (
            "retrieval/mscoco_2014_5k_test_image_text_retrieval",
            _task(
                "MSCOCO",
                "wds/mscoco_captions",
                "retrieval",
                "mean_recall@1",
                5000,
                "clip-benchmark/wds_mscoco_captions",
            ),
        ),
        (
            "misc/winogavil",
            _task("WinoGAViL", "wds/winogavil", "winogavil", "jaccard_score_10-12", 3563, "nlphuji/winogavil"),
        ),
        _wds("wilds/iwildcam", "iWildCam", 42791, "F1-macro_all", "iwildcam"),
        _wds("wilds/camelyon17", "Camelyon17", 85054),  # no main_metric in tasklist.yml: acc1
        _wds("wilds/fmow", "FMoW", 22108, "acc_worst_region", "fmow"),
        _wds("fairness/dollar_street", "Dollar Street", 3503, "acc_top5_wg", "dollar_street", short="dollar_street"),
        _wds("fairness/geode", "GeoDE", 12488, "acc_wg", "geode", short="geode"),
        _wds("fairness/fairface", "FairFace", 10954, None, "fairface", short="fairface"),
        _wds("fairness/utkface", "UTKFace", 23703, None, "fairface", short="utkface"),
    ]
)

#: The 38 tasks with a main metric: the ones ``Average`` is over.
DATACOMP38_SCORED = tuple(k for k, t in DATACOMP38.items() if t["main_metric"] is not None)

#: DataComp's groups (aggregate_scores.py, docs/algorithms.md §3), by task key. ``Average`` (the plain
#: mean of the 38 main metrics) is not a group here: curate.evaluation.evaluate.aggregate adds it.
DATACOMP38_GROUPS = {
    "ImageNet": ["imagenet1k"],
    "ImageNet dist. shifts": ["imagenet_sketch", "imagenetv2", "imagenet-a", "imagenet-o", "imagenet-r", "objectnet"],
    "VTAB": [
        "vtab/caltech101",
        "vtab/cifar100",
        "vtab/clevr_count_all",
        "vtab/clevr_closest_object_distance",
        "vtab/dtd",
        "vtab/eurosat",
        "vtab/kitti_closest_vehicle_distance",
        "vtab/flowers",
        "vtab/pets",
        "vtab/pcam",
        "vtab/resisc45",
        "vtab/svhn",
        "sun397",
    ],
    "Retrieval": [
        "retrieval/flickr_1k_test_image_text_retrieval",
        "retrieval/mscoco_2014_5k_test_image_text_retrieval",
        "misc/winogavil",
    ],
}


def datacomp_average(records: list[dict]) -> dict:
    """DataComp's scores of one model's records: ``ImageNet``, ``ImageNet dist. shifts``,
    ``VTAB``, ``Retrieval`` and ``Average`` (plain mean of the 38 main metrics), as DataComp's
    aggregate_scores.py computes them.

    `records`: DataComp records (``{"key", "dataset", "metrics": {..., "main_metric"}}``). Each of
    the 38 scored tasks needs exactly one record with a finite main metric; FairFace and UTKFace
    may be present (they are left out) or absent. A missing task, a null or NaN main metric, a
    duplicate or an unknown task key raises.
    """
    by_key: dict[str, dict] = {}
    for r in records:
        key = r.get("key")
        if key not in DATACOMP38:
            raise ValueError(f"record for unknown task {key!r}: not one of DataComp's 40 tasks")
        if key in by_key:
            raise ValueError(f"two records for task {key!r}")
        by_key[key] = r
    missing = [k for k in DATACOMP38_SCORED if k not in by_key]
    if missing:
        raise ValueError(f"no record for {len(missing)} of DataComp's 38 scored tasks: {missing}")
    scored = []
    for key in DATACOMP38_SCORED:
        value = by_key[key]["metrics"].get("main_metric")
        if value is None or not math.isfinite(float(value)):
            raise ValueError(f"task {key!r}: main_metric is {value!r}; DataComp's average needs all 38")
        scored.append(by_key[key])
    return aggregate(scored, DATACOMP38_GROUPS)


def datacomp38_suite(root: str | None = None) -> dict:
    """The ``datacomp38`` entry of the config's suites: DataComp's 40 tasks and groups, read from
    ``root`` (a local copy of its evaluation sets, offline clusters) or fetched from each task's
    ``source``."""
    tasks = {
        key: {"type": t["type"], "main_metric": t["main_metric"], "name": t["name"], "source": t["source"]}
        for key, t in DATACOMP38.items()
    }
    return {
        "source": "local",
        "root": root,
        "tasks": tasks,
        "groups": {group: list(keys) for group, keys in DATACOMP38_GROUPS.items()},
    }


def missing_task_dirs(root) -> list[str]:
    """Task keys whose local folder ``<root>/<key>`` lacks ``test/nshards.txt``."""
    root = Path(root)
    return [key for key in DATACOMP38 if not (root / key / "test" / "nshards.txt").is_file()]
