"""curate.training.llava: tiny LLaVA built locally, weighted projector pretraining, CIDEr."""

import hashlib

import pytest
import torch

import curate.evaluation.llava as el
import curate.training.llava as ll
from curate.data.reshard import reshard
from curate.data.subset import uids_to_u8u8
from curate.evaluation.captioning_metrics import cider, cider_tokens
from tests.unit.pool_fixtures import uid, write_pool

torch.set_num_threads(1)

CAPTIONS = [f"a red square number {i}" for i in range(12)]
RECIPE = {
    "trainer": "llava",
    "model": "tiny-llava",
    "base": {"source": "local", "vision_tower": "v", "language_model": "l"},
    "epochs": 1,
    "batch_size": 4,
    "lr": 1e-2,
    "wd": 0.0,
    "warmup_ratio": 0.03,
    "shuffle_buffer": 8,
}


def test_cider_is_pycocoevalcaps_and_orders_candidates():
    refs = [
        ["a red circle on the left", "a small red circle, left side"],
        ["two blue squares in the centre", "a pair of blue squares, centre"],
        ["a green star at the top", "one green star, top"],
    ]
    perfect = cider(refs, ["a red circle on the left", "two blue squares in the centre", "a green star at the top"])
    partial = cider(refs, ["a red circle", "blue squares", "a star"])
    wrong = cider(refs, ["zebra", "zebra", "zebra"])
    assert perfect > partial > wrong == 0.0
    assert cider_tokens("A Red, circle!") == "a red circle"
    from pycocoevalcap.cider.cider import Cider

    gts = {i: [cider_tokens(r) for r in rs] for i, rs in enumerate(refs)}
    assert partial == pytest.approx(
        Cider().compute_score(gts, {0: ["a red circle"], 1: ["blue squares"], 2: ["a star"]})[0]
    )


def test_weighted_caption_loss_uniform_equals_the_mean_and_zero_weight_leaves_out():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 5, 7, generator=g)
    labels = torch.tensor([[-100, 1, 2, 3, -100], [-100, 4, 5, -100, -100], [-100, 6, 1, 2, 3]])
    per = [ll.weighted_caption_loss(logits[i : i + 1], labels[i : i + 1], torch.ones(1)) for i in range(3)]
    uniform = ll.weighted_caption_loss(logits, labels, torch.full((3,), 0.4))
    torch.testing.assert_close(uniform, torch.stack(per).mean())
    zero = ll.weighted_caption_loss(logits, labels, torch.tensor([0.5, 0.0, 1.0]))
    torch.testing.assert_close(zero, (0.5 * per[0] + 1.0 * per[2]) / 1.5)
    assert ll.weighted_caption_loss(logits, labels, torch.zeros(3)) is None


@pytest.fixture(scope="module")
def tiny_llava(tmp_path_factory):
    root = tmp_path_factory.mktemp("llava")
    info = ll.build_tiny_parts(root / "parts", CAPTIONS, seed=0, lm_steps=30, hidden=32)
    ll.assemble_llava(root / "parts" / "vision", root / "parts" / "language_model", root / "base", seed=0)
    return root, info


def test_tiny_llava_is_saved_and_loaded_back_through_transformers(tiny_llava):
    root, info = tiny_llava
    assert info["lm_final_loss"] < info["lm_first_loss"]
    model, processor = ll.load_llava(root / "base")
    assert type(model).__name__ == "LlavaForConditionalGeneration"
    assert model.config.image_seq_length == 16
    # the processor expands <image> into exactly the tokens the model expects
    from PIL import Image

    enc = processor(images=[Image.new("RGB", (64, 64))], text=["<image>"], return_tensors="pt")
    assert int((enc["input_ids"] == model.config.image_token_index).sum()) == 16


def test_projector_pretraining_trains_only_the_projector_deterministically_with_the_weights(
    tiny_llava, tmp_path, monkeypatch
):
    root, _ = tiny_llava
    pool = write_pool(tmp_path / "pool", samples_per_shard=6, n_samples=12)
    weights = {uid(i): float(i % 3 == 0) for i in range(12)}
    reshard(uids_to_u8u8([uid(i) for i in range(12)]), pool, tmp_path / "reshard", weights=weights)
    seen = []
    original = ll.weighted_caption_loss

    def recording(logits, labels, batch_weights, total_weight=None):
        seen.append(batch_weights.clone())
        return original(logits, labels, batch_weights, total_weight)

    monkeypatch.setattr(ll, "weighted_caption_loss", recording)
    summary = ll.train_projector(RECIPE, tmp_path / "reshard", root / "base", tmp_path / "a", seed=0)
    assert summary["steps"] == 3
    # a batch whose weights are all 0 is skipped without a forward pass
    recorded = torch.cat(seen).tolist() + [0.0] * (RECIPE["batch_size"] * summary["skipped_steps"])
    assert sorted(recorded) == sorted(weights.values())
    ll.train_projector(RECIPE, tmp_path / "reshard", root / "base", tmp_path / "b", seed=0)
    digest = [hashlib.sha256((tmp_path / d / "model.safetensors").read_bytes()).hexdigest() for d in "ab"]
    assert digest[0] == digest[1]
    base, _ = ll.load_llava(root / "base")
    trained, processor = ll.load_llava(tmp_path / "a")
    changed = {
        name for (name, p), (_, q) in zip(base.named_parameters(), trained.named_parameters()) if not torch.equal(p, q)
    }
    assert changed and all(name.startswith("model.multi_modal_projector") for name in changed)
    captions = el.generate_captions(trained, processor, [__import__("PIL.Image").Image.new("RGB", (64, 64))] * 2)
    assert len(captions) == 2 and captions[0] == captions[1]


def test_micro_batches_give_the_same_update_as_one_batch(tiny_llava, tmp_path):
    root, _ = tiny_llava
    pool = write_pool(tmp_path / "pool", samples_per_shard=6, n_samples=8)
    reshard(
        uids_to_u8u8([uid(i) for i in range(8)]),
        pool,
        tmp_path / "reshard",
        weights={uid(i): 0.25 * (i % 4) for i in range(8)},
    )
    ll.train_projector(RECIPE, tmp_path / "reshard", root / "base", tmp_path / "whole", seed=0)
    ll.train_projector(
        dict(RECIPE, micro_batch_size=3), tmp_path / "reshard", root / "base", tmp_path / "micro", seed=0
    )
    whole, _ = ll.load_llava(tmp_path / "whole")
    micro, _ = ll.load_llava(tmp_path / "micro")
    for (name, p), (_, q) in zip(whole.named_parameters(), micro.named_parameters()):
        torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-6, msg=name)
