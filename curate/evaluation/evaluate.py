"""Zero-shot evaluation of a CLIP model on clip_benchmark webdataset tasks, DataComp's records.

A task folder is clip_benchmark's ``wds/`` layout: ``classnames.txt``,
``zeroshot_classification_templates.txt``, ``dataset_type.txt`` (classification | retrieval),
``test/nshards.txt``, ``test/0.tar`` ...; classification samples hold ``.jpg`` + ``.cls``,
retrieval samples ``.jpg`` + ``.txt`` (captions, one per line).

clip_benchmark builds the datasets, the zero-shot classifier and the logits
(``zero_shot_classifier``, ``run_classification``); the metrics are computed here (its
``accuracy`` helper breaks on numpy >= 2.4):

- classification: ``acc1``, ``acc5`` (k capped at the number of classes) and
  ``mean_per_class_recall`` (mean over the classes present in the targets of the per-class
  recall, as sklearn's ``balanced_accuracy_score`` that clip_benchmark uses);
- retrieval, CLIP-paper style as clip_benchmark computes it: ``image_retrieval_recall@k`` is the
  fraction of captions whose image is among the k images scoring highest with the caption,
  ``text_retrieval_recall@k`` the fraction of images with at least one of their captions among the
  k captions scoring highest with the image; ``mean_recall@1`` is the mean of the two R@1
  (DataComp's main retrieval metric).

Records are DataComp's: ``{"key": task key, "dataset": display name, "metrics": {...,
"main_metric": value or null}}``, one JSON line per task.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

log = logging.getLogger(__name__)

RETRIEVAL_KS = (1, 5)


# --------------------------------------------------------------------------------------------
# Metrics (pure)
# --------------------------------------------------------------------------------------------


def _descending_order(scores: np.ndarray) -> np.ndarray:
    """Column indices of each row by decreasing score; ties keep the lower index first."""
    return np.argsort(-scores, axis=1, kind="stable")


def classification_metrics(logits, targets) -> dict:
    """``acc1``, ``acc5`` (k = min(5, n_classes)) and ``mean_per_class_recall`` of `logits`
    [N, C] against integer `targets` [N]."""
    logits = np.asarray(logits, dtype=np.float64)
    targets = np.asarray(targets).astype(np.int64).reshape(-1)
    if logits.ndim != 2 or logits.shape[0] != targets.shape[0]:
        raise ValueError(f"logits {logits.shape} and targets {targets.shape} do not match")
    n, n_classes = logits.shape
    if n == 0:
        raise ValueError("no samples to evaluate")
    if targets.min() < 0 or targets.max() >= n_classes:
        raise ValueError(f"targets outside [0, {n_classes})")
    order = _descending_order(logits)
    hit_rank = np.argmax(order == targets[:, None], axis=1)  # rank of the true class
    k5 = min(5, n_classes)
    pred = order[:, 0]
    recalls = [float(np.mean(pred[targets == c] == c)) for c in np.unique(targets)]
    return {
        "acc1": float(np.mean(hit_rank < 1)),
        "acc5": float(np.mean(hit_rank < k5)),
        "mean_per_class_recall": float(np.mean(recalls)),
    }


def retrieval_metrics(scores, text_image_index, ks=RETRIEVAL_KS) -> dict:
    """Retrieval recalls from `scores` [n_texts, n_images] (caption x image similarity) and
    `text_image_index` [n_texts] (the image of each caption). k is capped at the number of
    candidates."""
    scores = np.asarray(scores, dtype=np.float64)
    index = np.asarray(text_image_index).astype(np.int64).reshape(-1)
    n_texts, n_images = scores.shape
    if index.shape[0] != n_texts:
        raise ValueError(f"scores has {n_texts} captions but text_image_index {index.shape[0]}")
    if n_texts == 0 or n_images == 0:
        raise ValueError("no captions or images to evaluate")
    positive = np.zeros((n_texts, n_images), dtype=bool)
    positive[np.arange(n_texts), index] = True
    image_order = _descending_order(scores)  # for each caption: images, best first
    text_order = _descending_order(scores.T)  # for each image: captions, best first
    image_rank = np.argmax(image_order == index[:, None], axis=1)
    metrics = {}
    for k in ks:
        ki, kt = min(k, n_images), min(k, n_texts)
        metrics[f"image_retrieval_recall@{k}"] = float(np.mean(image_rank < ki))
        top_texts = text_order[:, :kt]
        hit = positive.T[np.arange(n_images)[:, None], top_texts].any(axis=1)
        metrics[f"text_retrieval_recall@{k}"] = float(np.mean(hit))
    if 1 in ks:
        metrics["mean_recall@1"] = (metrics["image_retrieval_recall@1"] + metrics["text_retrieval_recall@1"]) / 2
    return metrics


# --------------------------------------------------------------------------------------------
# Running a model on a task
# --------------------------------------------------------------------------------------------


def _read_dataset_type(task_dir: Path) -> str | None:
    f = task_dir / "dataset_type.txt"
    return f.read_text().strip().lower() if f.is_file() else None


@torch.inference_mode()
def evaluate_task(model, preprocess, tokenizer, task_dir, task_type: str, batch_size: int = 256) -> dict:
    """Zero-shot metrics of a loaded model on one task folder, by its type's runner
    (`curate.evaluation.task_types`)."""
    from curate.evaluation.task_types import runner

    return runner(task_type, "clip")(model, preprocess, tokenizer, Path(task_dir), task_type, batch_size)


def evaluate_wds_task(model, preprocess, tokenizer, task_dir: Path, task_type: str, batch_size: int) -> dict:
    """Zero-shot classification or retrieval on one clip_benchmark ``wds`` task folder."""
    from clip_benchmark.datasets.builder import build_dataset, image_captions_collate_fn

    if not (task_dir / "test" / "nshards.txt").is_file():
        raise FileNotFoundError(f"task {task_dir}: no test/nshards.txt (not a clip_benchmark wds folder)")
    declared = _read_dataset_type(task_dir)
    if declared is not None and declared != task_type:
        raise ValueError(f"task {task_dir}: dataset_type.txt says {declared!r}, the suite says {task_type!r}")
    device = next(model.parameters()).device
    dataset = build_dataset(
        dataset_name=f"wds/{task_dir.name}",
        root=str(task_dir),
        transform=preprocess,
        split="test",
        download=False,
        task="zeroshot_retrieval" if task_type == "retrieval" else "zeroshot_classification",
    )
    if task_type == "classification":
        from clip_benchmark.metrics.zeroshot_classification import run_classification, zero_shot_classifier

        loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, num_workers=0)
        classifier = zero_shot_classifier(model, tokenizer, dataset.classes, dataset.templates, device.type, amp=False)
        logits, targets = run_classification(model, classifier, loader, device.type, amp=False)
        metrics = classification_metrics(logits.numpy(), targets.numpy())
        metrics["n_samples"] = int(len(targets))
        metrics["n_classes"] = int(len(dataset.classes))
        return metrics

    loader = torch.utils.data.DataLoader(
        dataset, batch_size=batch_size, num_workers=0, collate_fn=image_captions_collate_fn
    )
    image_feats, text_feats, text_image_index = [], [], []
    n_images = 0
    for images, captions in loader:
        feats = model.encode_image(images.to(device))
        image_feats.append(torch.nn.functional.normalize(feats.float(), dim=-1).cpu())
        flat = [c for caps in captions for c in caps]
        text_image_index.extend(n_images + i for i, caps in enumerate(captions) for _ in caps)
        n_images += len(captions)
        for j in range(0, len(flat), batch_size):
            tokens = tokenizer(flat[j : j + batch_size]).to(device)
            text_feats.append(torch.nn.functional.normalize(model.encode_text(tokens).float(), dim=-1).cpu())
    if not image_feats or not text_feats:
        raise ValueError(f"task {task_dir}: no images or no captions")
    scores = (torch.cat(text_feats) @ torch.cat(image_feats).T).numpy()
    metrics = retrieval_metrics(scores, text_image_index)
    metrics["n_images"] = int(n_images)
    metrics["n_captions"] = int(len(text_image_index))
    return metrics


def evaluate_metadata_task(model, preprocess, tokenizer, task_dir: Path, task_type: str, batch_size: int) -> dict:
    """Zero-shot classification of a DataComp task whose main metric needs the per-sample
    metadata (curate.evaluation.datacomp_special): the classification metrics plus the task's own."""
    from clip_benchmark.datasets.builder import build_dataset
    from clip_benchmark.metrics.zeroshot_classification import run_classification, zero_shot_classifier

    from curate.evaluation.datacomp_special import read_npy_metadata, special_metrics

    device = next(model.parameters()).device
    dataset = build_dataset(
        dataset_name=f"wds/{task_dir.name}",
        root=str(task_dir),
        transform=preprocess,
        split="test",
        download=False,
        task="zeroshot_classification",
    )
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, num_workers=0)
    classifier = zero_shot_classifier(model, tokenizer, dataset.classes, dataset.templates, device.type, amp=False)
    logits, targets = run_classification(model, classifier, loader, device.type, amp=False)
    metadata = read_npy_metadata(task_dir)
    if len(metadata) != len(targets):
        raise ValueError(f"task {task_dir}: {len(targets)} samples but {len(metadata)} metadata rows")
    metrics = classification_metrics(logits.numpy(), targets.numpy())
    metrics.update(special_metrics(task_type, logits.numpy(), targets.numpy(), metadata))
    metrics["n_samples"] = int(len(targets))
    return metrics


_IMAGE_EXTS = ("webp", "png", "jpg", "jpeg")


def _iter_image_npy(task_dir: Path, split: str = "test"):
    """(image bytes, metadata row) of every sample of a webdataset task, in reading order."""
    import io
    import tarfile

    folder = task_dir / split
    for shard in range(int((folder / "nshards.txt").read_text().strip())):
        groups: dict[str, dict[str, bytes]] = {}
        with tarfile.open(folder / f"{shard}.tar") as tar:
            for member in tar:
                if member.isfile():
                    key, _, ext = member.name.rpartition("/")[2].partition(".")
                    groups.setdefault(key, {})[ext.lower()] = tar.extractfile(member).read()
        for key, members in groups.items():
            image = next((members[e] for e in _IMAGE_EXTS if e in members), None)
            if image is None or "npy" not in members:
                raise ValueError(f"task {task_dir}: sample {key} of shard {shard} lacks an image or its .npy")
            yield image, np.load(io.BytesIO(members["npy"])).reshape(-1)


@torch.inference_mode()
def evaluate_fairface_task(model, preprocess, tokenizer, task_dir: Path, task_type: str, batch_size: int) -> dict:
    """FairFace / UTKFace: zero-shot predictions of race, gender, age and toxic labels per face
    (classnames and templates prefixed ``"<objective>:"``), scored by
    `curate.evaluation.datacomp_special.fairface_metrics`."""
    import io

    from clip_benchmark.metrics.zeroshot_classification import zero_shot_classifier
    from PIL import Image

    from curate.evaluation.datacomp_special import FAIRFACE_OBJECTIVES, fairface_metrics

    device = next(model.parameters()).device
    per_objective = {o: {"classnames": [], "templates": []} for o in FAIRFACE_OBJECTIVES}
    for file, field in (("classnames.txt", "classnames"), ("zeroshot_classification_templates.txt", "templates")):
        for line in (task_dir / file).read_text().splitlines():
            if line.strip():
                objective, text = line.split(":", 1)
                per_objective[objective][field].append(text)
    classifiers = [
        zero_shot_classifier(
            model, tokenizer, per_objective[o]["classnames"], per_objective[o]["templates"], device.type, amp=False
        )
        for o in FAIRFACE_OBJECTIVES
    ]
    predictions, metadata, batch = [], [], []

    def flush():
        images = torch.stack([preprocess(Image.open(io.BytesIO(b)).convert("RGB")) for b in batch]).to(device)
        features = torch.nn.functional.normalize(model.encode_image(images).float(), dim=-1)
        predictions.append(torch.stack([(features @ c).argmax(dim=1) for c in classifiers], dim=1).cpu().numpy())
        batch.clear()

    for image, row in _iter_image_npy(task_dir):
        batch.append(image)
        metadata.append(row)
        if len(batch) >= batch_size:
            flush()
    if batch:
        flush()
    metrics = fairface_metrics(np.concatenate(predictions), np.stack(metadata))
    metrics["n_samples"] = int(len(metadata))
    return metrics


def evaluate_suite(
    model_source: str,
    tasks: dict,
    batch_size: int = 256,
    device: str = "cpu",
    pretrained: str | None = None,
    progress=None,
) -> list[dict]:
    """Evaluate the model `model_source` (see `curate.scoring.clip.load_model`) on every task of
    `tasks` = ``{key: {"dir", "type", "main_metric" (metric name or None), "name"}}``, in the
    given order. Returns DataComp records. Task by task (`curate.evaluation.progress.run_tasks`):
    with a `progress` folder each record is kept there as it finishes and a rerun evaluates only
    the tasks without one; a failing task is logged by name, the others still run, and the failures
    are raised together at the end."""
    from curate.evaluation.progress import run_tasks
    from curate.evaluation.task_types import check_runnable
    from curate.scoring.clip import load_model

    check_runnable(tasks, "clip")
    loaded = []

    def evaluate(key, task):
        missing = [k for k in ("dir", "type") if k not in task]
        if missing:
            raise ValueError(f"task {key!r}: missing {missing}")
        if not loaded:  # only when a task is left to evaluate
            loaded.append(load_model(model_source, device=device, pretrained=pretrained))
        model, preprocess, tokenizer = loaded[0]
        log.info("evaluating %s on task %s (%s)", model_source, key, task["dir"])
        metrics = evaluate_task(model, preprocess, tokenizer, task["dir"], task["type"], batch_size)
        main = task.get("main_metric")
        if main is not None and main not in metrics:
            raise ValueError(f"task {key!r}: main_metric {main!r} is not one of {sorted(metrics)}")
        metrics["main_metric"] = None if main is None else float(metrics[main])
        log.info("task %s: %s", key, metrics)
        return {"key": str(key), "dataset": str(task.get("name", key)), "metrics": metrics}

    model_dir = model_source.removeprefix("local-dir:") if pretrained is None else model_source
    return run_tasks(tasks, evaluate, model_dir, progress)


# --------------------------------------------------------------------------------------------
# Records
# --------------------------------------------------------------------------------------------


@torch.inference_mode()
def evaluate_winogavil_task(model, preprocess, tokenizer, task_dir: Path, task_type: str, batch_size: int) -> dict:
    """DataComp's WinoGAViL run: per instance, the cue's prompt against each candidate image;
    the k most similar (k = the number of true associations) scored by Jaccard index.
    ``task_dir``: the test split as ``datasets`` saves it (``fetch_eval_task``)."""
    import datasets

    from curate.evaluation.datacomp_special import winogavil_associations, winogavil_metrics, winogavil_prompt

    split = datasets.load_from_disk(str(task_dir))
    device = next(model.parameters()).device
    instances = []
    for example in split:
        images = torch.stack([preprocess(image) for image in example["candidate_images"]]).to(device)
        image_features = torch.nn.functional.normalize(model.encode_image(images).float(), dim=-1)
        text = tokenizer([winogavil_prompt(example["cue"])]).to(device)
        text_features = torch.nn.functional.normalize(model.encode_text(text).float(), dim=-1)
        similarities = (text_features @ image_features.T).squeeze(0).cpu().numpy()
        instances.append((similarities, winogavil_associations(example["candidates"], example["associations"])))
    if not instances:
        raise ValueError(f"task {task_dir}: no WinoGAViL instances")
    metrics = winogavil_metrics(instances)
    metrics["n_samples"] = len(instances)
    return metrics
