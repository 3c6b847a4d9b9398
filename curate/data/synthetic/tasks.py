"""The "synthetic" evaluation suite, written in clip_benchmark's webdataset layout.

``write_task(out_dir, task, n_samples, seed)`` writes::

    out_dir/classnames.txt                        (classification tasks)
    out_dir/zeroshot_classification_templates.txt (classification tasks, one template a line, {c})
    out_dir/dataset_type.txt                      ("classification" or "retrieval")
    out_dir/test/nshards.txt
    out_dir/test/0.tar ...                        (key.jpg + key.cls, or key.jpg + key.txt)

so that ``clip_benchmark.datasets.builder.build_dataset("wds/<task>", root=out_dir, ...)`` loads
it. Eval images come from their own seed stream (``STREAM_TASK``), never the pool's.
"""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import numpy as np

from . import captions as cap
from .render import encode_jpeg, render_scene, render_sign, render_text_in_image
from .world import (
    BACKGROUND_ADJECTIVES,
    BACKGROUNDS,
    COLOUR_NAMES,
    COUNTS,
    DIGITS,
    POSITIONS,
    SHAPES,
    SIZES,
    STREAM_TASK,
    object_class_names,
    random_scene,
    rng_for,
)

TASKS: dict[str, dict[str, str]] = {
    "objects": {"type": "classification", "group": "Objects"},
    "shape": {"type": "classification", "group": "Attributes"},
    "colour": {"type": "classification", "group": "Attributes"},
    "size": {"type": "classification", "group": "Attributes"},
    "background": {"type": "classification", "group": "Attributes"},
    "count": {"type": "classification", "group": "Composition"},
    "position": {"type": "classification", "group": "Composition"},
    "digits": {"type": "classification", "group": "OCR"},
    "retrieval": {"type": "retrieval", "group": "Retrieval"},
    # a probe, not a skill: a colour word written over a scene of another colour; the label is the
    # WRITTEN colour, so its accuracy is how often a model reads instead of looking (the OCR
    # shortcut text-in-image pairs teach). Appended last: the other tasks' seed streams are unchanged.
    "typographic": {"type": "classification", "group": "Probe"},
}
#: captions per retrieval image
RETRIEVAL_CAPTIONS = 5
EVAL_JPEG_QUALITY = 95
_SAMPLES_PER_TAR = 10000

_POSITION_CLASSES = {
    "left": "on the left",
    "right": "on the right",
    "top": "at the top",
    "bottom": "at the bottom",
    "centre": "in the centre",
}
_COUNT_CLASSES = {1: "one shape", 2: "two shapes", 3: "three shapes", 4: "four shapes"}

# (attribute of the scene that is the label, its values in class order)
_ATTRIBUTE_TASKS = {
    "shape": ("shape", SHAPES),
    "colour": ("colour", COLOUR_NAMES),
    "size": ("size", SIZES),
    "background": ("background", BACKGROUNDS),
    "count": ("count", COUNTS),
    "position": ("position", POSITIONS),
}

TEMPLATES: dict[str, list[str]] = {
    "objects": [
        "a photo of a {c}.",
        "the {c}.",
        "a picture of the {c}.",
        "a drawing of a {c}.",
        "a {c} on a background.",
    ],
    "shape": [
        "a photo of a {c}.",
        "a {c}.",
        "the {c}.",
        "a picture of a coloured {c}.",
        "a drawing of a {c}.",
    ],
    "colour": [
        "a photo of a {c} shape.",
        "a {c} shape.",
        "{c} shapes.",
        "something {c}.",
        "a drawing in {c}.",
    ],
    "size": [
        "a photo of a {c} shape.",
        "a {c} shape.",
        "{c} shapes.",
        "a picture of {c} objects.",
        "something {c}.",
    ],
    "background": [
        "a photo of shapes on a {c} background.",
        "shapes on a {c} background.",
        "a {c} background.",
        "objects against a {c} backdrop.",
        "a picture with a {c} background.",
    ],
    "count": [
        "a photo of {c}.",
        "{c}.",
        "a picture of {c}.",
        "exactly {c}.",
        "a drawing of {c}.",
    ],
    "position": [
        "a photo of shapes {c}.",
        "shapes {c}.",
        "a shape {c}.",
        "something {c} of the frame.",
        "objects {c}.",
    ],
    "typographic": [
        "a photo of a {c} shape.",
        "a {c} shape.",
        "{c} shapes.",
        "something {c}.",
        "a drawing in {c}.",
    ],
    "digits": [
        "a photo of {c}.",
        "{c}.",
        "a sign with {c}.",
        "{c} written large.",
        "a picture of {c}.",
    ],
}


def task_classnames(task: str) -> list[str]:
    """Class names of a classification task, in label order."""
    _check_task(task)
    if task == "objects":
        return object_class_names()
    if task == "digits":
        return [f"the number {d}" for d in DIGITS]
    if task == "retrieval":
        raise ValueError("the retrieval task has no classes")
    if task == "typographic":
        return list(COLOUR_NAMES)
    attr, values = _ATTRIBUTE_TASKS[task]
    if task == "background":
        return [BACKGROUND_ADJECTIVES[v] for v in values]
    if task == "count":
        return [_COUNT_CLASSES[v] for v in values]
    if task == "position":
        return [_POSITION_CLASSES[v] for v in values]
    return list(values)


def _check_task(task: str) -> None:
    if task not in TASKS:
        raise ValueError(f"unknown synthetic task {task!r}; known: {list(TASKS)}")


def _write_tars(samples, split_dir: Path) -> int:
    """Write (key, {ext: bytes}) samples into split_dir/{i}.tar; return the shard count."""
    split_dir.mkdir(parents=True, exist_ok=True)
    n_shards = 0
    tar = fd = None
    in_shard = 0
    for key, members in samples:
        if tar is None or in_shard >= _SAMPLES_PER_TAR:
            if tar is not None:
                tar.close()
                fd.close()
            fd = open(split_dir / f"{n_shards}.tar", "wb")
            tar = tarfile.open(fileobj=fd, mode="w|", format=tarfile.USTAR_FORMAT)
            n_shards += 1
            in_shard = 0
        for ext in sorted(members):
            data = members[ext]
            info = tarfile.TarInfo(f"{key}.{ext}")
            info.size = len(data)
            info.mtime = 0
            info.mode = 0o444
            tar.addfile(info, io.BytesIO(data))
        in_shard += 1
    if tar is not None:
        tar.close()
        fd.close()
    return n_shards


def _balanced_labels(rng: np.random.Generator, n: int, k: int) -> np.ndarray:
    return rng.permutation(np.arange(n) % k)


def task_image(task: str, label: int, rng: np.random.Generator, image_size: int = 64):
    """One eval image of class ``label`` of a classification task (PIL RGB)."""
    if task == "digits":
        return render_sign(DIGITS[label], image_size, image_size, rng)
    if task == "typographic":  # the label's colour (and some shape) written over another scene
        image, _, _ = render_text_in_image(random_scene(rng, colour=COLOUR_NAMES[label]), image_size, image_size, rng)
        return image
    if task == "objects":
        colour, shape = object_class_names()[label].split(" ")
        scene = random_scene(rng, colour=colour, shape=shape)
    else:
        attr, values = _ATTRIBUTE_TASKS[task]
        scene = random_scene(rng, **{attr: values[label]})
    return render_scene(scene, image_size, image_size, rng)


def write_task(out_dir, task: str, n_samples: int, seed: int, image_size: int = 64) -> dict:
    """Write one task of the synthetic suite in clip_benchmark's wds layout under ``out_dir``."""
    _check_task(task)
    if n_samples < 1:
        raise ValueError(f"n_samples must be >= 1, got {n_samples}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    task_index = list(TASKS).index(task)
    rng = rng_for(seed, STREAM_TASK, task_index)
    kind = TASKS[task]["type"]
    (out_dir / "dataset_type.txt").write_text(kind + "\n")
    summary = {"task": task, "type": kind, "group": TASKS[task]["group"], "n_samples": int(n_samples)}

    if kind == "retrieval":

        def samples():
            for i in range(n_samples):
                scene = random_scene(rng)
                img = render_scene(scene, image_size, image_size, rng)
                texts = cap.paraphrases(scene, rng, RETRIEVAL_CAPTIONS)
                yield (
                    f"{i:06d}",
                    {
                        "jpg": encode_jpeg(img, EVAL_JPEG_QUALITY),
                        "txt": "\n".join(texts).encode("utf-8"),
                    },
                )

        summary["captions_per_image"] = RETRIEVAL_CAPTIONS
    else:
        classnames = task_classnames(task)
        (out_dir / "classnames.txt").write_text("\n".join(classnames) + "\n")
        (out_dir / "zeroshot_classification_templates.txt").write_text("\n".join(TEMPLATES[task]) + "\n")
        labels = _balanced_labels(rng, n_samples, len(classnames))

        def samples():
            for i, label in enumerate(labels):
                img = task_image(task, int(label), rng, image_size)
                yield (
                    f"{i:06d}",
                    {
                        "jpg": encode_jpeg(img, EVAL_JPEG_QUALITY),
                        "cls": str(int(label)).encode("ascii"),
                    },
                )

        summary["n_classes"] = len(classnames)

    n_shards = _write_tars(samples(), out_dir / "test")
    (out_dir / "test" / "nshards.txt").write_text(f"{n_shards}\n")
    summary["n_shards"] = n_shards
    return summary


def write_suite_task(
    out_dir, key: str, spec: dict, n_samples: int, seed: int, n_train_samples: int | None = None
) -> dict:
    """Write task `key` of a synthetic suite by its type: ``synthetic_vqa`` is the question
    answering task (`curate.data.synthetic.vqa`); ``vqa``, ``nlvr`` and ``refcoco`` are the
    fine-tuned tasks' analogues (`curate.data.synthetic.finetuned_tasks`), with a train split of
    `n_train_samples` (default `n_samples`); a ``captioning`` task is the held-out retrieval
    task's images with their five captions as references; any other key is a task of `TASKS`."""
    from .finetuned_tasks import STREAM_INDEX, write_finetuned_task

    if spec.get("type") == "synthetic_vqa":
        from .vqa import write_vqa_task

        return write_vqa_task(out_dir, n_samples, seed)
    if spec.get("type") in STREAM_INDEX:
        n_train = n_samples if n_train_samples is None else n_train_samples
        return write_finetuned_task(out_dir, spec["type"], n_samples, n_train, seed) | {"task": key}
    if spec.get("type") == "captioning":
        return write_task(out_dir, "retrieval", n_samples, seed) | {"task": key, "type": "captioning"}
    return write_task(out_dir, key, n_samples, seed)
