"""Local copies of evaluation suites in clip_benchmark's webdataset layout, and their readers.

`fetch_eval_task` puts one task's folder at the path the evaluation rules read
(``data_root/evalsets/<suite>/<task key>``): a symlink to ``<root>/<task key>`` when the suite
names a local copy (``root``; e.g. the folder DataComp's ``download_evalsets.py`` fills), else a
``huggingface_hub.snapshot_download`` of the task's ``source`` dataset repo (DataComp's
``djghosh/wds_<task>_test`` webdatasets). A webdataset task must hold ``test/nshards.txt``.
WinoGAViL is not a webdataset: its local copy is the test split of ``nlphuji/winogavil`` saved
with ``datasets``' save_to_disk (what ``load_dataset`` gives DataComp's evaluation).

**A task folder** (clip_benchmark's wds shape)::

    <task>/test/nshards.txt          the number of shards, n
    <task>/test/0.tar ... (n-1).tar  the samples: tar members "<key>.<ext>", grouped by key
    <task>/train/nshards.txt, train/<i>.tar   the same, for tasks fine-tuned before scoring

Zero-shot tasks hold ``test/`` only: classification (``<key>.jpg`` + ``<key>.cls``, plus
``classnames.txt`` and ``zeroshot_classification_templates.txt``), retrieval and captioning
(``<key>.jpg`` + ``<key>.txt``, one reference caption a line; NoCaps has ten and adds
``<key>.json`` ``{"image_id": int, "domain": "in-domain" | "near-domain" | "out-domain"}``; COCO
Caption reads clip_benchmark's retrieval folder of COCO, which has the same members). The tasks MoS Table 3 evaluates
after BLIP's task fine-tuning (`FINETUNED_TYPES`) hold ``train/`` (the fine-tuning split) and
``test/`` (the scored split), with these samples (``<key>.json`` UTF-8; images JPEG, or PNG/WebP
under the same names with their own extension):

- **VQA v2** (``type: vqa``): ``<key>.jpg`` + ``<key>.json`` ``{"question": str, "answers": [10
  str], "answer_type": "yes/no" | "number" | "other", "candidates": [str, ...]}``. ``answers`` are
  the ten annotators' raw answers (VQA v2's ``answers[*].answer``; the test split needs them, so
  a real copy's test split is VQA v2 val, whose answers are public, not test-dev); ``candidates``
  is the answer list the model ranks (BLIP's ``answer_list.json``, the same list in every sample).
  Training reads ``question`` and ``answers`` (each distinct answer weighted by its share of the
  ten, as BLIP's VQA dataset does).
- **NLVR2** (``type: nlvr``): ``<key>.left.jpg`` + ``<key>.right.jpg`` (the pair's two images, in
  NLVR2's order) + ``<key>.json`` ``{"sentence": str, "label": true | false}``.
- **RefCOCO+** (``type: refcoco``): ``<key>.jpg`` + ``<key>.json`` ``{"expression": str, "boxes":
  [[x0, y0, x1, y1], ...], "target": int}``: the candidate boxes in pixels of the stored image
  (corners, not COCO's x, y, w, h), and the index of the box the expression refers to. A real
  copy takes one sample per referring expression, its boxes the image's candidate regions
  (RefCOCO+'s COCO ground-truth objects of the image, or a detector's proposals).

`task_samples` / `iter_task_samples` read a split's samples as ``{ext: bytes}``;
`vqa_example`, `nlvr_example` and `refcoco_example` decode one sample of each layout, raising
with the sample's key when a member is missing or malformed.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import tarfile
from pathlib import Path

import numpy as np

#: Task types whose local copy is not a clip_benchmark webdataset (no test/nshards.txt).
NOT_WEBDATASET = ("winogavil",)
#: Task types fine-tuned on the folder's train split before its test split is scored.
FINETUNED_TYPES = ("vqa", "nlvr", "refcoco")
#: Samples a training stream shuffles among (after shuffling the shard order).
SHUFFLE_BUFFER = 1000


def fetch_eval_task(task_key: str, task: dict, out_dir, root=None, snapshot_download=None, load_dataset=None) -> str:
    """Make `out_dir` the task's folder; returns where it came from. Raises naming the task when
    the copy is not a clip_benchmark webdataset folder."""
    out_dir = Path(out_dir)
    if out_dir.is_symlink() or out_dir.is_file():
        out_dir.unlink()
    elif out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    if root is not None:
        source = (Path(root) / task_key).resolve()
        if not source.is_dir():
            raise FileNotFoundError(f"task {task_key}: no folder {source} in the suite's root {root}")
        _check_layout(task_key, task, source)
        os.symlink(source, out_dir, target_is_directory=True)
        return str(source)
    if not task.get("source"):
        raise ValueError(f"task {task_key}: no `source` to download it from and no suite `root`")
    if task.get("type") == "winogavil":
        return _fetch_datasets_split(task_key, task, out_dir, load_dataset)
    if snapshot_download is None:
        from huggingface_hub import snapshot_download
    snapshot_download(repo_id=task["source"], repo_type="dataset", local_dir=str(out_dir))
    shutil.rmtree(out_dir / ".cache", ignore_errors=True)
    _check_layout(task_key, task, out_dir)
    return f"hf://datasets/{task['source']}"


def _fetch_datasets_split(task_key: str, task: dict, out_dir: Path, load_dataset=None) -> str:
    """A `datasets` dataset's test split (WinoGAViL, as DataComp loads it) saved with save_to_disk."""
    if load_dataset is None:
        from datasets import load_dataset
    split = load_dataset(task["source"], split="test", cache_dir=str(out_dir.parent / ".hf_cache"))
    split.save_to_disk(str(out_dir))
    _check_layout(task_key, task, out_dir)
    return f"hf://datasets/{task['source']} (test split)"


def _check_layout(task_key: str, task: dict, folder: Path) -> None:
    if task.get("type") in NOT_WEBDATASET:
        if not (folder / "state.json").is_file():
            raise FileNotFoundError(f"task {task_key}: {folder} has no state.json (not a split saved by `datasets`)")
        return
    if not (folder / "test" / "nshards.txt").is_file():
        raise FileNotFoundError(f"task {task_key}: {folder} has no test/nshards.txt (not a clip_benchmark webdataset)")
    if task.get("type") in FINETUNED_TYPES and not (folder / "train" / "nshards.txt").is_file():
        raise FileNotFoundError(
            f"task {task_key}: {folder} has no train/nshards.txt (a {task['type']} task is fine-tuned on its train split)"
        )


#: Image extensions a task sample may carry, in the order they are looked for.
IMAGE_EXTENSIONS = ("jpg", "jpeg", "png", "webp")


def split_shards(task_dir, split: str = "test") -> list[Path]:
    """A split's ``*.tar`` shards in numeric order; raises when there are none."""
    folder = Path(task_dir) / split
    tars = sorted(folder.glob("*.tar"), key=lambda p: (0, int(p.stem), "") if p.stem.isdigit() else (1, 0, p.stem))
    if not tars:
        raise FileNotFoundError(f"task {task_dir}: no {split}/*.tar")
    return tars


def _shard_samples(path: Path):
    """``(key, {ext: bytes})`` of one shard, by key. The extension is everything after the key's
    first dot (``left.jpg``), lower-cased, as webdataset groups members."""
    pending: dict[str, dict] = {}
    with tarfile.open(path) as tar:
        for member in tar:
            if member.isfile() and "." in member.name:
                key, ext = member.name.rsplit("/", 1)[-1].split(".", 1)
                pending.setdefault(key, {})[ext.lower()] = tar.extractfile(member).read()
    for key in sorted(pending):
        yield key, pending[key]


def task_samples(task_dir, split: str = "test") -> list[dict]:
    """Every sample of a task folder's ``<split>/*.tar`` as ``{ext: bytes}``, by shard then key."""
    return [parts for path in split_shards(task_dir, split) for _, parts in _shard_samples(path)]


def iter_task_samples(task_dir, split: str = "test", shuffle_seed: int | None = None, buffer: int = SHUFFLE_BUFFER):
    """The samples of a split one at a time (``{ext: bytes}`` with ``__key__``), a shard at a time.
    With ``shuffle_seed``: the shard order is permuted and samples are drawn from a buffer of
    ``buffer`` (webdataset's shuffle), both from that seed."""
    shards = split_shards(task_dir, split)
    if shuffle_seed is None:
        for path in shards:
            for key, parts in _shard_samples(path):
                yield parts | {"__key__": f"{path.stem}/{key}"}
        return
    rng = np.random.default_rng(int(shuffle_seed))
    pool: list[dict] = []
    for index in rng.permutation(len(shards)):
        path = shards[int(index)]
        for key, parts in _shard_samples(path):
            pool.append(parts | {"__key__": f"{path.stem}/{key}"})
            if len(pool) >= buffer:
                yield pool.pop(int(rng.integers(len(pool))))
    while pool:
        yield pool.pop(int(rng.integers(len(pool))))


def sample_image(parts: dict, name: str = ""):
    """A task sample's image as RGB, or None when it has none. ``name`` picks one of several
    (``left``: the ``left.jpg`` member)."""
    from PIL import Image

    prefix = f"{name}." if name else ""
    data = next((parts[prefix + e] for e in IMAGE_EXTENSIONS if prefix + e in parts), None)
    return None if data is None else Image.open(io.BytesIO(data)).convert("RGB")


def _sample_json(parts: dict, required: dict) -> dict:
    key = parts.get("__key__", "?")
    if "json" not in parts:
        raise ValueError(f"sample {key}: no .json member")
    meta = json.loads(parts["json"].decode("utf-8"))
    for field_name, kind in required.items():
        value = meta.get(field_name)
        # bool is an int to Python: a label must be a bool, a target an int that is not one
        if not (isinstance(value, kind) and (kind is bool or not isinstance(value, bool))):
            raise ValueError(
                f"sample {key}: json field {field_name!r} must be a {kind.__name__}, got {meta.get(field_name)!r}"
            )
    return meta


def _required_image(parts: dict, name: str = ""):
    image = sample_image(parts, name)
    if image is None:
        what = f"{name} image" if name else "image"
        raise ValueError(f"sample {parts.get('__key__', '?')}: no {what} ({', '.join(IMAGE_EXTENSIONS)})")
    return image


def vqa_example(parts: dict, with_image: bool = True) -> dict:
    """A VQA v2 sample: ``image``, ``question``, ``answers`` (10), ``answer_type``, ``candidates``."""
    meta = _sample_json(parts, {"question": str, "answers": list, "candidates": list})
    if not meta["answers"] or not meta["candidates"]:
        raise ValueError(f"sample {parts.get('__key__', '?')}: empty answers or candidates")
    out = {k: meta[k] for k in ("question", "answers", "candidates")} | {"answer_type": meta.get("answer_type")}
    if with_image:
        out["image"] = _required_image(parts)
    return out


def nlvr_example(parts: dict, with_images: bool = True) -> dict:
    """An NLVR2 sample: ``left``, ``right`` (images), ``sentence``, ``label`` (bool)."""
    meta = _sample_json(parts, {"sentence": str, "label": bool})
    out = {"sentence": meta["sentence"], "label": meta["label"]}
    if with_images:
        out |= {"left": _required_image(parts, "left"), "right": _required_image(parts, "right")}
    return out


def refcoco_example(parts: dict, with_image: bool = True) -> dict:
    """A RefCOCO+ sample: ``image``, ``expression``, ``boxes`` ([[x0, y0, x1, y1], ...]), ``target``."""
    meta = _sample_json(parts, {"expression": str, "boxes": list, "target": int})
    key = parts.get("__key__", "?")
    boxes = meta["boxes"]
    if not boxes or any(len(b) != 4 or not (b[2] > b[0] and b[3] > b[1]) for b in boxes):
        raise ValueError(f"sample {key}: boxes must be non-empty [x0, y0, x1, y1] with x1 > x0, y1 > y0: {boxes}")
    if not 0 <= meta["target"] < len(boxes):
        raise ValueError(f"sample {key}: target {meta['target']} is not a box index (0..{len(boxes) - 1})")
    out = {"expression": meta["expression"], "boxes": [[float(v) for v in b] for b in boxes], "target": meta["target"]}
    if with_image:
        out["image"] = _required_image(parts)
    return out


def sample_captions(parts: dict) -> list[str]:
    """A task sample's reference captions: the non-blank lines of its ``.txt``."""
    return [line.strip() for line in parts["txt"].decode("utf-8").splitlines() if line.strip()]
