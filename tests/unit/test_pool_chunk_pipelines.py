"""The per-chunk Sieve and M-FLYT steps of the workflow on hand-made pool shards: captioning a
chunk, the Sieve score file, M-FLYT's upstream samples and a short mixer training."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import pandas as pd
import pytest
import torch

from curate.data.chunks import chunk_seed
from curate.data.datasets import SYNTHETIC_FILE
from curate.data.synthetic.curated import write_labelled_set
from curate.data.synthetic.tasks import task_classnames
from curate.scoring.captioning import build_tiny_captioner, caption_pool_chunk
from curate.scoring.sentence import build_tiny_sentence_encoder, load_sentence_encoder, scene_paraphrase_pairs
from curate.scoring.sieve import sieve_score_frame
from curate.selection.flyt import (
    DownstreamSet,
    FlytHParams,
    UpstreamChunk,
    mixing_weights,
    pool_loader,
    read_templates,
    train_pool_mixer,
)
from tests.unit.model_fixtures import export_random_tiny_model
from tests.unit.pool_fixtures import jpg_bytes, uid, write_pool

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def pool(tmp_path_factory):
    root = tmp_path_factory.mktemp("pool")
    return write_pool(root, samples_per_shard=4, n_samples=10, corrupt=(2,))


@pytest.fixture(scope="module")
def captioner(tmp_path_factory):
    import io

    from PIL import Image

    root = tmp_path_factory.mktemp("captioner")
    pairs = [
        (Image.open(io.BytesIO(jpg_bytes((200, 20 * i, 0)))).convert("RGB"), f"a red square number {i}")
        for i in range(8)
    ]
    build_tiny_captioner(root, pairs, seed=0, steps=3)
    return root


def test_chunk_seeds_differ_by_chunk_and_repeat():
    assert chunk_seed(0, "00000") == chunk_seed(0, "00000")
    assert len({chunk_seed(0, f"{c:05d}") for c in range(50)} | {chunk_seed(1, "00000")}) == 51


def test_a_chunk_is_captioned_eight_times_per_kept_sample_reproducibly(pool, captioner):
    first, report = caption_pool_chunk(captioner, pool, seed=7, batch_size=3)
    again, _ = caption_pool_chunk(captioner, pool, seed=7, batch_size=3)
    other, _ = caption_pool_chunk(captioner, pool, seed=8, batch_size=3)
    kept = [uid(i) for i in range(10) if i != 2]
    assert first["uid"].tolist() == kept
    assert report["skipped"]["corrupt_image"] == 1
    assert first["text"].tolist()[0] == "a red square number 0"
    assert all(len(c) == 8 for c in first["captions"])
    assert [list(c) for c in first["captions"]] == [list(c) for c in again["captions"]]
    assert [list(c) for c in first["captions"]] != [list(c) for c in other["captions"]]


def test_sieve_score_file_from_captions(tmp_path):
    encoder_dir = tmp_path / "encoder"
    build_tiny_sentence_encoder(encoder_dir, scene_paraphrase_pairs(50, seed=0), seed=0, steps=0)
    encoder = load_sentence_encoder(encoder_dir)
    captions = pd.DataFrame(
        {
            "uid": [uid(0), uid(1)],
            "text": ["a red circle", "a photo of"],
            "captions": [["a red circle", "a blue square"], ["a photo", "image"]],
        }
    )
    scores = sieve_score_frame(encoder, captions)
    assert list(scores.columns) == ["uid", "sieve_score", "sieve_mean", "best_caption"]
    # an identical caption is a perfect match; the mean also counts the other caption
    assert scores["sieve_score"][0] == pytest.approx(1.0, abs=1e-5)
    assert scores["sieve_mean"][0] < scores["sieve_score"][0]
    assert scores["best_caption"][0] == "a red circle"
    # every caption of sample 1 is empty after masking the medium phrases: the score is 0
    assert scores["sieve_score"][1] == 0.0


def _chunks(pool, uids, X):
    """The pool's shards as two upstream chunks sharing the score rows ``(uids, X)``."""
    return [UpstreamChunk(list(pool[:1]), lambda: (uids, X)), UpstreamChunk(list(pool[1:]), lambda: (uids, X))]


def _objects_downstream(tmp_path, templates):
    entry = {"source": "synthetic", "task": "objects", "n_per_class": 1, "seed": 0, "image_size": 32}
    folder = tmp_path / "downstream"
    write_labelled_set(folder / SYNTHETIC_FILE, task="objects", n_per_class=1, seed=0, image_size=32)
    return [DownstreamSet(entry, folder, task_classnames("objects"), templates)]


def test_upstream_samples_follow_the_score_rows(pool):
    uids = [uid(i) for i in (9, 0, 2, 5)] + ["f" * 32]
    X = np.arange(10, dtype=np.float32).reshape(5, 2)
    loader = pool_loader(_chunks(pool, uids, X), seed=3, buffer=2)
    # fewer scored samples than a batch: they come together once; the corrupt sample 2 and the
    # unknown uid are absent, and each sample's row is its uid's
    (images, texts, rows), *rest = list(loader(8, 0))
    assert not rest and len(images) == 3
    assert sorted(texts) == ["a red square number 0", "a red square number 5", "a red square number 9"]
    row_of = {f"a red square number {i}": X[j] for j, i in enumerate((9, 0, 2, 5))}
    np.testing.assert_array_equal(rows, np.stack([row_of[t] for t in texts]))
    # full batches only (the tail dropped), the same for a pass and seed, another order for the next
    first = [t for _, t, _ in pool_loader(_chunks(pool, [uid(i) for i in range(10)], np.zeros((10, 1))), seed=3)(4, 0)]
    again = [t for _, t, _ in pool_loader(_chunks(pool, [uid(i) for i in range(10)], np.zeros((10, 1))), seed=3)(4, 0)]
    other = [t for _, t, _ in pool_loader(_chunks(pool, [uid(i) for i in range(10)], np.zeros((10, 1))), seed=3)(4, 1)]
    assert len(first) == 2 and all(len(b) == 4 for b in first) and first == again
    assert first != other


def test_a_short_mixer_training_on_a_pool_is_reproducible(tmp_path, pool):
    model_dir = export_random_tiny_model(tmp_path)
    (tmp_path / "task").mkdir()
    (tmp_path / "task" / "zeroshot_classification_templates.txt").write_text("a photo of a {c}.\n\nthe {c}.\n")
    templates = read_templates(tmp_path / "task")
    assert templates == ["a photo of a {c}.", "the {c}."]
    downstream = _objects_downstream(tmp_path, templates)
    uids = [uid(i) for i in range(10)]
    Z = np.random.default_rng(0).normal(size=(10, 3)).astype(np.float32)
    hp = FlytHParams(steps=2, warmup=1, upstream_batch=4, downstream_batch=8)
    runs = [
        train_pool_mixer(f"local-dir:{model_dir}", _chunks(pool, uids, Z), downstream, hp, seed=1) for _ in range(2)
    ]
    assert len(runs[0].history) == 2
    np.testing.assert_array_equal(mixing_weights(runs[0].head), mixing_weights(runs[1].head))
    assert not np.allclose(mixing_weights(runs[0].head), 0)
    with pytest.raises(ValueError, match="has a scored uid"):
        train_pool_mixer(f"local-dir:{model_dir}", _chunks(pool, [], Z[:0]), downstream, hp)


def test_eflyt_trains_a_glu_head_over_embeddings(tmp_path, pool):
    from curate.selection.flyt import GLUHead

    model_dir = export_random_tiny_model(tmp_path)
    downstream = _objects_downstream(tmp_path, ["a {c}."])
    X = np.random.default_rng(0).normal(size=(10, 6)).astype(np.float32)
    hp = FlytHParams(steps=1, warmup=1, upstream_batch=4, downstream_batch=8)
    result = train_pool_mixer(
        f"local-dir:{model_dir}", _chunks(pool, [uid(i) for i in range(10)], X), downstream, hp, head="glu", hidden=5
    )
    assert isinstance(result.head, GLUHead) and result.head.config()["hidden"] == 5
    # as the FLYT code: the frozen extractor embeds each batch's augmented images (not X)
    with_extractor = train_pool_mixer(
        f"local-dir:{model_dir}",
        _chunks(pool, [uid(i) for i in range(10)], X),
        downstream,
        hp,
        head="glu",
        hidden=5,
        extractor=f"local-dir:{model_dir}",
    )
    assert with_extractor.head.in_dim == 2 * with_extractor.reference_model.text_projection.shape[1] != X.shape[1]
    with pytest.raises(ValueError, match="unknown head"):
        train_pool_mixer(
            f"local-dir:{model_dir}", _chunks(pool, [uid(i) for i in range(10)], X), downstream, hp, head="mlp"
        )
