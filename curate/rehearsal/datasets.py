"""Every ``datasets:`` entry the workflow fetches from the Hub (config/datasets.yaml, ``source:
hub``), as its repo serves it, with tiny contents (`curate.rehearsal`): ``R/hub/datasets/<repo>/``.

- ``ILSVRC/imagenet-1k``: Hugging Face's parquet conversion of ImageNet-1k, ``data/train-<i>-of-
  <n>.parquet`` (and one validation file, which the workflow's ``allow_patterns`` leave out), columns
  ``image`` (a struct ``{bytes, path}`` of a JPEG) and ``label`` (int64). Its labels index the
  classes of the rehearsal's ImageNet-1k evaluation task (``clip-benchmark/wds_imagenet1k``,
  `curate.rehearsal.evalsets`): the same synthetic attribute and chosen classes, in that task's
  ``classnames.txt`` order, as ImageNet's train labels index DataComp's ImageNet class names.
  Its images are drawn from their own seed stream, never the evaluation task's.

A Hub dataset entry whose repo has no builder here is an error naming it: a new catalogue entry
needs its tiny stand-in before the rehearsal can run.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from curate.rehearsal.files import write_text
from curate.rehearsal.hub import repo_dir

#: no dataset file holds a URL
USES_PORT = False
CATALOGUE = Path(__file__).resolve().parents[2] / "config" / "datasets.yaml"

#: Hub dataset repos built here: the evaluation task source (and its ANALOGUES key) whose classes
#: the labels index, images per class and split, and how many train parquet files
HUB_DATASETS = {
    "ILSVRC/imagenet-1k": {
        "classes_of": "clip-benchmark/wds_imagenet1k",
        "key": "imagenet1k",
        "per_class": {"train": 6, "validation": 2},
        "files": {"train": 2, "validation": 1},
    }
}


def catalogue(path=CATALOGUE) -> dict:
    """The ``datasets`` of the catalogue."""
    import yaml

    with open(path, encoding="utf-8") as f:
        return yaml.safe_load(f)["datasets"]


def hub_repos(datasets: dict) -> dict[str, list[str]]:
    """``repo -> [dataset names]`` of the entries fetched from the Hub."""
    out: dict[str, list[str]] = {}
    for name, entry in sorted(datasets.items()):
        if entry.get("source") == "hub":
            out.setdefault(str(entry["repo"]), []).append(name)
    return out


def _jpeg(image) -> bytes:
    buf = io.BytesIO()
    image.convert("RGB").save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def build_labelled_parquet(folder: Path, classes_of: str, key: str, per_class: dict, files: dict) -> dict:
    """A labelled image set in the Hub's parquet layout (module docstring); returns its summary."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from curate.data.synthetic.tasks import task_image
    from curate.rehearsal.evalsets import ANALOGUES, IMAGE_SIZE, _analogue_classes, _rng

    attribute, k = ANALOGUES[key]
    chosen, classnames, _ = _analogue_classes(attribute, k, _rng(classes_of))  # the task's own draw
    summary = {"classes": len(classnames), "analogue": attribute}
    image_type = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    for stream, split in enumerate(sorted(per_class), start=1):
        rng = _rng(classes_of, 100 + stream)  # a stream of its own: never the task's images
        labels = rng.permutation(np.repeat(np.arange(len(chosen)), per_class[split]))
        images = [
            {"bytes": _jpeg(task_image(attribute, chosen[int(y)], rng, IMAGE_SIZE)), "path": f"{split}_{i:06d}.JPEG"}
            for i, y in enumerate(labels)
        ]
        n = files[split]
        for part, rows in enumerate(np.array_split(np.arange(len(labels)), n)):
            table = pa.table(
                {
                    "image": pa.array([images[int(i)] for i in rows], type=image_type),
                    "label": pa.array([int(labels[int(i)]) for i in rows], type=pa.int64()),
                }
            )
            path = folder / "data" / f"{split}-{part:05d}-of-{n:05d}.parquet"
            path.parent.mkdir(parents=True, exist_ok=True)
            pq.write_table(table, path)
        summary[split] = int(len(labels))
    write_text(
        folder / "README.md",
        f"# Tiny stand-in of {folder.parent.name}/{folder.name}\n\nParquet files `data/<split>-*.parquet` with "
        f"columns `image` ({{bytes, path}}) and `label`; labels index the classes of {classes_of}.\n",
    )
    return summary


def outputs(root) -> list[Path]:
    return [repo_dir(root, "dataset", repo) for repo in hub_repos(catalogue())]


def build(root, port: int, datasets: dict | None = None) -> dict:
    """Build every Hub repo of `datasets` (default: the catalogue's) under `root`; returns what
    was built per repo. (`port` is unused: no dataset file holds a URL.)"""
    import shutil

    root = Path(root)
    summary = {}
    for repo, names in hub_repos(catalogue() if datasets is None else datasets).items():
        how = HUB_DATASETS.get(repo)
        if how is None:
            raise ValueError(f"datasets.{names[0]}: the rehearsal has no tiny stand-in for Hub dataset {repo}")
        folder = repo_dir(root, "dataset", repo)
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
        summary[repo] = {"datasets": names, **build_labelled_parquet(folder, **how)}
    return summary
