"""The ``datasets`` catalogue (curate.data.datasets): fetching a Hub dataset (ImageNet-1k's parquet
layout, as the rehearsal builds it), a gated repo without a token, a linked local copy, and reading
labelled sets in each format, shuffled or not."""

import fnmatch
import io
import os
import shutil
import tarfile

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import pytest
from PIL import Image

from curate.data.datasets import (
    DATASETS,
    SYNTHETIC_FILE,
    check_layout,
    fetch_dataset,
    iter_labelled,
    labelled_files,
    labelled_size,
    read_classes,
)
from curate.rehearsal import datasets as rehearsal_datasets
from curate.rehearsal.hub import repo_dir

IMAGENET = {
    "source": "hub",
    "repo": "ILSVRC/imagenet-1k",
    "allow_patterns": ["data/train-*.parquet"],
    "format": "parquet",
}


def complete(entry):
    return DATASETS.complete(entry, "datasets.test")


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    """The rehearsal's Hub dataset repos of the catalogue, built."""
    root = tmp_path_factory.mktemp("hub")
    summary = rehearsal_datasets.build(root, 0)
    return root, summary


def copying_snapshot_download(root, calls):
    """huggingface_hub's ``snapshot_download`` over the built repo folders (honours allow_patterns)."""

    def snapshot_download(repo_id, repo_type, revision, allow_patterns, local_dir, token):
        calls.append({"repo_id": repo_id, "repo_type": repo_type, "revision": revision, "token": token})
        source = repo_dir(root, repo_type, repo_id)
        for path in sorted(source.rglob("*")):
            rel = path.relative_to(source).as_posix()
            if path.is_file() and any(fnmatch.fnmatch(rel, p) for p in allow_patterns):
                os.makedirs(os.path.join(local_dir, os.path.dirname(rel)), exist_ok=True)
                shutil.copyfile(path, os.path.join(local_dir, rel))
        return local_dir

    return snapshot_download


def test_every_hub_dataset_of_the_catalogue_has_a_tiny_stand_in(hub, tmp_path):
    root, summary = hub
    hub_entries = {n for n, e in rehearsal_datasets.catalogue().items() if e["source"] == "hub"}
    assert "imagenet-train" in hub_entries
    assert {n for built in summary.values() for n in built["datasets"]} == hub_entries
    folder = repo_dir(root, "dataset", "ILSVRC/imagenet-1k")
    names = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*.parquet"))
    assert names == [
        "data/train-00000-of-00002.parquet",
        "data/train-00001-of-00002.parquet",
        "data/validation-00000-of-00001.parquet",
    ]
    with pytest.raises(ValueError, match="no tiny stand-in for Hub dataset someone/else"):
        rehearsal_datasets.build(tmp_path, 0, {"x": {"source": "hub", "repo": "someone/else"}})


def test_imagenet_is_fetched_as_the_hub_serves_it_and_read_with_the_tasks_classes(hub, tmp_path):
    from curate.rehearsal.evalsets import ANALOGUES, _analogue_classes, _rng

    root, summary = hub
    entry = complete(IMAGENET)
    calls = []
    record = fetch_dataset(
        "imagenet-train",
        entry,
        tmp_path / "imagenet-train",
        snapshot_download=copying_snapshot_download(root, calls),
        environ={"HF_TOKEN": "hf_secret"},
    )
    assert calls == [{"repo_id": "ILSVRC/imagenet-1k", "repo_type": "dataset", "revision": None, "token": "hf_secret"}]
    assert record["origin"] == "hf://datasets/ILSVRC/imagenet-1k@main"
    assert [f["path"] for f in record["files"]] == [
        "data/train-00000-of-00002.parquet",
        "data/train-00001-of-00002.parquet",
    ]  # the validation file is not fetched
    folder = tmp_path / "imagenet-train"
    assert (folder / "fetch.json").is_file()
    samples = list(iter_labelled(entry, folder))
    n = summary["ILSVRC/imagenet-1k"]["train"]
    assert len(samples) == labelled_size(entry, folder) == n
    attribute, k = ANALOGUES["imagenet1k"]
    _, classnames, _ = _analogue_classes(attribute, k, _rng("clip-benchmark/wds_imagenet1k"))
    labels = np.array([y for _, y in samples])
    assert np.bincount(labels, minlength=len(classnames)).tolist() == [n // len(classnames)] * len(classnames)
    assert all(isinstance(im, Image.Image) and im.mode == "RGB" for im, _ in samples)
    # shuffled: the same samples, another order, the same for a seed
    shuffled = [y for _, y in iter_labelled(entry, folder, shuffle_seed=3, buffer=5)]
    assert sorted(shuffled) == sorted(labels.tolist()) and shuffled != labels.tolist()
    assert shuffled == [y for _, y in iter_labelled(entry, folder, shuffle_seed=3, buffer=5)]


def test_a_gated_repo_without_access_says_what_to_do(tmp_path):
    class Response:
        status_code = 401

    class GatedRepoError(Exception):
        response = Response()

    def refuse(**kwargs):
        raise GatedRepoError("401 Client Error")

    with pytest.raises(PermissionError, match=r"gated.*\$HF_TOKEN \(it is empty\).*datasets\.imagenet-train\.path"):
        fetch_dataset("imagenet-train", complete(IMAGENET), tmp_path / "x", snapshot_download=refuse, environ={})


def test_a_local_copy_is_linked_and_checked(hub, tmp_path):
    root, _ = hub
    source = repo_dir(root, "dataset", "ILSVRC/imagenet-1k")
    entry = complete(dict(IMAGENET, path=str(source)))
    record = fetch_dataset("imagenet-train", entry, tmp_path / "linked")
    assert record["linked"] and (tmp_path / "linked").resolve() == source.resolve()
    assert (tmp_path / "linked.fetch.json").is_file()
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="no \\*.parquet"):
        fetch_dataset("imagenet-train", complete(dict(IMAGENET, path=str(empty))), tmp_path / "again")


def _jpeg(colour):
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), colour).save(buf, format="JPEG")
    return buf.getvalue()


def test_webdataset_and_image_folder_sets_read_in_their_order(tmp_path):
    # clip_benchmark's layout: train/<n>.tar of <key>.jpg + <key>.cls, read in numeric shard order
    for shard, labels in ((10, [2, 0]), (2, [1])):
        path = tmp_path / "wds" / "train" / f"{shard}.tar"
        path.parent.mkdir(parents=True, exist_ok=True)
        with tarfile.open(path, "w") as tar:
            for i, y in enumerate(labels):
                for ext, data in (("jpg", _jpeg((10 * y, 0, 0))), ("cls", str(y).encode())):
                    info = tarfile.TarInfo(f"s{shard}_{i}.{ext}")
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
    wds = complete({"source": "local", "path": str(tmp_path / "wds"), "format": "wds"})
    assert [p.name for p in labelled_files(wds, tmp_path / "wds")] == ["2.tar", "10.tar"]
    assert [y for _, y in iter_labelled(wds, tmp_path / "wds")] == [1, 2, 0]
    assert labelled_size(wds, tmp_path / "wds") == 3
    # ImageNet's own train folder: one folder per class, classes in sorted name order
    for wnid, n in (("n02", 1), ("n01", 2)):
        (tmp_path / "folder" / wnid).mkdir(parents=True)
        for i in range(n):
            (tmp_path / "folder" / wnid / f"{i}.JPEG").write_bytes(_jpeg((0, 0, 0)))
    folder = complete({"source": "local", "path": str(tmp_path / "folder"), "format": "imagefolder"})
    assert [y for _, y in iter_labelled(folder, tmp_path / "folder")] == [0, 0, 1]
    assert labelled_size(folder, tmp_path / "folder") == 3
    with pytest.raises(FileNotFoundError, match="clip_benchmark"):
        check_layout("x", wds, tmp_path / "folder")


def test_a_synthetic_set_reads_back_its_arrays_and_classes(tmp_path):
    from curate.data.synthetic.curated import write_labelled_set
    from curate.data.synthetic.tasks import TEMPLATES, task_classnames

    entry = complete({"source": "synthetic", "task": "shape", "n_per_class": 2, "seed": 0})
    write_labelled_set(tmp_path / SYNTHETIC_FILE, "shape", 2, 0, image_size=16)
    samples = list(iter_labelled(entry, tmp_path))
    with np.load(tmp_path / SYNTHETIC_FILE) as z:
        assert [y for _, y in samples] == z["labels"].tolist()
    assert labelled_size(entry, tmp_path) == 2 * len(task_classnames("shape"))
    task = tmp_path / "task"
    task.mkdir()
    (task / "classnames.txt").write_text("\n".join(task_classnames("shape")) + "\n")
    (task / "zeroshot_classification_templates.txt").write_text("\n".join(TEMPLATES["shape"]) + "\n\n")
    assert read_classes(task) == (task_classnames("shape"), TEMPLATES["shape"])


def test_config_checks_name_the_dataset(user_config):
    import copy

    from curate.registry import ConfigError
    from curate.workflow.config import check_config

    broken = copy.deepcopy(user_config)
    broken.setdefault("datasets", {})["bad"] = {"source": "synthetic", "task": "objects", "n_per_class": 1, "seed": 0}
    broken["datasets"]["bad"]["classes"] = {"suite": "synthetic", "task": "nothing"}
    with pytest.raises(ConfigError, match=r"datasets\.bad\.classes\.task"):
        check_config(broken)
    broken = copy.deepcopy(user_config)
    broken.setdefault("datasets", {})["both"] = {"source": "group", "members": ["synthetic-objects", "pairs"]}
    broken["datasets"]["pairs"] = {"source": "curated", "curated_set": next(iter(broken["curated_sets"]))}
    with pytest.raises(ConfigError, match=r"datasets\.both\.members: 'pairs' is not a labelled set"):
        check_config(broken)
