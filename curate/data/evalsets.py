"""Local copies of evaluation suites (DataComp's 40 tasks) in clip_benchmark's webdataset layout.

`fetch_eval_task` puts one task's folder at the path the evaluation rules read
(``data_root/evalsets/<suite>/<task key>``): a symlink to ``<root>/<task key>`` when the suite
names a local copy (``root``; e.g. the folder DataComp's ``download_evalsets.py`` fills), else a
``huggingface_hub.snapshot_download`` of the task's ``source`` dataset repo (DataComp's
``djghosh/wds_<task>_test`` webdatasets). A webdataset task must hold ``test/nshards.txt``.
WinoGAViL is not a webdataset: its local copy is the test split of ``nlphuji/winogavil`` saved
with ``datasets``' save_to_disk (what ``load_dataset`` gives DataComp's evaluation).

Layouts of the tasks MoS's BLIP and LLaVA suites evaluate, each a folder with
``dataset_type.txt`` (its type), ``test/nshards.txt`` and ``test/0.tar`` ... ``test/<n-1>.tar``,
whose samples are the members sharing a key (webdataset's grouping: the key is the name up to
the first dot, the extension the rest):

- ``captioning`` (NoCaps; COCO Caption reads clip_benchmark's retrieval folder of COCO, which has
  the same members): ``<key>.jpg`` (or ``.webp``/``.png``) and ``<key>.txt``, the reference
  captions one a line (NoCaps: ten; COCO: five); NoCaps adds ``<key>.json``
  ``{"image_id": int, "domain": "in-domain" | "near-domain" | "out-domain"}``.
- ``vqa`` (VQA v2): ``<key>.jpg`` and ``<key>.json`` ``{"question_id": int, "question": str,
  "answers": [ten human answers, str], "answer_type": "yes/no" | "number" | "other"}``; VQA
  accuracy of a prediction is ``vqa_accuracy(prediction, answers)`` (curate.data.synthetic.vqa).
- ``nlvr`` (NLVR2): ``<key>.left.jpg``, ``<key>.right.jpg`` and ``<key>.json`` ``{"sentence": str,
  "label": bool}`` (whether the sentence is true of the pair).
- ``refcoco`` (RefCOCO+): ``<key>.jpg`` and ``<key>.json`` ``{"expression": str, "boxes": [[x0, y0,
  x1, y1], ...], "target": int}``: the candidate objects' boxes in pixels of the image, and the
  index of the one the expression refers to (accuracy: the chosen box is the target, or, for a
  predicted box, its IoU with the target's is at least 0.5).

`task_samples` reads every one of them (``{ext: bytes}`` per sample, e.g. ``parts["left.jpg"]``).
"""

from __future__ import annotations

import io
import os
import shutil
import tarfile
from pathlib import Path

import numpy as np

#: Task types whose local copy is not a clip_benchmark webdataset (no test/nshards.txt).
NOT_WEBDATASET = ("winogavil",)


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


#: Image extensions a task sample may carry, in the order they are looked for.
IMAGE_EXTENSIONS = ("jpg", "jpeg", "png", "webp")


def task_samples(task_dir) -> list[dict]:
    """Every sample of a task folder's ``test/*.tar`` as ``{ext: bytes}``, by shard then key."""
    test = Path(task_dir) / "test"
    tars = sorted(test.glob("*.tar"), key=lambda p: int(p.stem) if p.stem.isdigit() else p.stem)
    if not tars:
        raise FileNotFoundError(f"task {task_dir}: no test/*.tar")
    out = []
    for path in tars:
        pending: dict[str, dict] = {}
        with tarfile.open(path) as tar:
            for member in tar:
                if member.isfile() and "." in member.name:
                    key, ext = member.name.rsplit("/", 1)[-1].split(".", 1)
                    pending.setdefault(key, {})[ext.lower()] = tar.extractfile(member).read()
        out.extend(pending[k] for k in sorted(pending))
    return out


def sample_image(parts: dict):
    """A task sample's image as RGB, or None when it has none."""
    from PIL import Image

    data = next((parts[e] for e in IMAGE_EXTENSIONS if e in parts), None)
    return None if data is None else Image.open(io.BytesIO(data)).convert("RGB")


def sample_captions(parts: dict) -> list[str]:
    """A task sample's reference captions: the non-blank lines of its ``.txt``."""
    return [line.strip() for line in parts["txt"].decode("utf-8").splitlines() if line.strip()]


def load_downstream_npz(path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """``(images uint8 (N, H, W, 3), labels int64 (N,), classnames)`` of a labelled downstream set
    written by `curate.data.synthetic.curated.write_downstream_set`."""
    with np.load(path, allow_pickle=False) as z:
        return z["images"], z["labels"].astype(np.int64), [str(c) for c in z["classnames"]]
