"""FLYT's ablation variants (FLYT Tables 8, 12, 13) and its other inputs: the CLIP downstream loss,
a reference that is not updated, a feature extractor trained with the head, a scale's rebasing of
FLYT's settings, the labelled-set loaders, released classifiers and scoring heads, a seeded
random initialisation, and s-CLIPLoss's two-stage filter (Wang et al. 2024)."""

import math
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import pytest
import torch
from torch import nn

from curate.data.datasets import SYNTHETIC_FILE
from curate.selection.flyt import (
    TAU_DS_INIT,
    DownstreamSet,
    FlytHParams,
    GLUHead,
    downstream_clip_loss,
    in_memory_loader,
    labelled_loader,
    load_head,
    load_head_extractor,
    save_head,
    train_eflyt,
    train_flyt,
)
from curate.selection.fusion import move_flyt_hparams
from curate.selection.methods import top_n, two_stage

torch.set_num_threads(1)


# ----------------------------------------------------------------------------- two-stage filter
def test_two_stage_keeps_shares_of_the_whole_pool_by_each_score():
    uids = [f"u{i}" for i in range(10)]
    first = np.array([9, 8, 7, 6, 5, 4, 3, 2, 1, 0], dtype=float)  # top 30 %: u0, u1, u2
    second = np.array([0, 5, 3, 9, 9, 9, 9, 9, 9, 9], dtype=float)  # of those, top 20 % of 10: u1, u2
    assert two_stage(uids, first, second, 0.3, 0.2) == ["u1", "u2"]
    # the second stage never brings back what the first dropped, however high its score
    assert two_stage(uids, first, second, 0.3, 0.1) == ["u1"]
    # a sample without a second score (NaN) is never kept; ties go to the lower index
    second_nan = np.array([np.nan, 5, 5, 0, 0, 0, 0, 0, 0, 0], dtype=float)
    assert two_stage(uids, first, second_nan, 0.3, 0.1) == ["u1"]
    assert top_n(np.array([1.0, np.nan, 3.0, 3.0]), 2).tolist() == [2, 3]
    assert top_n(np.array([np.nan, np.nan, 1.0]), 2).tolist() == [2]


# ----------------------------------------------------------------------------- settings at a scale
TINY = {"steps": 200, "warmup": 20, "upstream_batch": 256, "downstream_batch": 192, "head_lr": 0.01}


def test_a_scale_rebases_flyts_settings_by_their_ratio_to_flyts_defaults():
    assert move_flyt_hparams({}, TINY) == TINY
    assert move_flyt_hparams({"steps": 12500}, TINY)["steps"] == 500  # 2.5 x 5000 -> 2.5 x 200
    assert move_flyt_hparams({"steps": 1250}, TINY)["steps"] == 50
    assert move_flyt_hparams({"downstream_batch": 1024}, TINY)["downstream_batch"] == 64  # 1/3 of 192
    moved = move_flyt_hparams({"head_lr": 5e-3, "ref_lr": 1e-4, "tau_ds_init": None}, TINY)
    assert moved["head_lr"] == pytest.approx(0.05)  # 5 x FLYT's 1e-3 -> 5 x 0.01
    assert moved["ref_lr"] == 1e-4 and moved["tau_ds_init"] is None  # not rebased here: kept
    short = move_flyt_hparams({"steps": 100}, TINY)  # 4 steps: the warm-up stays below them
    assert short["steps"] == 4 and short["warmup"] == 3
    assert move_flyt_hparams({"steps": 12500}, None) == {"steps": 12500}


# ----------------------------------------------------------------------------- the CLIP loss
def test_downstream_clip_loss_by_hand():
    eye = torch.eye(2)
    # logits = identity: each direction's CE is log(1 + e^-1)
    assert float(downstream_clip_loss(eye, eye, None)) == pytest.approx(math.log(1 + math.exp(-1)), abs=1e-6)
    # scaled by exp(tau) = 2
    assert float(downstream_clip_loss(eye, eye, math.log(2))) == pytest.approx(math.log(1 + math.exp(-2)), abs=1e-6)
    # asymmetric logits: the mean of the image->text and text->image CEs
    img = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    txt = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    logits = img @ txt.T  # [[1, 1], [0, 0]]
    i2t = (math.log(2) + math.log(2)) / 2
    t2i = (-math.log(math.e / (math.e + 1)) - math.log(1 / (math.e + 1))) / 2
    assert float(downstream_clip_loss(img, txt, None)) == pytest.approx((i2t + t2i) / 2, abs=1e-6)
    assert logits.shape == (2, 2)


# ----------------------------------------------------------------------------- trainer variants
@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from curate.data.synthetic.curated import write_labelled_set
    from curate.data.synthetic.tasks import TEMPLATES
    from curate.scoring.clip import write_random_model

    root = tmp_path_factory.mktemp("flyt")
    arch = f"local-dir:{write_random_model('tiny-vit-narrow', 7, root / 'ref')}"
    write_labelled_set(root / "ds" / SYNTHETIC_FILE, "objects", n_per_class=1, seed=0, image_size=32)
    with np.load(root / "ds" / SYNTHETIC_FILE) as z:
        ds = z["images"], z["labels"].astype(np.int64), [str(c) for c in z["classnames"]]
    rng = np.random.default_rng(0)
    pool_images = rng.integers(0, 256, size=(8, 32, 32, 3), dtype=np.uint8)
    pool_texts = [f"a {c}" for c in ds[2][:8]]
    return {"root": root, "arch": arch, "ds": ds, "pool": (pool_images, pool_texts), "templates": TEMPLATES["objects"]}


HP = dict(steps=2, warmup=1, upstream_batch=4, downstream_batch=6, ref_lr=1e-3, head_lr=0.01)


def _state(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_a_reference_that_is_not_updated_keeps_its_weights_and_peak_lr(tiny):
    from curate.scoring.clip import load_model

    images, labels, classnames = tiny["ds"]
    X = np.random.default_rng(1).normal(size=(8, 3)).astype(np.float32)
    before = _state(load_model(tiny["arch"])[0])
    hp = FlytHParams(**HP, update_reference=False)
    result = train_flyt(
        tiny["arch"],
        in_memory_loader(*tiny["pool"], X, seed=0),
        in_memory_loader(images, labels, seed=1),
        classnames,
        tiny["templates"],
        head=lambda k: GLUHead(k, hidden=4),
        hparams=hp,
        seed=0,
    )
    after = _state(result.reference_model)
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert [h["ref_lr"] for h in result.history] == [1e-3, 1e-3]  # not scheduled
    assert result.tau_ds == pytest.approx(TAU_DS_INIT)  # not learned
    assert result.adam_state["step"] == 4  # the moments and the counter still advance
    updated = train_flyt(
        tiny["arch"],
        in_memory_loader(*tiny["pool"], X, seed=0),
        in_memory_loader(images, labels, seed=1),
        classnames,
        tiny["templates"],
        head=lambda k: GLUHead(k, hidden=4),
        hparams=FlytHParams(**HP),
        seed=0,
    )
    assert not all(torch.equal(before[k], v) for k, v in _state(updated.reference_model).items())


def test_the_clip_loss_reads_one_text_per_image(tiny):
    images, labels, classnames = tiny["ds"]
    texts = [f"a photo of a {classnames[y]}." for y in labels]
    X = np.random.default_rng(1).normal(size=(8, 3)).astype(np.float32)
    result = train_flyt(
        tiny["arch"],
        in_memory_loader(*tiny["pool"], X, seed=0),
        in_memory_loader(images, texts, seed=1),
        None,
        None,
        head=lambda k: GLUHead(k, hidden=4),
        hparams=FlytHParams(**HP, downstream_loss="clip"),
        seed=0,
    )
    assert all(math.isfinite(h["downstream_loss"]) for h in result.history)
    with pytest.raises(ValueError, match="class names and templates"):
        train_flyt(
            tiny["arch"],
            in_memory_loader(*tiny["pool"], X, seed=0),
            in_memory_loader(images, labels, seed=1),
            None,
            None,
            head=lambda k: GLUHead(k, hidden=4),
            hparams=FlytHParams(**HP),
        )
    with pytest.raises(ValueError, match="downstream_loss"):
        FlytHParams(downstream_loss="mse")


def test_a_feature_extractor_trained_with_the_head_is_saved_and_loaded_with_it(tiny, tmp_path):
    import json

    from curate.scoring.clip import CONFIG_NAME, load_model

    images, labels, classnames = tiny["ds"]
    frozen = _state(load_model(tiny["arch"])[0])
    kwargs = dict(seed=0, hidden=4, extractor=tiny["arch"])
    loaders = lambda: (in_memory_loader(*tiny["pool"], seed=0), in_memory_loader(images, labels, seed=1))  # noqa: E731
    result = train_eflyt(
        tiny["arch"], *loaders(), classnames, tiny["templates"], FlytHParams(**HP, train_extractor=True), **kwargs
    )
    assert result.extractor is not None
    trained = _state(result.extractor)
    assert any(not torch.equal(frozen[k], trained[k]) for k in frozen if frozen[k].is_floating_point())
    assert float(result.extractor.logit_scale.detach()) <= math.log(100) + 1e-6
    plain = train_eflyt(tiny["arch"], *loaders(), classnames, tiny["templates"], FlytHParams(**HP), **kwargs)
    assert plain.extractor is None
    config = json.loads((tiny["root"] / "ref" / CONFIG_NAME).read_text())
    save_head(tmp_path / "mixer.pt", result.head, {"x": 1}, extractor=(config, result.extractor))
    head, meta = load_head(tmp_path / "mixer.pt")
    assert meta == {"x": 1} and isinstance(head, GLUHead)
    model, _, _ = load_head_extractor(tmp_path / "mixer.pt")
    assert all(torch.equal(trained[k], v) for k, v in _state(model).items())
    save_head(tmp_path / "plain.pt", plain.head)
    assert load_head_extractor(tmp_path / "plain.pt") is None
    with pytest.raises(ValueError, match="needs the extractor"):
        train_eflyt(tiny["arch"], *loaders(), classnames, tiny["templates"], FlytHParams(**HP, train_extractor=True))


def test_random_models_are_the_same_for_a_seed(tmp_path):
    from curate.scoring.clip import load_model, write_random_model

    a = _state(load_model(f"local-dir:{write_random_model('tiny-vit-narrow', 3, tmp_path / 'a')}")[0])
    b = _state(load_model(f"local-dir:{write_random_model('tiny-vit-narrow', 3, tmp_path / 'b')}")[0])
    c = _state(load_model(f"local-dir:{write_random_model('tiny-vit-narrow', 4, tmp_path / 'c')}")[0])
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a)


# ----------------------------------------------------------------------------- labelled loaders
def _set(tmp_path, task, n_per_class, seed):
    from curate.data.synthetic.curated import write_labelled_set
    from curate.data.synthetic.tasks import task_classnames

    folder = tmp_path / task
    write_labelled_set(folder / SYNTHETIC_FILE, task, n_per_class=n_per_class, seed=seed, image_size=16)
    entry = {"source": "synthetic", "task": task, "n_per_class": n_per_class, "seed": seed}
    n = n_per_class * len(task_classnames(task))
    return DownstreamSet(entry, folder, task_classnames(task), [f"{task}: {{c}}"], n)


def test_labelled_loaders_draw_labels_or_texts_and_groups_by_size_or_evenly(tmp_path):
    shape = _set(tmp_path, "shape", 4, 0)
    colour = _set(tmp_path, "colour", 1, 0)
    ce = list(labelled_loader([shape], "ce", seed=0)(5, 0))
    assert all(len(images) == 5 and labels.dtype.kind == "i" for images, labels in ce)
    assert len(ce) == shape.size // 5  # full batches only
    again = list(labelled_loader([shape], "ce", seed=0)(5, 0))
    assert [b[1].tolist() for b in ce] == [b[1].tolist() for b in again]  # seeded
    other = list(labelled_loader([shape], "ce", seed=0)(5, 1))
    assert [b[1].tolist() for b in ce] != [b[1].tolist() for b in other]  # another pass, another order
    (images, texts), *_ = list(labelled_loader([shape], "clip", seed=0)(5, 0))
    assert all(t.startswith("shape: ") and t[7:] in shape.classnames for t in texts)
    with pytest.raises(ValueError, match="several sets take the CLIP loss"):
        labelled_loader([shape, colour], "ce")

    def share(balanced):
        stream = labelled_loader([shape, colour], "clip", balanced=balanced, seed=0)(200, 0)
        texts = [t for _ in range(5) for t in next(stream)[1]]
        return np.mean([t.startswith("shape: ") for t in texts])

    # by size: shape has 4 x as many samples per class; evenly: half and half
    expected = shape.size / (shape.size + colour.size)
    assert share(False) == pytest.approx(expected, abs=0.05)
    assert share(True) == pytest.approx(0.5, abs=0.05)


# ----------------------------------------------------------------------------- released models
def test_a_released_linear_classifier_scores_by_its_logit(tmp_path):
    from curate.scoring.embedding_scores import embedding_score_frame, load_linear_classifier

    linear = nn.Linear(4, 1)
    torch.save(linear.state_dict(), tmp_path / "IN1K-Classifier.pt")
    w, b = load_linear_classifier(tmp_path / "IN1K-Classifier.pt")
    np.testing.assert_allclose(w, linear.weight[0].detach().numpy())
    assert b == pytest.approx(float(linear.bias))
    img = np.random.default_rng(0).normal(size=(3, 4)).astype(np.float32)
    frame = embedding_score_frame("linear_probe", ["a", "b", "c"], img, img, {"features": "image"}, classifier=(w, b))
    expected = linear(torch.from_numpy(img)).detach().numpy()[:, 0]  # the stored (normalised) embeddings as they are
    np.testing.assert_allclose(frame["linear_probe"], expected, rtol=1e-5, atol=1e-6)
    torch.save(nn.Linear(4, 2).state_dict(), tmp_path / "two.pt")
    with pytest.raises(ValueError, match="one output"):
        load_linear_classifier(tmp_path / "two.pt")


def test_flyts_released_scoring_model_is_its_glu_over_normalised_embeddings(tmp_path):
    from torch.nn import functional as F

    from curate.scoring.embedding_scores import flyt_head_score, load_flyt_scoring_head

    torch.manual_seed(0)
    w1, w3, w2 = nn.Linear(6, 5), nn.Linear(6, 5), nn.Linear(5, 1)
    state = {"clip_model.logit_scale": torch.tensor(4.6)}
    for name, layer in (("w1", w1), ("w2", w2), ("w3", w3)):
        for k, v in layer.state_dict().items():
            state[f"module.glu_model.layers.0.{name}.{k}"] = v
    torch.save({"state_dict": state}, tmp_path / "flyt.pt")
    head = load_flyt_scoring_head(tmp_path / "flyt.pt")
    rng = np.random.default_rng(0)
    img, txt = rng.normal(size=(4, 3)).astype(np.float32), rng.normal(size=(4, 3)).astype(np.float32)
    x = torch.cat([F.normalize(torch.from_numpy(img), dim=-1), F.normalize(torch.from_numpy(txt), dim=-1)], dim=1)
    expected = w2(F.silu(w1(x)) * w3(x))[:, 0].detach().numpy()
    np.testing.assert_allclose(flyt_head_score(head, img, txt), expected, rtol=1e-5, atol=1e-6)
    state["glu_model.layers.1.w1.weight"] = torch.zeros(1)
    torch.save(state, tmp_path / "deep.pt")
    with pytest.raises(ValueError, match="one-layer"):
        load_flyt_scoring_head(tmp_path / "deep.pt")
