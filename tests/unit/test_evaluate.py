import os
import shutil
import warnings

import numpy as np
import pytest
import torch
import webdataset as wds
from PIL import Image

os.environ.setdefault("HF_HUB_OFFLINE", "1")
torch.set_num_threads(1)

from curate.data.records import aggregate, read_records, write_records  # noqa: E402
from curate.evaluation.evaluate import (  # noqa: E402
    classification_metrics,
    evaluate_suite,
    evaluate_task,
    retrieval_metrics,
)
from curate.evaluation.progress import TaskFailures  # noqa: E402
from curate.scoring.clip import load_model  # noqa: E402
from tests.unit.model_fixtures import export_random_tiny_model  # noqa: E402

COLOURS = {"red": (200, 20, 20), "blue": (20, 20, 200), "green": (20, 180, 20)}


# ---------------------------------------------------------------------------------------------
# metrics, by hand
# ---------------------------------------------------------------------------------------------


def test_classification_metrics_by_hand():
    logits = np.array([[3, 2, 1], [1, 3, 2], [3, 1, 2], [1, 2, 3]], dtype=np.float32)
    targets = np.array([0, 2, 2, 1])
    # predictions 0, 1, 0, 2: only sample 0 is right
    m = classification_metrics(logits, targets)
    assert m["acc1"] == pytest.approx(0.25)
    assert m["acc5"] == pytest.approx(1.0)  # k capped at 3 classes
    # recall: class 0 1/1, class 1 0/1, class 2 0/2 -> mean 1/3
    assert m["mean_per_class_recall"] == pytest.approx(1 / 3)


def test_classification_top5_and_absent_classes():
    # 7 classes; true class ranked 1st, 5th and 6th; classes 3..6 never a target
    logits = np.array(
        [
            [9, 1, 2, 3, 4, 5, 6],  # target 0, rank 1
            [1, 9, 8, 7, 6, 2, 0],  # target 5, rank 5  (9, 8, 7, 6, then 2)
            [1, 9, 8, 7, 6, 5, 0],  # target 0, rank 6
        ],
        dtype=np.float32,
    )
    targets = np.array([0, 5, 0])
    m = classification_metrics(logits, targets)
    assert m["acc1"] == pytest.approx(1 / 3)
    assert m["acc5"] == pytest.approx(2 / 3)
    # present classes: 0 (1 of 2 right), 5 (0 of 1) -> 0.25
    assert m["mean_per_class_recall"] == pytest.approx(0.25)
    with pytest.raises(ValueError):
        classification_metrics(logits, np.array([0, 7, 0]))


def test_classification_metrics_match_sklearn_and_topk():
    from sklearn.metrics import balanced_accuracy_score

    rng = np.random.default_rng(0)
    logits = rng.normal(size=(60, 10)).astype(np.float32)
    targets = rng.integers(0, 8, size=60)  # classes 8, 9 never a target
    m = classification_metrics(logits, targets)
    top5 = torch.topk(torch.tensor(logits), 5, dim=1).indices.numpy()
    assert m["acc1"] == pytest.approx(np.mean(top5[:, 0] == targets))
    assert m["acc5"] == pytest.approx(np.mean((top5 == targets[:, None]).any(axis=1)))
    with warnings.catch_warnings():  # sklearn warns about predicted classes never in y_true
        warnings.simplefilter("ignore")
        expected = balanced_accuracy_score(targets, logits.argmax(axis=1))
    assert m["mean_per_class_recall"] == pytest.approx(expected)


SCORES = np.array(
    [  # captions x images
        [0.9, 0.1, 0.2],  # caption 0 of image 0: best image 0
        [0.3, 0.5, 0.1],  # caption 1 of image 0: best image 1, image 0 second
        [0.2, 0.1, 0.8],  # caption 2 of image 1: image 1 last
        [0.1, 0.2, 0.7],  # caption 3 of image 2: best image 2
    ]
)
INDEX = [0, 0, 1, 2]


def test_retrieval_metrics_by_hand():
    m = retrieval_metrics(SCORES, INDEX, ks=(1, 2, 5))
    assert m["image_retrieval_recall@1"] == pytest.approx(2 / 4)
    assert m["image_retrieval_recall@2"] == pytest.approx(3 / 4)
    assert m["image_retrieval_recall@5"] == pytest.approx(1.0)  # k capped at 3 images
    # per image, best captions: image 0 -> c0 (its own), image 1 -> c1 (image 0's), c3; image 2 -> c2, c3
    assert m["text_retrieval_recall@1"] == pytest.approx(1 / 3)
    assert m["text_retrieval_recall@2"] == pytest.approx(2 / 3)
    assert m["text_retrieval_recall@5"] == pytest.approx(1.0)
    assert m["mean_recall@1"] == pytest.approx((2 / 4 + 1 / 3) / 2)


def test_retrieval_metrics_match_clip_benchmark():
    from clip_benchmark.metrics.zeroshot_retrieval import recall_at_k

    scores = torch.tensor(SCORES)
    positive = torch.zeros_like(scores, dtype=torch.bool)
    positive[torch.arange(4), torch.tensor(INDEX)] = True
    m = retrieval_metrics(SCORES, INDEX, ks=(1, 2))
    for k in (1, 2):
        image = (recall_at_k(scores, positive, k) > 0).float().mean().item()
        text = (recall_at_k(scores.T, positive.T, k) > 0).float().mean().item()
        assert m[f"image_retrieval_recall@{k}"] == pytest.approx(image)
        assert m[f"text_retrieval_recall@{k}"] == pytest.approx(text)


def record(key, main, **metrics):
    return {"key": key, "dataset": key.title(), "metrics": dict(metrics, main_metric=main)}


def test_aggregate_with_a_null_main_metric():
    records = [record("a", 0.5), record("b", 0.7), record("fairface", None, acc1=0.3), record("d", 0.9)]
    groups = {"G1": ["a", "b"], "G2": ["fairface"], "G3": ["fairface", "d"]}
    out = aggregate(records, groups)
    assert out == pytest.approx({"G1": 0.6, "G2": None, "G3": 0.9, "Average": 0.7})
    with pytest.raises(ValueError, match="no record for tasks"):
        aggregate(records, {"G": ["a", "zzz"]})
    with pytest.raises(ValueError, match="two records"):
        aggregate(records + [record("a", 0.1)], {})


def test_write_read_records(tmp_path):
    records = [record("a", 0.5, acc1=0.5), record("fairface", None)]
    path = write_records(records, tmp_path / "e" / "suite.jsonl")
    assert path.read_text().count("\n") == 2
    assert read_records(path) == records
    (tmp_path / "bad.jsonl").write_text('{"dataset": "x"}\n')
    with pytest.raises(ValueError, match="bad.jsonl:1"):
        read_records(tmp_path / "bad.jsonl")


# ---------------------------------------------------------------------------------------------
# a model on clip_benchmark wds folders
# ---------------------------------------------------------------------------------------------


def write_task(folder, kind, samples, classnames=None):
    (folder / "test").mkdir(parents=True)
    (folder / "dataset_type.txt").write_text(kind + "\n")
    (folder / "test" / "nshards.txt").write_text("1\n")
    if classnames:
        (folder / "classnames.txt").write_text("\n".join(classnames) + "\n")
        (folder / "zeroshot_classification_templates.txt").write_text("a {c} square.\na photo of {c}.\n")
    with wds.TarWriter(str(folder / "test" / "0.tar")) as sink:
        for i, sample in enumerate(samples):
            sink.write(dict(sample, __key__=f"s{i:04d}"))
    return folder


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval")
    model_dir = export_random_tiny_model(root)
    names = sorted(COLOURS)
    cls = write_task(
        root / "colour",
        "classification",
        [{"jpg": Image.new("RGB", (64, 64), COLOURS[names[i % 3]]), "cls": i % 3} for i in range(9)],
        classnames=names,
    )
    ret = write_task(
        root / "retrieval",
        "retrieval",  # 6 distinct images, 2 distinct captions each
        [
            {
                "jpg": Image.new("RGB", (64, 64), tuple(v // (1 + i // 3) for v in COLOURS[names[i % 3]])),
                "txt": f"a {names[i % 3]} square number {i}\na {names[i % 3]} image {i}",
            }
            for i in range(6)
        ],
    )
    return model_dir, cls, ret


def test_evaluate_task_classification_and_retrieval(setup):
    model_dir, cls, ret = setup
    model, preprocess, tokenizer = load_model(f"local-dir:{model_dir}")
    m = evaluate_task(model, preprocess, tokenizer, cls, "classification", batch_size=4)
    assert m["n_samples"] == 9 and m["n_classes"] == 3
    assert m["acc5"] == 1.0  # 3 classes
    assert 0 <= m["acc1"] <= 1 and 0 <= m["mean_per_class_recall"] <= 1
    r = evaluate_task(model, preprocess, tokenizer, ret, "retrieval", batch_size=2)
    assert r["n_images"] == 6 and r["n_captions"] == 12
    assert all(0 <= r[k] <= 1 for k in r if "recall" in k)
    assert r["mean_recall@1"] == pytest.approx((r["image_retrieval_recall@1"] + r["text_retrieval_recall@1"]) / 2)

    # clip_benchmark's own retrieval evaluation agrees
    from clip_benchmark.datasets.builder import build_dataset, image_captions_collate_fn
    from clip_benchmark.metrics import zeroshot_retrieval

    ds = build_dataset(
        dataset_name="wds/retrieval", root=str(ret), transform=preprocess, split="test", task="zeroshot_retrieval"
    )
    loader = torch.utils.data.DataLoader(ds, batch_size=2, collate_fn=image_captions_collate_fn)
    theirs = zeroshot_retrieval.evaluate(model, loader, tokenizer, "cpu", amp=False, recall_k_list=[1, 5])
    for k, v in theirs.items():
        assert r[k] == pytest.approx(v)

    with pytest.raises(ValueError, match="dataset_type.txt says 'retrieval'"):
        evaluate_task(model, preprocess, tokenizer, ret, "classification")


def test_evaluate_suite_records(setup, tmp_path):
    model_dir, cls, ret = setup
    tasks = {
        "colour": {"dir": str(cls), "type": "classification", "main_metric": "acc1", "name": "Colour"},
        "colour_nomain": {"dir": str(cls), "type": "classification", "main_metric": None, "name": "No main"},
        "retrieval": {"dir": str(ret), "type": "retrieval", "main_metric": "mean_recall@1", "name": "Retrieval"},
    }
    records = evaluate_suite(f"local-dir:{model_dir}", tasks, batch_size=8)
    assert [r["key"] for r in records] == list(tasks)
    assert records[0]["dataset"] == "Colour"
    assert records[0]["metrics"]["main_metric"] == records[0]["metrics"]["acc1"]
    assert records[1]["metrics"]["main_metric"] is None
    assert records[2]["metrics"]["main_metric"] == records[2]["metrics"]["mean_recall@1"]
    path = write_records(records, tmp_path / "suite.jsonl")
    back = read_records(path)
    assert back == records
    out = aggregate(back, {"Colour": ["colour", "colour_nomain"], "Retrieval": ["retrieval"]})
    assert out["Average"] == pytest.approx((records[0]["metrics"]["acc1"] + records[2]["metrics"]["mean_recall@1"]) / 2)
    with pytest.raises(TaskFailures, match="main_metric 'acc9'"):
        evaluate_suite(f"local-dir:{model_dir}", {"c": dict(tasks["colour"], main_metric="acc9")})


def test_evaluate_suite_keeps_each_task_and_reruns_only_the_failed(setup, tmp_path):
    """A broken task folder fails that task only; its rerun evaluates it alone, kept records reused."""
    model_dir, cls, ret = setup
    broken = tmp_path / "broken"
    broken.mkdir()
    tasks = {
        "colour": {"dir": str(cls), "type": "classification", "main_metric": "acc1", "name": "Colour"},
        "broken": {"dir": str(broken), "type": "classification", "main_metric": "acc1", "name": "Broken"},
        "retrieval": {"dir": str(ret), "type": "retrieval", "main_metric": "mean_recall@1", "name": "Retrieval"},
    }
    progress = tmp_path / "suite.tasks"
    with pytest.raises(TaskFailures, match="broken: FileNotFoundError") as failed:
        evaluate_suite(f"local-dir:{model_dir}", tasks, batch_size=8, progress=progress)
    assert list(failed.value.failures) == ["broken"]
    assert sorted(p.name for p in progress.iterdir()) == ["colour.json", "retrieval.json"]
    shutil.copytree(cls, broken, dirs_exist_ok=True)  # fixed
    records = evaluate_suite(f"local-dir:{model_dir}", tasks, batch_size=8, progress=progress)
    assert [r["key"] for r in records] == list(tasks)
    assert records[1]["metrics"] == records[0]["metrics"]  # the same task folder, evaluated now
