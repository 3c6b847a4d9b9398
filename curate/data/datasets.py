"""Datasets that are not pools: labelled image sets (ImageNet's train split, the train splits of
DataComp's tasks, the synthetic world's analogues) and sets of image-text pairs (CC12M), each a
config ``datasets`` entry whose ``source`` is one entry of :data:`DATASETS`.

Sources:

- ``synthetic``: a labelled set of one of the synthetic world's classification tasks, generated
  here (`curate.data.synthetic.curated.write_labelled_set`): ``labelled.npz`` in the dataset's
  folder (format ``npz``). The ``objects`` task's is the ImageNet-train analogue.
- ``hub``: a Hugging Face dataset repo as its publisher serves it, fetched once with
  ``snapshot_download`` (``allow_patterns`` of it, at ``revision``) into the dataset's folder; a
  gated repo (ImageNet-1k) takes the token in the environment variable ``token_env``
  (``HF_TOKEN``). ``path`` may name a local folder holding the same files instead (a cluster that
  keeps ImageNet): it is linked, not copied.
- ``local``: a folder already on disk (``path``), linked.
- ``curated``: a curated set of pairs (`curate.data.synthetic.curated.write_curated_set`'s shards).
- ``pool``: a pool's downloaded shards (CC12M is downloaded as a pool is, from its URL list).
- ``group``: several labelled sets drawn together (``members``), as FLYT's E-FLYT-22 draws its 22
  downstream train sets; each member keeps its own classes.

A labelled set's files are read in one of these formats (`iter_labelled`):

- ``npz``: ``images`` uint8 (N, H, W, 3), ``labels`` int (N,) (the synthetic sets);
- ``parquet``: Hugging Face's image datasets: an image column (a struct ``{bytes, path}``, or
  bytes) and an int label column, in ``*.parquet`` files (``ILSVRC/imagenet-1k``: ``image``,
  ``label``, files ``data/train-*.parquet``);
- ``wds``: clip_benchmark's webdataset layout, ``<split>/<n>.tar`` of ``<key>.<jpg|png|webp>`` +
  ``<key>.cls`` (``clip-benchmark/wds_<task>``);
- ``imagefolder``: one folder per class, classes in sorted name order (ImageNet's own train
  folder ``n01440764/*.JPEG ...``, torchvision's ``ImageFolder``).

A labelled set's class names and zero-shot templates come from an evaluation task folder
(``classes: {suite, task}``), as FLYT's code takes them from DataComp's evaluation sets: the set
and the task must list their classes in the same order.
"""

from __future__ import annotations

import io
import json
import logging
import os
import shutil
from pathlib import Path
from typing import Iterator

import numpy as np

from curate.registry import NAME, POSITIVE_INT, SEED, ConfigError, Registry, optional, required

log = logging.getLogger(__name__)

#: The file formats a labelled set's files may have (`iter_labelled`).
FORMATS = ("npz", "parquet", "wds", "imagefolder")
#: Image file extensions of an ``imagefolder`` set and of webdataset members, as they are looked for.
IMAGE_SUFFIXES = (".jpeg", ".jpg", ".png", ".webp")
#: The file a synthetic labelled set is written to, in its dataset folder.
SYNTHETIC_FILE = "labelled.npz"
FETCH_RECORD = "fetch.json"
#: Samples a shuffled stream draws among (webdataset's shuffle buffer).
SHUFFLE_BUFFER = 10_000

DATASETS = Registry("dataset source", key="source")

_CLASSES = {
    "type": ["object", "null"],
    "required": ["suite", "task"],
    "additionalProperties": False,
    "properties": {"suite": NAME, "task": {"type": "string"}},
}
_READING = {
    "format": required({"enum": list(FORMATS)}, "how its files are read (module docstring)"),
    "split": optional({"type": "string"}, "train", "wds: the split folder read"),
    "image_column": optional({"type": "string"}, "image", "parquet: the image column"),
    "label_column": optional({"type": "string"}, "label", "parquet: the label column"),
}
_LABELLED = {
    "classes": optional(
        _CLASSES, None, "the evaluation task whose classnames.txt and zero-shot templates name the set's labels"
    )
}


def _check_classes(config: dict, where: str, entry: dict) -> None:
    classes = entry.get("classes")
    if not classes:
        return
    suite, task = classes["suite"], classes["task"]
    if suite not in config.get("suites", {}):
        raise ConfigError(f"{where}.classes.suite: {suite!r} is not an entry of `suites`")
    if task not in config["suites"][suite]["tasks"]:
        raise ConfigError(f"{where}.classes.task: {task!r} is not in suites.{suite}.tasks")


def dataset_format(entry: dict) -> str:
    """The format its files are read in (`FORMATS`; ``pairs`` for curated sets and pools)."""
    return DATASETS.of(entry).spec["format"](entry)


DATASETS.register(
    "synthetic",
    doc="a labelled set of a synthetic classification task, generated here",
    params={
        "task": required(
            {"type": "string"}, "the synthetic world's classification task (objects: ImageNet's analogue)"
        ),
        "n_per_class": required(POSITIVE_INT, "images per class"),
        "seed": required(SEED),
        "image_size": optional(POSITIVE_INT, 64),
        **_LABELLED,
    },
    check=_check_classes,
    rule="synthesize_dataset",
    format=lambda entry: "npz",
)
DATASETS.register(
    "hub",
    doc="a Hugging Face dataset repo, fetched once (a gated one with the token in `token_env`)",
    params={
        "repo": required({"type": "string", "minLength": 1}, "the Hub dataset repo"),
        "revision": optional({"type": ["string", "null"]}, None, "a branch, tag or commit (default: main)"),
        "allow_patterns": optional({"type": "array", "items": {"type": "string"}}, ["*"], "the repo files fetched"),
        "token_env": optional(
            {"type": "string"}, "HF_TOKEN", "the environment variable holding a Hub token (gated repos)"
        ),
        "path": optional(
            {"type": ["string", "null"]}, None, "a local folder holding the same files, linked instead of fetched"
        ),
        **_READING,
        **_LABELLED,
    },
    check=_check_classes,
    rule="fetch_dataset",
    format=lambda entry: entry["format"],
)
DATASETS.register(
    "local",
    doc="a folder already on disk, linked",
    params={"path": required({"type": "string", "minLength": 1}, "the folder"), **_READING, **_LABELLED},
    check=_check_classes,
    rule="fetch_dataset",
    format=lambda entry: entry["format"],
)
DATASETS.register(
    "curated",
    doc="a curated set of image-text pairs (the synthetic world's)",
    params={"curated_set": required(NAME, "the curated set", ref="curated_sets")},
    format=lambda entry: "pairs",
)
DATASETS.register(
    "pool",
    doc="a pool's downloaded shards (image-text pairs), as a dataset",
    params={"pool": required(NAME, "the pool", ref="pools")},
    format=lambda entry: "pairs",
)


def _check_group(config: dict, where: str, entry: dict) -> None:
    for member in entry["members"]:
        found = config.get("datasets", {}).get(member)
        if found is None:
            continue  # the reference check names it
        if dataset_format(found) in ("pairs", "group"):
            raise ConfigError(f"{where}.members: {member!r} is not a labelled set")
        if not found.get("classes"):
            raise ConfigError(f"{where}.members: {member!r} names no `classes` (a group's texts need them)")


DATASETS.register(
    "group",
    doc="several labelled sets drawn together, each with its own classes (FLYT's E-FLYT-22)",
    params={
        "members": required(
            {"type": "array", "minItems": 1, "uniqueItems": True, "items": NAME},
            "the labelled sets",
            ref="datasets",
        )
    },
    check=_check_group,
    format=lambda entry: "group",
)


def is_pairs(entry: dict) -> bool:
    """Whether a dataset holds image-text pairs (a curated set, a pool), not labelled images."""
    return dataset_format(entry) == "pairs"


def built_here(entry: dict) -> str | None:
    """The rule that makes a dataset's folder (``synthesize_dataset``, ``fetch_dataset``), or None
    for a dataset whose files are another entry's (a curated set, a pool, a group)."""
    return DATASETS.of(entry).spec.get("rule")


# ---------------------------------------------------------------------------------------------
# Fetching


def fetch_dataset(name: str, entry: dict, out_dir, snapshot_download=None, environ=None) -> dict:
    """Put dataset ``name``'s files at ``out_dir`` (a ``hub`` or ``local`` entry) and write
    ``fetch.json`` there (origin, files, sizes); returns the record.

    A local folder (``local``, or ``hub`` with ``path``) is linked: ``out_dir`` becomes a symlink
    to it and the record lives beside it (``<out_dir>.fetch.json``). A Hub repo is fetched with
    ``snapshot_download`` (`snapshot_download` defaults to huggingface_hub's), with the token of
    ``entry["token_env"]`` when that variable is set: a gated repo (ImageNet-1k) without one
    raises, naming the variable."""
    environ = os.environ if environ is None else environ
    out_dir = Path(out_dir)
    if out_dir.is_symlink() or out_dir.is_file():
        out_dir.unlink()
    elif out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    local = entry.get("path")
    if local:
        source = Path(local).expanduser().resolve()
        if not source.is_dir():
            raise FileNotFoundError(f"datasets.{name}.path: no folder {source}")
        os.symlink(source, out_dir, target_is_directory=True)
        record = {"name": name, "origin": str(source), "linked": True}
        check_layout(name, entry, out_dir)
        _write_json(out_dir.with_name(out_dir.name + "." + FETCH_RECORD), record)
        return record
    if entry["source"] != "hub":
        raise ValueError(f"datasets.{name}: a {entry['source']!r} dataset is not fetched")
    if snapshot_download is None:
        from huggingface_hub import snapshot_download
    token = environ.get(entry["token_env"]) or None
    try:
        snapshot_download(
            repo_id=entry["repo"],
            repo_type="dataset",
            revision=entry["revision"],
            allow_patterns=list(entry["allow_patterns"]),
            local_dir=str(out_dir),
            token=token,
        )
    except Exception as err:  # noqa: BLE001 - gated or missing repos answer 401/403/404
        status = getattr(getattr(err, "response", None), "status_code", None)
        gated = type(err).__name__ == "GatedRepoError" or status in (401, 403)
        if gated:
            how = "it is empty" if token is None else "its token has no access"
            raise PermissionError(
                f"datasets.{name}: hf://datasets/{entry['repo']} is gated: accept its terms on the Hub and put a "
                f"token in ${entry['token_env']} ({how}), or point datasets.{name}.path at a local copy"
            ) from err
        raise
    shutil.rmtree(out_dir / ".cache", ignore_errors=True)
    check_layout(name, entry, out_dir)
    files = sorted(p for p in out_dir.rglob("*") if p.is_file() and p.name != FETCH_RECORD)
    record = {
        "name": name,
        "origin": f"hf://datasets/{entry['repo']}@{entry['revision'] or 'main'}",
        "allow_patterns": list(entry["allow_patterns"]),
        "files": [{"path": p.relative_to(out_dir).as_posix(), "bytes": p.stat().st_size} for p in files],
    }
    _write_json(out_dir / FETCH_RECORD, record)
    return record


def check_layout(name: str, entry: dict, folder) -> None:
    """Raise naming the dataset when ``folder`` does not hold files of its format."""
    folder = Path(folder)
    fmt = dataset_format(entry)
    if fmt == "npz" and not (folder / SYNTHETIC_FILE).is_file():
        raise FileNotFoundError(f"datasets.{name}: {folder} has no {SYNTHETIC_FILE}")
    if fmt == "parquet" and not any(folder.rglob("*.parquet")):
        raise FileNotFoundError(f"datasets.{name}: {folder} holds no *.parquet file")
    if fmt == "wds" and not any((folder / entry["split"]).glob("*.tar")):
        raise FileNotFoundError(f"datasets.{name}: {folder} has no {entry['split']}/*.tar (clip_benchmark's layout)")
    if fmt == "imagefolder" and not any(p.is_dir() for p in folder.iterdir()):
        raise FileNotFoundError(f"datasets.{name}: {folder} has no class folders")


def _write_json(path: Path, obj) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2) + "\n")
    os.replace(tmp, path)


# ---------------------------------------------------------------------------------------------
# Reading


def read_classes(task_dir) -> tuple[list[str], list[str]]:
    """``(classnames, templates)`` of an evaluation task folder (clip_benchmark's
    ``classnames.txt`` and ``zeroshot_classification_templates.txt``, ``{c}`` placeholders)."""
    task_dir = Path(task_dir)
    classnames = [line.strip() for line in (task_dir / "classnames.txt").read_text().splitlines() if line.strip()]
    templates_file = task_dir / "zeroshot_classification_templates.txt"
    templates = [line.strip() for line in templates_file.read_text().splitlines() if line.strip()]
    if not classnames or not templates:
        raise ValueError(f"{task_dir}: no class names or no zero-shot templates")
    return classnames, templates


def labelled_files(entry: dict, folder) -> list[Path]:
    """The files of a labelled set in reading order: the npz, the parquet files or tars in sorted
    path (tars: numeric) order, or the class folders of an image folder."""
    folder = Path(folder)
    fmt = dataset_format(entry)
    if fmt == "npz":
        return [folder / SYNTHETIC_FILE]
    if fmt == "parquet":
        files = sorted(folder.rglob("*.parquet"), key=lambda p: p.relative_to(folder).as_posix())
    elif fmt == "wds":
        files = sorted(
            (folder / entry["split"]).glob("*.tar"),
            key=lambda p: (0, int(p.stem), "") if p.stem.isdigit() else (1, 0, p.stem),
        )
    elif fmt == "imagefolder":
        files = sorted(p for p in folder.iterdir() if p.is_dir())
    else:
        raise ValueError(f"{folder}: a {fmt!r} dataset is not a labelled set")
    if not files:
        raise FileNotFoundError(f"{folder}: no files of a {fmt} labelled set")
    return files


def _decode(data: bytes):
    from PIL import Image

    return Image.open(io.BytesIO(data)).convert("RGB")


def _iter_file(entry: dict, path: Path, class_index: int | None = None) -> Iterator[tuple[object, int]]:
    """``(image, label)`` of one file of a labelled set: PIL images (npz: uint8 arrays)."""
    fmt = dataset_format(entry)
    if fmt == "npz":
        with np.load(path, allow_pickle=False) as z:
            images, labels = z["images"], z["labels"]
        for image, label in zip(images, labels):
            yield image, int(label)
    elif fmt == "parquet":
        import pyarrow.parquet as pq

        columns = [entry["image_column"], entry["label_column"]]
        for batch in pq.ParquetFile(path).iter_batches(batch_size=256, columns=columns):
            for image, label in zip(*(batch.column(c).to_pylist() for c in columns)):
                data = image.get("bytes") if isinstance(image, dict) else image
                if data is None or label is None:
                    continue
                yield _decode(data), int(label)
    elif fmt == "wds":
        from curate.data.evalsets import _shard_samples, sample_image

        for key, parts in _shard_samples(path):
            if "cls" not in parts:
                continue
            image = sample_image(parts)
            if image is not None:
                yield image, int(parts["cls"].decode("ascii").strip())
    elif fmt == "imagefolder":
        for image_path in sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES):
            yield _decode(image_path.read_bytes()), int(class_index)
    else:
        raise ValueError(f"{path}: a {fmt!r} dataset is not a labelled set")


def iter_labelled(entry: dict, folder, shuffle_seed: int | None = None, buffer: int = SHUFFLE_BUFFER):
    """The ``(image, label)`` samples of a labelled set, a file at a time. With ``shuffle_seed``
    the file order is permuted and samples are drawn from a buffer of ``buffer`` samples
    (webdataset's shuffle), both from that seed; without, in reading order."""
    files = labelled_files(entry, folder)
    class_of = {path: i for i, path in enumerate(files)} if dataset_format(entry) == "imagefolder" else {}
    if shuffle_seed is None:
        for path in files:
            yield from _iter_file(entry, path, class_of.get(path))
        return
    rng = np.random.default_rng(int(shuffle_seed))
    pool: list = []
    for index in rng.permutation(len(files)):
        path = files[int(index)]
        for sample in _iter_file(entry, path, class_of.get(path)):
            pool.append(sample)
            if len(pool) >= buffer:
                yield pool.pop(int(rng.integers(len(pool))))
    while pool:
        yield pool.pop(int(rng.integers(len(pool))))


def labelled_size(entry: dict, folder) -> int:
    """The number of samples of a labelled set (from the files' headers where the format has them:
    npz arrays, parquet metadata, tar member lists; an image folder's image files)."""
    import tarfile

    fmt = dataset_format(entry)
    files = labelled_files(entry, folder)
    if fmt == "npz":
        with np.load(files[0], allow_pickle=False) as z:
            return int(len(z["labels"]))
    if fmt == "parquet":
        import pyarrow.parquet as pq

        return int(sum(pq.ParquetFile(p).metadata.num_rows for p in files))
    if fmt == "wds":
        total = 0
        for path in files:
            with tarfile.open(path) as tar:
                total += sum(1 for m in tar if m.isfile() and m.name.rsplit("/", 1)[-1].endswith(".cls"))
        return total
    return int(sum(1 for d in files for p in d.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES))


def as_pil(image):
    """A PIL RGB image of a sample's image (uint8 arrays, as npz sets hold them, are converted)."""
    from PIL import Image

    if isinstance(image, Image.Image):
        return image
    return Image.fromarray(np.asarray(image, dtype=np.uint8)).convert("RGB")
