"""curate.evaluation.blip_tasks: BLIP's fine-tuned VQA v2, NLVR2 and RefCOCO+ evaluations on a tiny
BLIP; their task-folder layouts (curate.data.evalsets) and the synthetic world's analogues."""

import io
import json
import math
import tarfile

import numpy as np
import pytest
import torch
from PIL import Image

import curate.evaluation.blip_tasks as bt
import curate.training.blip as cb
from curate.data.evalsets import (
    fetch_eval_task,
    iter_task_samples,
    nlvr_example,
    refcoco_example,
    task_samples,
    vqa_example,
)
from curate.data.synthetic import finetuned_tasks as ft
from curate.evaluation.blip import evaluate_blip_suite, evaluate_task
from curate.evaluation.task_types import TASK_TYPES, check_runnable
from curate.workflow.config import load_config
from tests.unit.conftest import ROOT

torch.set_num_threads(1)

TEXTS = [
    "two small red circles on the left on a striped background",
    "one large blue square at the top on a plain background",
    "three green stars in the centre on a dotted background",
    "four yellow crosses at the bottom on a noisy background",
    "a white diamond on the right on a grid background",
    "purple triangles and orange shapes, black ones",
    "are there any shapes? yes no how many what colour where kind of is it",
    "both images show contain the left image has more fewer than right larger smaller those one each other",
]
TYPES = ("vqa", "nlvr", "refcoco")


@pytest.fixture(scope="module")
def tiny():
    return cb.build_tiny_blip(TEXTS, seed=0, hidden=32)


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("finetuned")
    for t in TYPES:
        ft.write_finetuned_task(root / t, t, n_test=8, n_train=16, seed=3)
    return root


def _task(task_type, **changes):
    entry = {"type": task_type, "name": task_type, "main_metric": None, "epochs": 3, "batch_size": 8, "lr": 3e-3}
    return TASK_TYPES.complete(entry | changes, task_type)


# ---------------------------------------------------------------------------------------------
# Metrics on hand-computed cases


def test_vqa_accuracy_over_ten_human_answers():
    # matching humans 0..4 of 10: each answer left out in turn, min(1, matches among the other 9 / 3)
    for matches, expected in [(0, 0.0), (1, 0.3), (2, 0.6), (3, 0.9), (4, 1.0), (10, 1.0)]:
        answers = ["red"] * matches + ["blue"] * (10 - matches)
        assert bt.vqa_accuracy("red", answers) == pytest.approx(expected)
    # VQA v2's normalisation: case, punctuation, number words, articles
    assert bt.vqa_accuracy("Two", ["2"] * 10) == 1.0
    assert bt.vqa_accuracy("a dog.", ["the dog"] * 3 + ["cat"] * 7) == pytest.approx(0.9)
    assert bt.normalise_vqa_answer("3.5 ") == "3.5" and bt.normalise_vqa_answer("yes!") == "yes"
    with pytest.raises(ValueError):
        bt.vqa_accuracy("red", [])


def test_blips_text_preparation():
    assert bt.pre_question("What colour is it?!  ") == "what colour is it?"
    assert bt.pre_caption("The LEFT image: two   dogs.") == "the left image two dogs"
    assert bt.pre_caption("a b c d", max_words=2) == "a b"
    swapped = bt.swap_left_right({"left": 1, "right": 2, "sentence": "The left image has more than the right."})
    assert (swapped["left"], swapped["right"]) == (2, 1)
    assert swapped["sentence"] == "the right image has more than the left"


def test_cosine_lr_is_set_once_per_epoch():
    assert bt.cosine_epoch_lr(0, 10, 2e-5, 0.0) == pytest.approx(2e-5)
    assert bt.cosine_epoch_lr(5, 10, 2e-5, 0.0) == pytest.approx(1e-5)
    assert bt.cosine_epoch_lr(3, 4, 1e-3, 1e-4) == pytest.approx(1e-4 + 0.9e-3 * 0.5 * (1 + math.cos(0.75 * math.pi)))


def _write_split(folder, split, samples):
    (folder / split).mkdir(parents=True, exist_ok=True)
    with tarfile.open(folder / split / "0.tar", "w") as tar:
        for key, members in samples:
            for ext, data in members.items():
                info = tarfile.TarInfo(f"{key}.{ext}")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    (folder / split / "nshards.txt").write_text("1\n")


def _jpg(colour=(128, 128, 128), size=(32, 32)):
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, format="JPEG")
    return buf.getvalue()


def _no_finetuning(module, task, batches, name):
    return {"steps": 0, "loss_first": 0.0, "loss_last": 0.0}


def test_vqa_metric_of_a_hand_made_folder(tiny, tmp_path, monkeypatch):
    model, processor = tiny
    cases = [(["red"] * 10, "other"), (["red"] * 2 + ["blue"] * 8, "other"), (["blue"] * 10, "yes/no")]
    samples = [
        (
            f"{i:03d}",
            {
                "jpg": _jpg(),
                "json": json.dumps(
                    {"question": "what colour?", "answers": a, "answer_type": t, "candidates": ["red", "blue"]}
                ).encode(),
            },
        )
        for i, (a, t) in enumerate(cases)
    ]
    _write_split(tmp_path, "test", samples)
    _write_split(tmp_path, "train", samples)
    monkeypatch.setattr(bt, "finetune", _no_finetuning)
    monkeypatch.setattr(bt.BlipVqa, "rank", lambda self, states, *a, k: torch.zeros(states.shape[0], dtype=torch.long))
    metrics = bt.vqa_task(model, processor, tmp_path, batch_size=2, task=_task("vqa"))  # "red" always
    assert metrics["vqa_accuracy"] == pytest.approx((1.0 + 0.6 + 0.0) / 3) and metrics["n_questions"] == 3
    assert metrics["vqa_accuracy_other"] == pytest.approx(0.8) and metrics["vqa_accuracy_yes_no"] == 0.0


def test_nlvr_and_refcoco_accuracy_of_hand_made_folders(tiny, tmp_path, monkeypatch):
    model, processor = tiny
    monkeypatch.setattr(bt, "finetune", _no_finetuning)
    labels = [True, True, False, True]
    nlvr = [
        (
            f"{i:03d}",
            {"left.jpg": _jpg(), "right.png": _jpg(), "json": json.dumps({"sentence": "s", "label": y}).encode()},
        )
        for i, y in enumerate(labels)
    ]
    _write_split(tmp_path / "nlvr", "test", nlvr)
    _write_split(tmp_path / "nlvr", "train", nlvr)
    monkeypatch.setattr(bt.BlipNlvr, "logits", lambda self, left, right, s: torch.tensor([[0.0, 1.0]] * len(left)))
    metrics = bt.nlvr_task(model, processor, tmp_path / "nlvr", batch_size=3, task=_task("nlvr"))  # "true" always
    assert metrics["accuracy"] == pytest.approx(0.75) and metrics["n_pairs"] == 4

    # RefCOCO+: a scorer that prefers the widest crop picks the target in 2 of 3 expressions
    boxes = [
        [[0, 0, 10, 10], [10, 0, 30, 10]],
        [[0, 0, 5, 5], [5, 5, 8, 8], [0, 10, 31.5, 20]],
        [[0, 0, 20, 5], [0, 5, 4, 9]],
    ]
    targets = [1, 2, 1]
    refcoco = [
        (f"{i:03d}", {"jpg": _jpg(), "json": json.dumps({"expression": "it", "boxes": b, "target": t}).encode()})
        for i, (b, t) in enumerate(zip(boxes, targets))
    ]
    _write_split(tmp_path / "ref", "test", refcoco)
    _write_split(tmp_path / "ref", "train", refcoco)

    def widest(self, crops, texts):
        return torch.tensor([[0.0, float(c.size[0])] for c in crops])

    monkeypatch.setattr(bt.ItmGrounder, "match_logits", widest)
    metrics = bt.refcoco_task(model, processor, tmp_path / "ref", batch_size=8, task=_task("refcoco"))
    assert metrics["accuracy"] == pytest.approx(2 / 3) and metrics["n_expressions"] == 3
    assert bt.crop_box(Image.new("RGB", (32, 32)), [0.5, 0, 31.5, 40]).size == (32, 32)
    assert bt.crop_box(Image.new("RGB", (32, 32)), [40, 40, 50, 50]).size == (1, 1)


# ---------------------------------------------------------------------------------------------
# The models: BLIP's rank inference and its two-image encoder


def test_rank_is_blips_first_token_top_k_then_the_smoothed_sequence_score(tiny):
    model, processor = tiny
    vqa = bt.BlipVqa(model, processor).eval()
    images = [Image.new("RGB", (64, 64), c) for c in ((200, 0, 0), (0, 0, 200))]
    candidates = ["red", "blue", "two small circles", "yes", "no"]
    with torch.no_grad():
        states, mask = vqa.question_states(images, ["what colour?", "how many?"])
        ids, attn = bt._text(processor, candidates, states.device, 35, vqa.bos_token_id)
        best = vqa.rank(states, mask, ids, attn, k=len(candidates))
        one = vqa.rank(states, mask, ids, attn, k=1)
        for q in range(2):
            # every candidate scored in full: the argmax of minus the smoothed loss
            logits = vqa.answer_logits(ids, attn, states[[q] * len(candidates)], mask[[q] * len(candidates)])
            assert int(best[q]) == int((-bt.sequence_losses(logits, ids, attn)).argmax())
            # k = 1: the candidate whose first token the decoder finds most likely
            first = vqa.answer_logits(ids[:1, :1], torch.ones_like(ids[:1, :1]), states[q : q + 1], mask[q : q + 1])
            assert int(one[q]) == int(first[0, 0].index_select(0, ids[:, 1]).argmax())


def test_the_two_image_encoder_is_blips_one_image_encoder_when_both_images_agree(tiny):
    """With the same image on both sides, averaging (first half) and a merge layer that averages
    (second half) give exactly the pretrained encoder's cross-attention to that image."""
    model, processor = tiny
    nlvr = bt.BlipNlvr(model, processor).eval()
    hidden = nlvr.text.config.hidden_size
    with torch.no_grad():
        for merge in nlvr.merge:
            merge.weight.copy_(torch.cat([torch.eye(hidden), torch.eye(hidden)], 1) / 2)
            merge.bias.zero_()
        pix = bt.pixels(processor, [Image.new("RGB", (64, 64), (0, 90, 200))] * 2, "cpu")
        image = model.retrieval.vision_model(pixel_values=pix).last_hidden_state
        ids, attn = bt._text(processor, ["two red circles", "a blue star on the left"], "cpu", 30, model.enc_token_id)
        ours = nlvr.encode(ids, attn, image, image)
        blip = model.retrieval.text_encoder(
            input_ids=ids, attention_mask=attn, encoder_hidden_states=image
        ).last_hidden_state
    torch.testing.assert_close(ours[attn.bool()], blip[attn.bool()], rtol=1e-5, atol=1e-5)
    assert len(nlvr.merge) == len(nlvr.text.encoder.layer) - nlvr.merge_from == 1


# ---------------------------------------------------------------------------------------------
# Fine-tuning: it lowers the task loss; a seed fixes everything


BUILD = {"vqa": bt.BlipVqa, "nlvr": bt.BlipNlvr, "refcoco": bt.ItmGrounder}
READ = {"vqa": vqa_example, "nlvr": nlvr_example, "refcoco": refcoco_example}


@pytest.mark.parametrize("task_type", TYPES)
def test_finetuning_lowers_the_task_loss_and_leaves_the_pretrained_model_alone(tiny, folders, task_type):
    """15 epochs of one full batch (the 16 train samples) on a random tiny BLIP: the task loss of
    that batch falls; the pretrained model's parameters are untouched (the task model is a copy)."""
    model, processor = tiny
    before_params = [p.detach().clone() for p in model.parameters()]
    task = _task(task_type, epochs=15, batch_size=16, lr=1e-3)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        module = BUILD[task_type](model, processor).eval()
        batch = [READ[task_type](p) for p in task_samples(folders / task_type, "train")]
        with torch.no_grad():
            before = float(module.loss(batch))
        summary = bt.finetune(module, task, bt._train_stream(folders / task_type, task, READ[task_type]), task_type)
        with torch.no_grad():
            after = float(module.loss(batch))
    assert summary["steps"] == 15 and after < before
    assert all(torch.equal(a, b) for a, b in zip(before_params, model.parameters()))


def test_a_seed_fixes_each_evaluation(tiny, folders):
    model, processor = tiny
    for task_type in TYPES:
        task = _task(task_type, epochs=1)
        first = evaluate_task(model, processor, folders / task_type, task_type, 4, task)
        assert evaluate_task(model, processor, folders / task_type, task_type, 4, task) == first
        other = evaluate_task(model, processor, folders / task_type, task_type, 4, _task(task_type, epochs=1, seed=1))
        assert other["finetune_loss_first"] != first["finetune_loss_first"]
        main = "vqa_accuracy" if task_type == "vqa" else "accuracy"
        assert first["finetune_steps"] == 2 and 0 <= first[main] <= 1


def test_max_steps_stops_early_and_a_split_smaller_than_a_batch_is_an_error(tiny, folders):
    model, processor = tiny
    metrics = evaluate_task(model, processor, folders / "nlvr", "nlvr", 8, _task("nlvr", max_steps=3))
    assert metrics["finetune_steps"] == 3
    with pytest.raises(ValueError, match="fewer samples than one batch of 32"):
        evaluate_task(model, processor, folders / "nlvr", "nlvr", 8, _task("nlvr", batch_size=32))


# ---------------------------------------------------------------------------------------------
# The registry and the suites


def test_every_mos_blip_and_synthetic_blip_task_type_runs_for_blip():
    config = load_config(ROOT)
    for suite in ("mos-blip", "synthetic-blip"):
        check_runnable(config["suites"][suite]["tasks"], "blip")
    real = config["suites"]["mos-blip"]["tasks"]
    assert (real["vqav2"]["lr"], real["vqav2"]["epochs"], real["vqav2"]["k_test"]) == (2e-5, 10, 128)
    assert (real["nlvr2"]["lr"], real["nlvr2"]["epochs"], real["nlvr2"]["batch_size"]) == (3e-5, 15, 256)
    assert (real["refcoco_plus"]["lr"], real["refcoco_plus"]["epochs"]) == (1e-5, 5)
    for task_type in TYPES:
        with pytest.raises(ValueError, match="do not evaluate"):
            check_runnable({"t": {"type": task_type}}, "clip")


def test_the_suite_evaluator_fine_tunes_with_each_tasks_own_parameters(tiny, folders, tmp_path):
    model, processor = tiny
    cb.save_blip(model, processor, tmp_path / "model")
    tasks = {
        "vqa": {"type": "vqa", "main_metric": "vqa_accuracy", "dir": folders / "vqa", "batch_size": 8, "epochs": 1},
        "nlvr": {"type": "nlvr", "main_metric": "accuracy", "dir": folders / "nlvr", "batch_size": 4, "max_steps": 2},
        "refcoco": {"type": "refcoco", "main_metric": "accuracy", "dir": folders / "refcoco", "batch_size": 16},
    }
    records = {r["key"]: r["metrics"] for r in evaluate_blip_suite(tmp_path / "model", tasks, batch_size=4)}
    # vqa: 1 epoch of 2 batches; nlvr: stopped at 2 steps; refcoco: its default 5 epochs (ALBEF's) of 1 batch
    assert [records[k]["finetune_steps"] for k in tasks] == [2, 2, 5]
    assert records["vqa"]["main_metric"] == records["vqa"]["vqa_accuracy"] and records["vqa"]["n_questions"] == 8
    assert records["nlvr"]["n_pairs"] == 8 and records["refcoco"]["n_expressions"] == 8


# ---------------------------------------------------------------------------------------------
# Layouts and readers


def test_readers_check_the_layouts(tmp_path):
    good = {"question": "q", "answers": ["a"] * 10, "answer_type": "other", "candidates": ["a", "b"]}
    assert vqa_example({"jpg": _jpg(), "json": json.dumps(good).encode()})["image"].size == (32, 32)
    with pytest.raises(ValueError, match="sample 0/7: no image"):
        vqa_example({"json": json.dumps(good).encode(), "__key__": "0/7"})
    with pytest.raises(ValueError, match="'label' must be a bool"):
        nlvr_example({"left.jpg": _jpg(), "right.jpg": _jpg(), "json": b'{"sentence": "s", "label": 1}'})
    with pytest.raises(ValueError, match="no right image"):
        nlvr_example({"left.jpg": _jpg(), "json": b'{"sentence": "s", "label": true}'})
    with pytest.raises(ValueError, match="target 2 is not a box index"):
        refcoco_example(
            {"jpg": _jpg(), "json": b'{"expression": "e", "boxes": [[0, 0, 1, 1], [1, 1, 2, 2]], "target": 2}'}
        )
    with pytest.raises(ValueError, match="boxes must be"):
        refcoco_example({"jpg": _jpg(), "json": b'{"expression": "e", "boxes": [[0, 0, 0, 1]], "target": 0}'})
    # a fine-tuned task's local copy needs its train split
    _write_split(tmp_path / "root" / "vqav2", "test", [])
    with pytest.raises(FileNotFoundError, match="train/nshards.txt"):
        fetch_eval_task("vqav2", {"type": "vqa"}, tmp_path / "o" / "vqav2", root=tmp_path / "root")


def test_a_shuffled_stream_holds_every_sample_once_in_a_seeded_order(folders):
    keys = [p["__key__"] for p in iter_task_samples(folders / "vqa", "train")]
    shuffled = [p["__key__"] for p in iter_task_samples(folders / "vqa", "train", shuffle_seed=1, buffer=5)]
    assert sorted(shuffled) == keys and shuffled != keys and len(keys) == 16
    assert shuffled == [p["__key__"] for p in iter_task_samples(folders / "vqa", "train", shuffle_seed=1, buffer=5)]


# ---------------------------------------------------------------------------------------------
# The synthetic world's tasks


def test_synthetic_tasks_are_deterministic_held_out_and_true_to_their_scenes(tmp_path, folders):
    for t in TYPES:
        ft.write_finetuned_task(tmp_path / t, t, n_test=8, n_train=16, seed=3)
        for split in ("test", "train"):
            assert (tmp_path / t / split / "0.tar").read_bytes() == (folders / t / split / "0.tar").read_bytes()
        assert (folders / t / "test/0.tar").read_bytes() != (folders / t / "train/0.tar").read_bytes()
    vqa = [vqa_example(p, with_image=False) for p in task_samples(folders / "vqa", "train")]
    assert all(len(q["answers"]) == 10 and set(q["answers"]) <= set(q["candidates"]) for q in vqa)
    assert vqa[0]["candidates"] == ft.vqa_answer_list() and {q["answer_type"] for q in vqa} == {
        "yes/no",
        "number",
        "other",
    }
    nlvr = [nlvr_example(p, with_images=False) for p in task_samples(folders / "nlvr", "train")]
    assert sum(e["label"] for e in nlvr) == 8
    rng = np.random.default_rng(0)
    for kind in ft.NLVR_KINDS:
        for label in (True, False):
            left, right, sentence = ft.nlvr_pair(kind, label, rng)
            assert ft.nlvr_truth(kind, left, right, sentence) == label
    for _ in range(50):
        image, objects = ft.refcoco_scene(rng)
        target = int(rng.integers(len(objects)))
        words = ft.referring_expression(objects, target, rng).split()[1:]
        named = [o for o in objects if all(w in ("one", o["colour"], o["shape"]) for w in words)]
        assert named == [objects[target]] and image.size == (ft.REFCOCO_IMAGE_SIZE,) * 2
        assert not {"left", "right", "top", "bottom"} & set(words)  # RefCOCO+: no location words
