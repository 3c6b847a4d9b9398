"""DataComp's fixed training recipes per scale and its 38-score evaluation suite (ALGORITHMS §3).

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

from curate.evaluate import aggregate

# --------------------------------------------------------------------------------------------
# Training recipes
# --------------------------------------------------------------------------------------------

DATACOMP_SCALES = ("small", "medium", "large", "xlarge")

#: scale -> (samples seen = pool size, model, global batch, lr, warmup steps, beta2);
#: DataComp's scale_configs.py (beta2 None there means open_clip's ViT default 0.98).
_SCALE_CONFIGS = {
    "small": (12_800_000, "ViT-B-32", 4096, 5e-4, 500, 0.98),
    "medium": (128_000_000, "ViT-B-32", 4096, 5e-4, 500, 0.98),
    "large": (1_280_000_000, "ViT-B-16", 8192, 5e-4, 500, 0.98),
    "xlarge": (12_800_000_000, "ViT-L-14", 90112, 1e-3, 10000, 0.95),
}

#: open_clip_train's defaults for ViT models, which DataComp's train.py relies on.
OPEN_CLIP_VIT_DEFAULTS = {"wd": 0.2, "beta1": 0.9, "eps": 1e-6, "lr_scheduler": "cosine"}

#: Epochs ("checkpoints"): DataComp's train.py default ``--num_checkpoints 5`` (what the README's
#: ``torchrun train.py --scale ...`` runs; its example slurm_train.sh sets 8). The cosine schedule
#: spans all epochs, so the count changes only the checkpoint cadence and the step rounding: with
#: 5, samples_seen / 5 is a whole number of global batches at small, medium and large (625, 6250
#: and 31250 steps an epoch), so the run takes exactly samples_seen / batch steps (xlarge rounds
#: up by under one batch an epoch whatever the count).
DEFAULT_EPOCHS = 5

#: Processes (GPUs) the global batch is split over. DataComp fixes only the global batch (its
#: train.py reads the world size from torchrun/srun, and the paper leaves the GPU count to the
#: participant); 8 = one 8-GPU node is this workflow's assumption. It divides every global batch
#: (per-GPU 512, 512, 1024, 11264). Pass the cluster's own count to `datacomp_recipe`; the
#: optimisation is the same whatever it is (``--local-loss --gather-with-grad`` computes the full
#: global contrastive loss).
DEFAULT_WORLD_SIZE = 8

#: DataComp's train.py precision default (fp16 autocast); its slurm_train.sh notes
#: ``amp_bfloat16`` "if supported by your hardware".
DEFAULT_PRECISION = "amp"

#: open_clip_train flags DataComp's train.py passes at every scale that clip_train_argv has no
#: recipe key for. None changes the optimisation: gradient checkpointing trades compute for memory,
#: local loss + gather with grad is the memory-lean form of the same global loss, the static graph
#: is a DDP speed-up. (``--save-most-recent --resume latest`` are left out: train_clip starts from
#: scratch and reads ``epoch_<epochs>.pt``.)
DATACOMP_EXTRA_ARGS = ("--grad-checkpointing", "--local-loss", "--gather-with-grad", "--ddp-static-graph")


def datacomp_recipe(scale: str, world_size: int = DEFAULT_WORLD_SIZE, epochs: int = DEFAULT_EPOCHS,
                    precision: str = DEFAULT_PRECISION, device: str = "cuda",
                    grad_checkpointing: bool = True) -> dict:
    """The DataComp training recipe of `scale` as a `curate.train.clip_train_argv` recipe.

    `world_size` splits the fixed global batch (it must divide it); `epochs` is DataComp's
    ``num_checkpoints``; `precision` is passed to open_clip (``amp`` as DataComp, ``amp_bf16`` on
    hardware with bf16); `grad_checkpointing` False drops only ``--grad-checkpointing`` (memory,
    not results). Samples are resampled with replacement, so every subset of the pool is trained
    for the same ``samples_seen`` samples.
    """
    if scale not in _SCALE_CONFIGS:
        raise ValueError(f"unknown DataComp scale {scale!r}; expected one of {DATACOMP_SCALES}")
    seen, model, batch, lr, warmup, beta2 = _SCALE_CONFIGS[scale]
    world_size, epochs = int(world_size), int(epochs)
    if world_size < 1 or batch % world_size:
        raise ValueError(f"DataComp {scale}: world_size {world_size} does not divide the global batch {batch}")
    if epochs < 1:
        raise ValueError(f"DataComp {scale}: epochs must be >= 1, got {epochs}")
    extra = [a for a in DATACOMP_EXTRA_ARGS if grad_checkpointing or a != "--grad-checkpointing"]
    return {
        "model": model,
        "samples_seen": seen,
        "epochs": epochs,
        "batch_size": batch,  # global; clip_train_argv passes batch_size // world_size per GPU
        "world_size": world_size,
        "lr": lr,
        "warmup": warmup,
        "wd": OPEN_CLIP_VIT_DEFAULTS["wd"],
        "beta1": OPEN_CLIP_VIT_DEFAULTS["beta1"],
        "beta2": beta2,
        "eps": OPEN_CLIP_VIT_DEFAULTS["eps"],
        "lr_scheduler": OPEN_CLIP_VIT_DEFAULTS["lr_scheduler"],
        "resampled": True,
        "precision": str(precision),
        "device": str(device),
        "accum_freq": 1,
        "log_every_n_steps": 100,
        "extra_args": extra,
    }


#: scale -> recipe with the defaults above (8 processes, 5 epochs, amp, cuda).
DATACOMP_RECIPES = {scale: datacomp_recipe(scale) for scale in DATACOMP_SCALES}


# --------------------------------------------------------------------------------------------
# Evaluation suite
# --------------------------------------------------------------------------------------------


def _task(name, dataset, type_, main_metric, size, source):
    return {"name": name, "dataset": dataset, "type": type_, "main_metric": main_metric, "size": size,
            "source": source}


def _wds(key, name, size, main_metric="acc1", type_="classification", short=None):
    """A task DataComp reads as a webdataset: ``build_dataset("wds/<short>")`` on the HF folder
    ``djghosh/wds_<short with / as ->_test`` (fairness tasks drop their ``fairness/`` prefix)."""
    short = short or key
    return key, _task(name, f"wds/{short}", type_, main_metric, size, f"djghosh/wds_{short.replace('/', '-')}_test")


#: DataComp's 40 evaluation tasks in tasklist.yml order: key -> name (DataComp's display name, the
#: record's "dataset"), dataset (clip_benchmark dataset name of a local webdataset copy), type,
#: main_metric (None: FairFace, UTKFace), size (test samples; captioned images for retrieval,
#: instances for WinoGAViL) and source (where DataComp downloads it, Hugging Face).
#:
#: type: ``classification`` (zero-shot over classnames, acc1 or mean per-class recall, which
#: curate.evaluate computes), ``retrieval`` (image/text R@1, ``mean_recall@1``) or ``special``
#: (needs more than a classifier: per-sample metadata for iWildCam macro-F1, FMoW worst-region,
#: Dollar Street top-5 worst-income-group and GeoDE worst-region accuracy, FairFace/UTKFace
#: multi-label fairness, WinoGAViL jaccard over candidate sets; curate.evaluate does not run these).
#: Retrieval: DataComp loads ``nlphuji/flickr_1k_test_image_text_retrieval`` (Karpathy 1k test) and
#: ``nlphuji/mscoco_2014_5k_test_image_text_retrieval`` (Karpathy 5k test) with ``datasets``; the
#: clip_benchmark webdatasets of the same test splits are ``wds/flickr30k`` and
#: ``wds/mscoco_captions``. WinoGAViL (``nlphuji/winogavil``) has no clip_benchmark dataset;
#: ``wds/winogavil`` names its local copy.
DATACOMP38 = dict([
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
    ("retrieval/flickr_1k_test_image_text_retrieval",
     _task("Flickr", "wds/flickr30k", "retrieval", "mean_recall@1", 1000,
           "nlphuji/flickr_1k_test_image_text_retrieval")),
    ("retrieval/mscoco_2014_5k_test_image_text_retrieval",
     _task("MSCOCO", "wds/mscoco_captions", "retrieval", "mean_recall@1", 5000,
           "nlphuji/mscoco_2014_5k_test_image_text_retrieval")),
    ("misc/winogavil", _task("WinoGAViL", "wds/winogavil", "special", "jaccard_score_10-12", 3563, "nlphuji/winogavil")),
    _wds("wilds/iwildcam", "iWildCam", 42791, "F1-macro_all", "special"),
    _wds("wilds/camelyon17", "Camelyon17", 85054),  # no main_metric in tasklist.yml: acc1
    _wds("wilds/fmow", "FMoW", 22108, "acc_worst_region", "special"),
    _wds("fairness/dollar_street", "Dollar Street", 3503, "acc_top5_wg", "special", short="dollar_street"),
    _wds("fairness/geode", "GeoDE", 12488, "acc_wg", "special", short="geode"),
    _wds("fairness/fairface", "FairFace", 10954, None, "special", short="fairface"),
    _wds("fairness/utkface", "UTKFace", 23703, None, "special", short="utkface"),
])

#: The 38 tasks with a main metric: the ones ``Average`` is over.
DATACOMP38_SCORED = tuple(k for k, t in DATACOMP38.items() if t["main_metric"] is not None)

#: DataComp's groups (aggregate_scores.py, ALGORITHMS §3), by task key. ``Average`` (the plain
#: mean of the 38 main metrics) is not a group here: curate.evaluate.aggregate adds it.
DATACOMP38_GROUPS = {
    "ImageNet": ["imagenet1k"],
    "ImageNet dist. shifts": ["imagenet_sketch", "imagenetv2", "imagenet-a", "imagenet-o", "imagenet-r", "objectnet"],
    "VTAB": ["vtab/caltech101", "vtab/cifar100", "vtab/clevr_count_all", "vtab/clevr_closest_object_distance",
             "vtab/dtd", "vtab/eurosat", "vtab/kitti_closest_vehicle_distance", "vtab/flowers", "vtab/pets",
             "vtab/pcam", "vtab/resisc45", "vtab/svhn", "sun397"],
    "Retrieval": ["retrieval/flickr_1k_test_image_text_retrieval",
                  "retrieval/mscoco_2014_5k_test_image_text_retrieval", "misc/winogavil"],
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


def suite_config(root) -> dict:
    """The DataComp suite in the workflow's ``suites`` entry shape, reading every task from a
    local folder ``<root>/<task key>`` (clip_benchmark's webdataset layout: ``test/nshards.txt``,
    ``test/0.tar`` ..., ``classnames.txt`` and ``zeroshot_classification_templates.txt`` or
    ``dataset_type.txt`` = retrieval), so the evaluation runs offline.

    Returns ``{"source": "local", "root", "tasks": {key: {type, main_metric, name, dataset, dir}},
    "groups": DATACOMP38_GROUPS}``, tasks in DataComp's order.
    """
    root = Path(root)
    tasks = {
        key: {"type": t["type"], "main_metric": t["main_metric"], "name": t["name"], "dataset": t["dataset"],
              "dir": str(root / key)}
        for key, t in DATACOMP38.items()
    }
    return {"source": "local", "root": str(root), "tasks": tasks,
            "groups": {g: list(keys) for g, keys in DATACOMP38_GROUPS.items()}}


def missing_task_dirs(root) -> list[str]:
    """Task keys whose local folder ``<root>/<key>`` lacks ``test/nshards.txt``."""
    root = Path(root)
    return [key for key in DATACOMP38 if not (root / key / "test" / "nshards.txt").is_file()]
