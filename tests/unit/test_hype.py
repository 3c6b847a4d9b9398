"""HYPE's scorer: the release's file format (ckpt.pt, reference.pt) read back through the loader,
the scores of pool chunks, and the tiny hyperbolic CLIP trained with MERU's loss
(curate.scoring.hype, curate.training.hyperbolic_clip; docs/algorithms.md §6.7)."""

import copy
import json
import math

import numpy as np
import pytest
import torch

from curate.scoring import hype
from curate.scoring.hyperbolic import hype_scores
from curate.scoring.kinds import HYPE_COLUMNS, score_contract
from tests.unit.pool_fixtures import uid, write_pool

TINY_CFG = json.loads(
    (__import__("pathlib").Path(hype.__file__).parents[1] / "model_configs" / "tiny-hype-vit.json").read_text()
)


def _model(seed=0, curvature=math.log(0.5)) -> hype.HyperbolicCLIP:
    torch.manual_seed(seed)
    return hype.HyperbolicCLIP(TINY_CFG, curvature=curvature).eval()


@pytest.fixture
def release(tmp_path):
    """A tiny model saved in the release's two files, and the model itself."""
    model = _model()
    ckpt, ref = hype.model_files(tmp_path / "release")
    hype.save_release(model, ckpt)
    rng = np.random.default_rng(0)
    hype.save_reference(rng.normal(size=(5, 64)), rng.normal(size=(7, 64)), ref)
    return ckpt, ref, model


def test_release_round_trip(release):
    ckpt, ref, model = release
    state = torch.load(ckpt, weights_only=True)
    # the release's layout: OpenAI CLIP's parameter names plus the three log scalars
    assert "visual.conv1.weight" in state and "token_embedding.weight" in state and "text_projection" in state
    assert float(state["curvature"]) == pytest.approx(math.log(0.5))
    back, record = hype.read_release(ckpt)
    assert record["curvature"] == pytest.approx(0.5, rel=1e-6)
    assert record["alpha_img"] == pytest.approx(1 / 8, rel=1e-6)  # exp(log(1/sqrt(64)))
    assert record["ignored"] == []
    assert back.model_cfg["vision_cfg"]["width"] == 128 and back.model_cfg["text_cfg"]["heads"] == 1
    images = torch.rand(2, 3, 64, 64)
    tokens = back.tokenizer()(["a red square", "two blue circles"])
    assert torch.allclose(back.encode_image(images), model.encode_image(images), atol=1e-5)
    assert torch.allclose(back.encode_text(tokens), model.encode_text(tokens), atol=1e-5)
    img, txt = hype.read_reference(ref, dim=64)
    assert img.shape == (5, 64) and txt.shape == (7, 64) and img.dtype == np.float32


def test_release_loader_refuses_what_is_not_a_release(release, tmp_path):
    ckpt, ref, model = release
    state = model.release_state_dict()
    del state["alpha_txt"]
    torch.save(state, tmp_path / "no_alpha.pt")
    with pytest.raises(ValueError, match="alpha_txt"):
        hype.read_release(tmp_path / "no_alpha.pt")
    state = model.release_state_dict()
    del state["visual.ln_post.bias"]
    torch.save(state, tmp_path / "short.pt")
    with pytest.raises(ValueError, match="lack"):
        hype.read_release(tmp_path / "short.pt")
    (tmp_path / "page.pt").write_text("<!DOCTYPE html><html>Google Drive - Virus scan warning</html>")
    with pytest.raises(ValueError, match="HTML page"):
        hype.read_release(tmp_path / "page.pt")
    with pytest.raises(ValueError, match="dimensions"):
        hype.read_reference(ref, dim=32)
    torch.save({"img": torch.zeros(3, 64)}, tmp_path / "ref.pt")
    with pytest.raises(ValueError, match="not a HYPE reference"):
        hype.read_reference(tmp_path / "ref.pt")
    # a DataParallel-saved state dict (``module.`` prefixes) reads as the plain one
    torch.save({"module." + k: v for k, v in model.release_state_dict().items()}, tmp_path / "dp.pt")
    assert hype.read_release(tmp_path / "dp.pt")[1]["curvature"] == pytest.approx(0.5, rel=1e-6)


def test_score_chunk_is_hype_scores_of_the_encodings(release, tmp_path):
    ckpt, ref, model = release
    paths = write_pool(tmp_path / "pool", samples_per_shard=3, n_samples=6, corrupt=(2,))
    frame, report = hype.score_chunk(ckpt, ref, paths, batch_size=2)
    assert list(frame.columns) == ["uid", *HYPE_COLUMNS]
    assert list(frame.uid) == [uid(i) for i in (0, 1, 3, 4, 5)]
    assert report["skipped"]["corrupt_image"] == 1 and report["model"]["reference_size"] == 5
    assert all(frame[c].dtype == np.float32 and np.isfinite(frame[c]).all() for c in HYPE_COLUMNS)
    # the same as the geometry applied to the model's own encodings of the decoded samples
    from curate.data.shards import SkipReport, iter_pool_batches

    samples = [s for batch in iter_pool_batches(paths, SkipReport(), 8) for s in batch]
    img, txt = hype.encode(model, [s.image for s in samples], [s.text for s in samples])
    ref_img, ref_txt = hype.read_reference(ref)
    want = hype_scores(img, txt, ref_img, ref_txt, 0.5)
    for name in HYPE_COLUMNS:
        assert np.allclose(frame[name].to_numpy(), want[name].numpy(), atol=1e-4), name
    assert list(score_contract({"library": "hyperbolic_clip", "source": "train"})) == ["uid", *HYPE_COLUMNS]


def test_meru_training_writes_a_release_the_scorer_reads(tmp_path, monkeypatch):
    from curate.training import hyperbolic_clip as hc

    curated = tmp_path / "curated"
    write_pool(curated, samples_per_shard=4, n_samples=8)
    recipe = {"samples_seen": 8, "batch_size": 4, "lr": 1e-3, "wd": 0.1, "warmup": 1}
    recipe |= {"beta1": 0.9, "beta2": 0.98, "eps": 1e-6}
    summary = hc.train_hyperbolic_clip(recipe, curated, "tiny-hype-vit", tmp_path / "out", seed=0, reference_size=3)
    assert summary["steps"] == 2 and summary["reference_size"] == 3
    assert math.isfinite(summary["final"]["loss"]) and summary["final"]["entailment"] >= 0
    assert 0.1 <= summary["curvature"] <= 10 and summary["alpha_img"] <= 1
    ckpt, ref = hype.model_files(tmp_path / "out")
    frame, _ = hype.score_chunk(ckpt, ref, sorted(curated.glob("*.tar")), batch_size=4)
    assert len(frame) == 8 and np.isfinite(frame[list(HYPE_COLUMNS)].to_numpy()).all()


def test_meru_loss_terms():
    from curate.training.hyperbolic_clip import meru_loss

    model = _model(curvature=0.0)
    images = torch.rand(3, 3, 64, 64)
    tokens = model.tokenizer()(["a", "b", "c"])
    loss, parts = meru_loss(model, images, tokens, entail_weight=0.2)
    assert float(loss.detach()) == pytest.approx(parts["contrastive"] + 0.2 * parts["entailment"], rel=1e-5)
    assert parts["contrastive"] > 0 and parts["entailment"] >= 0
    # at a vanishing temperature scale every pair's logits are equal: the cross-entropy is log 3
    with torch.no_grad():
        model.clip.logit_scale.fill_(math.log(1e-7))
    assert meru_loss(model, images, tokens)[1]["contrastive"] == pytest.approx(math.log(3), abs=1e-4)
    loss0, parts0 = meru_loss(model, images, tokens, entail_weight=0.0)
    assert float(loss0.detach()) == pytest.approx(parts0["contrastive"], rel=1e-6)


def test_hype_scorers_in_the_config(config, user_config):
    from curate.registry import ConfigError
    from curate.workflow.config import check_config

    # each of the three columns is a scorer of its own; HYPE's sum is the plain sum fusion of them
    assert score_contract(config["scorers"]["tiny-hype-image-specificity"]) == {
        "uid": "string",
        "image_specificity": "float32",
    }
    assert config["scorers"]["hype-vit-l14"]["reference"] == "hype-reference"
    # (at tiny, the default scale: the tiny hyperbolic CLIP's three columns stand in)
    assert config["scale"] == "tiny"
    assert config["fusions"]["hype_sum"]["method"] == "sum"
    assert config["fusions"]["hype_sum"]["scorers"] == [
        "tiny-hype-neg-lorentzian-distance",
        "tiny-hype-image-specificity",
        "tiny-hype-text-specificity",
    ]
    bad = copy.deepcopy(user_config)
    bad["scorers"]["x"] = {"library": "column", "scorer": "tiny-hype", "column": "clip_score"}
    with pytest.raises(ConfigError, match="not a column of scorers.tiny-hype"):
        check_config(bad)
    bad = copy.deepcopy(user_config)
    bad["scorers"]["x"] = {"library": "column", "scorer": "tiny-hype-image-specificity", "column": "image_specificity"}
    with pytest.raises(ConfigError, match="itself a column"):
        check_config(bad)
    bad = copy.deepcopy(user_config)
    bad["scorers"]["hype-vit-l14"]["model"] = "openai-clip-b32"
    with pytest.raises(ConfigError, match="plain downloads"):
        check_config(bad)
