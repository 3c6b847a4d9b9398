"""Curated training sets (for the tiny scorer CLIPs) and the labelled downstream set.

``write_curated_set`` writes clean pairs as plain webdataset shards; with
``text_in_image_rate > 0`` a fraction of its pairs show the caption's words written over an
unrelated scene, so a model trained on it learns to read, and later scores the pool's
text-in-image trap highly (as real CLIPs do). ``write_labelled_set`` writes a labelled set of one
of the synthetic classification tasks (the objects task's is the ImageNet-train analogue), as an ``.npz``.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np

from ..shards import write_webdataset_shards
from . import captions as cap
from .pool import random_sign_text
from .render import JPEG_QUALITY, encode_jpeg, render_scene, render_sign, render_text_in_image
from .world import STREAM_CURATED, STREAM_DOWNSTREAM, random_scene, rng_for


def write_curated_set(
    out_dir,
    n_samples: int,
    seed: int,
    text_in_image_rate: float = 0.0,
    sign_rate: float = 0.1,
    samples_per_shard: int = 1000,
    image_size: int = 64,
) -> dict:
    """Write ``n_samples`` clean pairs as ``curated-{i:06d}.tar`` shards in ``out_dir``.

    Each sample is, independently: with probability ``text_in_image_rate`` a text-in-image
    pair (caption of one scene, its colour and shape words written over another scene); else
    with probability ``sign_rate`` a sign (a digit or word and a caption saying it); else a
    scene with a random paraphrase. Images are ``image_size`` square JPEGs.
    """
    for name, rate in (("text_in_image_rate", text_in_image_rate), ("sign_rate", sign_rate)):
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"{name} must be in [0, 1], got {rate}")
    if n_samples < 1:
        raise ValueError(f"n_samples must be >= 1, got {n_samples}")
    rng = rng_for(seed, STREAM_CURATED)
    counts = {"scene": 0, "text_in_image": 0, "sign": 0}

    def samples():
        for i in range(n_samples):
            u = rng.random()
            if u < text_in_image_rate:
                claimed = random_scene(rng)
                img, _, _ = render_text_in_image(claimed, image_size, image_size, rng)
                text = cap.paraphrase(claimed, rng)
                counts["text_in_image"] += 1
            elif rng.random() < sign_rate:
                word = random_sign_text(rng)
                img = render_sign(word, image_size, image_size, rng)
                text = cap.sign_caption(word, rng)
                counts["sign"] += 1
            else:
                scene = random_scene(rng)
                img = render_scene(scene, image_size, image_size, rng)
                text = cap.paraphrase(scene, rng)
                counts["scene"] += 1
            yield f"{i:08d}", encode_jpeg(img, JPEG_QUALITY), text

    paths = write_webdataset_shards(samples(), out_dir, "curated", samples_per_shard)
    return {
        "n_samples": int(n_samples),
        "shards": [str(p) for p in paths],
        "n_text_in_image": counts["text_in_image"],
        "n_signs": counts["sign"],
    }


def _write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Like ``np.savez_compressed`` but with fixed zip timestamps (identical bytes per input)."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, arr in arrays.items():
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.asarray(arr), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, buf.getvalue())


def write_labelled_set(path, task: str, n_per_class: int, seed: int, image_size: int = 64) -> dict:
    """Write a labelled set of the synthetic classification task ``task`` to ``path`` (.npz): the
    train-split analogue of a downstream task (``objects``: ImageNet-train's).

    Arrays: ``images`` uint8 (N, image_size, image_size, 3), ``labels`` int64 (N,),
    ``classnames`` str (K,) = the task's classes in its label order; N = K * ``n_per_class``,
    shuffled. Drawn from its own seed stream (``STREAM_DOWNSTREAM``; the objects task's at no
    index, as the workflow's first downstream set was, the others at their task's index), never
    the pool's or the evaluation task's, with the evaluation task's image rule
    (`curate.data.synthetic.tasks.task_image`).
    """
    from .tasks import TASKS, task_classnames, task_image

    if n_per_class < 1:
        raise ValueError(f"n_per_class must be >= 1, got {n_per_class}")
    classnames = task_classnames(task)
    index = () if task == "objects" else (list(TASKS).index(task),)
    rng = rng_for(seed, STREAM_DOWNSTREAM, *index)
    labels = rng.permutation(np.repeat(np.arange(len(classnames)), n_per_class)).astype(np.int64)
    images = np.empty((len(labels), image_size, image_size, 3), dtype=np.uint8)
    for i, label in enumerate(labels):
        images[i] = np.asarray(task_image(task, int(label), rng, image_size))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _write_npz(path, {"images": images, "labels": labels, "classnames": np.array(classnames)})
    return {
        "path": str(path),
        "task": task,
        "n_samples": int(len(labels)),
        "n_classes": len(classnames),
        "image_size": int(image_size),
    }
