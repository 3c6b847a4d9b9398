"""curate.training.weighted_clip: CLIP training with per-sample loss weights (MoS sample weighting)."""

import hashlib
import json

import numpy as np
import open_clip
import pytest
import torch

import curate.training.weighted_clip as wc
from curate.data.reshard import reshard
from curate.data.subset import uids_to_u8u8
from curate.scoring.clip import load_model
from tests.unit.pool_fixtures import uid, write_pool

torch.set_num_threads(1)

TINY = {
    "trainer": "weighted_clip",
    "model": "tiny-vit",
    "epochs": 2,
    "batch_size": 8,
    "lr": 0.002,
    "wd": 0.2,
    "warmup_epochs": 1,
    "beta1": 0.9,
    "beta2": 0.98,
    "eps": 1e-6,
    "device": "cpu",
    "shuffle_buffer": 16,
}


class FakeModel(torch.nn.Module):
    """Fixed features, open_clip's output dict: exp(logit_scale) as open_clip returns it."""

    def __init__(self, image_features, text_features, logit_scale):
        super().__init__()
        self.i, self.t, self.s = image_features, text_features, logit_scale

    def forward(self, images, texts):
        return {"image_features": self.i[images], "text_features": self.t[texts], "logit_scale": self.s.exp()}


def features(n=6, d=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    i = torch.nn.functional.normalize(torch.randn(n, d, generator=g), dim=-1)
    t = torch.nn.functional.normalize(torch.randn(n, d, generator=g), dim=-1)
    return i, t, torch.tensor(np.log(1 / 0.07), dtype=torch.float32)


def test_uniform_weights_give_open_clips_loss_whatever_their_scale():
    i, t, s = features()
    model = FakeModel(i, t, s)
    idx = torch.arange(6)
    expected = open_clip.ClipLoss()(i, t, s.exp())
    for value in (1.0, 0.3):
        loss = wc.batch_loss(model, idx, idx, torch.full((6,), value))
        torch.testing.assert_close(loss, expected)


def test_a_zero_weight_leaves_the_sample_out_of_the_batch():
    i, t, s = features()
    model = FakeModel(i, t, s)
    weights = torch.tensor([0.2, 0.0, 0.9, 0.5, 0.0, 1.0])
    keep = torch.tensor([0, 2, 3, 5])
    with_zeros = wc.batch_loss(model, torch.arange(6), torch.arange(6), weights)
    without = wc.batch_loss(model, keep, keep, weights[keep])
    torch.testing.assert_close(with_zeros, without)
    assert wc.batch_loss(model, torch.arange(6), torch.arange(6), torch.zeros(6)) is None


def test_weights_change_the_loss():
    i, t, s = features()
    model = FakeModel(i, t, s)
    a = wc.batch_loss(model, torch.arange(6), torch.arange(6), torch.ones(6))
    b = wc.batch_loss(model, torch.arange(6), torch.arange(6), torch.tensor([1.0, 0.1, 1.0, 0.1, 1.0, 0.1]))
    assert not torch.isclose(a, b)


def test_lr_warms_up_over_the_warmup_steps_then_decays_by_cosine():
    assert wc.lr_at(0, 100, 10, 1.0) == pytest.approx(0.1)
    assert wc.lr_at(9, 100, 10, 1.0) == pytest.approx(1.0)
    assert wc.lr_at(10, 100, 10, 1.0) == pytest.approx(1.0)
    assert wc.lr_at(55, 100, 10, 1.0) == pytest.approx(0.5)
    assert wc.lr_at(99, 100, 10, 1.0) < 0.001


@pytest.fixture
def weighted_reshard(tmp_path):
    pool = write_pool(tmp_path / "pool", samples_per_shard=8, n_samples=24)
    weights = {uid(i): (i % 4) / 3 for i in range(24)}
    reshard(
        uids_to_u8u8([uid(i) for i in range(24)]), pool, tmp_path / "reshard", samples_per_shard=10, weights=weights
    )
    return tmp_path / "reshard", weights


def test_read_samples_gives_every_sample_with_its_weight_in_a_seeded_order(weighted_reshard):
    folder, weights = weighted_reshard
    shards = sorted(folder.glob("*.tar"))
    first = list(wc.read_samples(shards, order_seed=1, shuffle_buffer=5))
    assert first == list(wc.read_samples(shards, order_seed=1, shuffle_buffer=5))
    assert [t for _, t, _ in first] != [t for _, t, _ in wc.read_samples(shards, order_seed=2, shuffle_buffer=5)]
    got = {text: w for _, text, w in first}
    assert got == {f"a red square number {i}": pytest.approx(weights[uid(i)]) for i in range(24)}


def test_tiny_training_is_deterministic_and_its_batches_carry_the_weights(weighted_reshard, tmp_path, monkeypatch):
    folder, weights = weighted_reshard
    seen = []
    original = wc.batch_loss

    def recording(model, images, texts, batch_weights):
        seen.append(batch_weights.clone())
        return original(model, images, texts, batch_weights)

    monkeypatch.setattr(wc, "batch_loss", recording)
    summary = wc.train_weighted_clip(TINY, folder, tmp_path / "a", seed=0)
    assert summary["steps"] == 2 * (24 // 8) and summary["skipped_steps"] == 0
    # every batch's weights are the subset's weights (values in {0, 1/3, 2/3, 1}), 6 of each per epoch
    values = torch.cat(seen)
    assert sorted(np.round(values.numpy() * 3).astype(int).tolist()) == sorted([i % 4 for i in range(24)] * 2)
    wc.train_weighted_clip(TINY, folder, tmp_path / "b", seed=0)
    digest = [hashlib.sha256((tmp_path / d / "open_clip_model.safetensors").read_bytes()).hexdigest() for d in "ab"]
    assert digest[0] == digest[1]
    model, preprocess, tokenizer = load_model(f"local-dir:{tmp_path / 'a'}")
    assert json.loads((tmp_path / "a" / "train_summary.json").read_text())["steps"] == 6


def test_batches_from_several_workers_are_deterministic_and_cover_the_subset(weighted_reshard):
    folder, weights = weighted_reshard
    _, preprocess, tokenizer = load_model("tiny-vit")
    shards = sorted(folder.glob("*.tar"))

    def epoch(workers):
        data = wc.ReshardBatches(
            shards, seed=0, epoch=0, batch_size=4, preprocess=preprocess, tokenizer=tokenizer, shuffle_buffer=4
        )
        loader = torch.utils.data.DataLoader(
            data, batch_size=None, num_workers=workers, generator=torch.Generator().manual_seed(0)
        )
        return [(images, tokens, w) for images, tokens, w in loader]

    two = epoch(2)
    again = epoch(2)
    assert len(two) == len(again) and all(
        torch.equal(a[2], b[2]) and torch.equal(a[1], b[1]) for a, b in zip(two, again)
    )
    # 3 shards of 10, 10, 4 samples: worker 0 and 1 each drop only their partial batch
    assert 4 <= len(two) <= 6
    assert all(images.shape == (4, 3, 64, 64) for images, _, _ in two)
    assert sorted(np.round(torch.cat([w for _, _, w in epoch(0)]).numpy() * 3).astype(int).tolist()) == sorted(
        [i % 4 for i in range(24)]
    )
