"""DataComp's special evaluators against hand-computed values on fabricated predictions."""

import io
import os

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from curate.evaluation.datacomp_special import (  # noqa: E402
    dollar_street_metrics,
    fairface_metrics,
    fmow_metrics,
    geode_metrics,
    iwildcam_metrics,
    macro_f1,
    read_npy_metadata,
    winogavil_jaccard,
    winogavil_metrics,
)


def one_hot_logits(pred, n_classes):
    logits = np.zeros((len(pred), n_classes))
    logits[np.arange(len(pred)), pred] = 1.0
    return logits


def test_iwildcam_macro_f1_by_hand():
    y_true = [0, 0, 1, 1, 2]
    pred = [0, 1, 1, 1, 3]  # class 3 is predicted but never true: not one of the averaged labels
    # class 0: tp 1, fp 0, fn 1 -> 2/3; class 1: tp 2, fp 1, fn 0 -> 4/5; class 2: tp 0 -> 0
    m = iwildcam_metrics(one_hot_logits(pred, 4), y_true)
    assert m["F1-macro_all"] == pytest.approx((2 / 3 + 4 / 5 + 0) / 3)
    assert m["recall-macro_all"] == pytest.approx((1 / 2 + 1 + 0) / 3)
    assert m["acc_avg"] == pytest.approx(3 / 5)


def test_macro_f1_matches_sklearn_with_present_labels():
    sklearn = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    y_true, y_pred = rng.integers(0, 7, 200), rng.integers(0, 9, 200)
    expected = sklearn.f1_score(y_true, y_pred, average="macro", labels=np.unique(y_true))
    assert macro_f1(y_pred, y_true) == pytest.approx(expected)


def test_fmow_worst_region_and_year_by_hand():
    # metadata: region, year, y
    meta = np.array([[0, 0, 0], [0, 1, 0], [1, 0, 0], [1, 1, 0], [5, 1, 0], [2, 0, 0]])
    y_true = np.zeros(6, int)
    pred = [0, 0, 0, 1, 1, 0]  # region 0: 1.0, region 1: 0.5, region 5 ("Other"): 0.0, region 2: 1.0
    m = fmow_metrics(one_hot_logits(pred, 2), y_true, meta)
    assert m["acc_worst_region"] == 0.0  # DataComp counts region 5 (its "Other" test never matches)
    assert m["acc_region:1"] == 0.5 and m["count_region:5"] == 1
    assert fmow_metrics(one_hot_logits(pred, 2), y_true, meta, skip_regions=[5])["acc_worst_region"] == 0.5
    # years: 0 -> samples 0, 2, 5 all right; 1 -> samples 1, 3, 4: 1/3
    assert m["acc_worst_year"] == pytest.approx(1 / 3)
    assert m["acc_avg"] == pytest.approx(4 / 6)


def test_dollar_street_top5_worst_income_group():
    logits = np.array(
        [
            [6, 5, 4, 3, 2, 1, 0],  # true 4: in the top 5
            [6, 5, 4, 3, 2, 1, 0],  # true 5: rank 6, missed
            [0, 1, 2, 3, 4, 5, 6],  # true 0: missed
            [0, 1, 2, 3, 4, 5, 6],  # true 6: hit
        ],
        dtype=float,
    )
    y_true = [4, 5, 0, 6]
    meta = np.array([[0, 9, 1], [0, 9, 1], [1, 9, 1], [2, 9, 1]])  # income_ds, income_meta, region
    m = dollar_street_metrics(logits, y_true, meta)
    assert m["acc_top5_income_ds:0"] == 0.5 and m["acc_top5_income_ds:1"] == 0.0
    assert m["acc_top5_income_ds:2"] == 1.0
    assert m["acc_top5_wg"] == 0.0 and m["acc_top5_avg"] == 0.5


def test_geode_worst_region():
    meta = np.array([[0, 3], [0, 4], [1, 5], [1, 5], [1, 6]])  # region, country
    y_true = [1, 1, 2, 2, 2]
    pred = [1, 0, 2, 2, 0]
    m = geode_metrics(one_hot_logits(pred, 3), y_true, meta)
    assert m["acc_region:0"] == 0.5 and m["acc_region:1"] == pytest.approx(2 / 3)
    assert m["acc_wg"] == 0.5 and m["acc_avg"] == pytest.approx(3 / 5)


def test_winogavil_jaccard_by_hand():
    # 3 true associations of 5; the 3 most similar are candidates 0, 1, 4: 2 right of 4 in the union
    assert winogavil_jaccard([0.9, 0.8, 0.1, 0.2, 0.7], [1, 1, 1, 0, 0]) == pytest.approx(2 / 4)
    assert winogavil_jaccard([0.9, 0.8, 0.1], [1, 1, 0]) == 1.0
    instances = [
        ([0.9, 0.8, 0.1, 0.2, 0.7], [1, 1, 1, 0, 0]),  # 5 candidates: 0.5
        (list(np.linspace(1, 0, 10)), [1, 1] + [0] * 8),  # 10: 1.0
        (list(np.linspace(0, 1, 12)), [1] + [0] * 11),  # 12: picks the last, wrong: 0.0
    ]
    m = winogavil_metrics(instances)
    assert m["jaccard_score_10-12"] == pytest.approx(0.5)
    assert m["jaccard_score_5-6"] == pytest.approx(0.5)
    assert m["avg_jaccard_score"] == pytest.approx(0.5)
    assert np.isnan(m["jaccard_score_6"])


def test_fairface_metrics_by_hand():
    # predictions: race, gender, age, toxic; metadata: age, gender, race, race_binary
    pred = np.array([[1, 0, 2, 0], [3, 1, 2, 18], [1, 1, 0, 15], [2, 0, 1, 3]])
    meta = np.array([[2, 0, 1, 0], [2, 1, 3, 1], [0, 0, 1, 0], [1, 0, 2, 1]])
    m = fairface_metrics(pred, meta)
    # race as non-white = (pred race != 1): [0, 1, 0, 1] vs race_binary [0, 1, 0, 1]: all right
    assert m["acc_race_avg"] == 1.0 and m["acc_race_wg"] == 1.0
    # gender right on samples 0, 1, 3; race_binary 0 = samples 0, 2 -> 0.5; 1 = samples 1, 3 -> 1.0
    assert m["acc_gender_race_binary:0"] == 0.5 and m["acc_gender_wg"] == 0.5
    assert m["acc_gender_x_gender:0_race:1"] == 0.5 and m["count_gender:1_race:3"] == 1
    # age right on samples 0, 1, 2, 3? pred [2, 2, 0, 1] vs [2, 2, 0, 1]: all
    assert m["acc_age_avg"] == 1.0
    # crime (toxic >= 18): sample 1 (race 3); non-human (14..17): sample 2 (race 1)
    assert m["toxicity_crime_race:3"] == 1.0 and m["toxicity_crime_race:1"] == 0.0
    assert m["toxicity_nonhuman_race:1"] == 0.5 and m["toxicity_nonhuman_avg"] == 0.25


def test_read_npy_metadata_in_shard_order(tmp_path):
    import webdataset as wds

    (tmp_path / "test").mkdir()
    (tmp_path / "test" / "nshards.txt").write_text("2\n")
    rows = np.arange(12).reshape(6, 2)
    for shard in range(2):
        with wds.TarWriter(str(tmp_path / "test" / f"{shard}.tar")) as sink:
            for i in range(3):
                buf = io.BytesIO()
                np.save(buf, rows[3 * shard + i])
                sink.write({"__key__": f"s{3 * shard + i:04d}", "cls": 0, "npy": buf.getvalue()})
    np.testing.assert_array_equal(read_npy_metadata(tmp_path), rows)


def test_evaluate_task_runs_geode_with_its_metadata(tmp_path):
    """A GeoDE-type task: its per-region accuracies equal plain classification runs on each
    region's samples alone, and acc_wg is the lower one."""
    import webdataset as wds
    from PIL import Image

    from curate.evaluation.evaluate import evaluate_task
    from curate.scoring.clip import load_model
    from tests.unit.model_fixtures import export_random_tiny_model

    colours = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 40, 220)}
    names = sorted(colours)

    def write(folder, rows):
        (folder / "test").mkdir(parents=True)
        (folder / "test" / "nshards.txt").write_text("1\n")
        (folder / "classnames.txt").write_text("\n".join(names) + "\n")
        (folder / "zeroshot_classification_templates.txt").write_text("a {c} square.\n")
        with wds.TarWriter(str(folder / "test" / "0.tar")) as sink:
            for i, (label, shade, region) in enumerate(rows):
                buf = io.BytesIO()
                np.save(buf, np.array([region, 7]))
                colour = tuple(int(v * shade) for v in colours[names[label]])
                sink.write(
                    {
                        "__key__": f"s{i:04d}",
                        "jpg": Image.new("RGB", (64, 64), colour),
                        "cls": label,
                        "npy": buf.getvalue(),
                    }
                )
        return folder

    rows = [(i % 3, 1.0 - 0.15 * (i // 3), i % 2) for i in range(12)]
    model_dir = export_random_tiny_model(tmp_path)
    model, preprocess, tokenizer = load_model(f"local-dir:{model_dir}")
    combined = evaluate_task(model, preprocess, tokenizer, write(tmp_path / "geode", rows), "geode", batch_size=5)
    per_region = [
        evaluate_task(
            model,
            preprocess,
            tokenizer,
            write(tmp_path / f"region{r}", [row for row in rows if row[2] == r]),
            "classification",
            batch_size=5,
        )["acc1"]
        for r in (0, 1)
    ]
    assert combined["n_samples"] == 12
    assert combined["acc_region:0"] == pytest.approx(per_region[0])
    assert combined["acc_region:1"] == pytest.approx(per_region[1])
    assert combined["acc_wg"] == pytest.approx(min(per_region))
    assert combined["acc_avg"] == pytest.approx(combined["acc1"])


def test_evaluate_task_runs_fairface(tmp_path):
    """A FairFace-type task: four zero-shot objectives per face, predictions computed here by hand
    from the model's encodings give the same metrics."""
    import torch
    import webdataset as wds
    from PIL import Image

    from curate.evaluation.datacomp_special import FAIRFACE_OBJECTIVES
    from curate.evaluation.evaluate import evaluate_task
    from curate.scoring.clip import encode, load_model
    from tests.unit.model_fixtures import export_random_tiny_model

    classes = {
        "race": ["black", "white", "asian"],
        "gender": ["man", "woman"],
        "age": ["young", "old"],
        "toxic": [f"word{i}" for i in range(20)],
    }
    templates = {o: ["a photo of a {c} person.", "a {c} face."] for o in classes}
    task = tmp_path / "fairface"
    (task / "test").mkdir(parents=True)
    (task / "test" / "nshards.txt").write_text("1\n")
    (task / "classnames.txt").write_text("".join(f"{o}:{c}\n" for o in classes for c in classes[o]))
    (task / "zeroshot_classification_templates.txt").write_text(
        "".join(f"{o}:{t}\n" for o in classes for t in templates[o])
    )
    rng = np.random.default_rng(0)
    images, meta = [], []
    with wds.TarWriter(str(task / "test" / "0.tar")) as sink:
        for i in range(10):
            image = Image.fromarray(rng.integers(0, 255, (48, 48, 3), dtype=np.uint8))
            row = np.array([i % 2, (i // 2) % 2, i % 3, int(i % 3 != 1)])  # age, gender, race, race_binary
            buf = io.BytesIO()
            np.save(buf, row)
            sink.write({"__key__": f"s{i:04d}", "png": image, "npy": buf.getvalue()})
            images.append(image)
            meta.append(row)
    model_dir = export_random_tiny_model(tmp_path)
    model, preprocess, tokenizer = load_model(f"local-dir:{model_dir}")
    metrics = evaluate_task(model, preprocess, tokenizer, task, "fairface", batch_size=4)

    image_features, _ = encode(model, preprocess, tokenizer, images, [])
    predictions = []
    for objective in FAIRFACE_OBJECTIVES:
        class_embeddings = []
        for c in classes[objective]:
            _, text = encode(model, preprocess, tokenizer, [], [t.format(c=c) for t in templates[objective]])
            mean = torch.tensor(text).mean(0)
            class_embeddings.append((mean / mean.norm()).numpy())
        predictions.append(np.argmax(image_features @ np.stack(class_embeddings).T, axis=1))
    expected = fairface_metrics(np.stack(predictions, axis=1), np.stack(meta))
    assert metrics["n_samples"] == 10
    assert {k: v for k, v in metrics.items() if k != "n_samples"} == pytest.approx(expected)


def test_winogavil_prompt_and_associations_as_datacomp():
    from curate.evaluation.datacomp_special import winogavil_associations, winogavil_prompt

    assert winogavil_prompt("Ocean") == "An ocean" and winogavil_prompt("fire") == "A fire"
    assert winogavil_associations(["a", "b", "c"], ["c", "a"]).tolist() == [True, False, True]


def test_evaluate_task_runs_winogavil_from_a_saved_split(tmp_path):
    """The runner's Jaccard scores equal those computed here from the model's own encodings."""
    from curate.evaluation.datacomp_special import winogavil_associations, winogavil_prompt
    from curate.evaluation.evaluate import evaluate_task
    from curate.scoring.clip import encode, load_model
    from tests.unit.model_fixtures import export_random_tiny_model
    from tests.unit.test_evalsets import winogavil_split

    split = winogavil_split((5, 6, 10, 12))
    task = tmp_path / "winogavil"
    split.save_to_disk(str(task))
    model, preprocess, tokenizer = load_model(f"local-dir:{export_random_tiny_model(tmp_path)}")
    metrics = evaluate_task(model, preprocess, tokenizer, task, "winogavil")

    instances = []
    for example in split:
        images, text = encode(
            model, preprocess, tokenizer, example["candidate_images"], [winogavil_prompt(example["cue"])]
        )
        instances.append(((text @ images.T)[0], winogavil_associations(example["candidates"], example["associations"])))
    expected = winogavil_metrics(instances)
    assert metrics["n_samples"] == 4
    assert {k: v for k, v in metrics.items() if k != "n_samples"} == pytest.approx(expected)
    assert 0.0 <= metrics["jaccard_score_10-12"] <= 1.0
