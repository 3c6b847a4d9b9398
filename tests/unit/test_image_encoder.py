"""An image encoder's chunk embeddings (DBP's DINOv2, docs/algorithms.md §11): a tiny
``Dinov2Model`` snapshot in facebook/dinov2-large's layout, loaded back with AutoModel and
AutoImageProcessor, embeds a chunk's shards with bad samples skipped."""

import numpy as np
import pytest
import torch

from curate.data.scorefiles import load_embeddings, save_embeddings
from curate.rehearsal.model_hf import build_dinov2_snapshot
from curate.scoring.image_encoder import embed_chunk, encode_images, load_image_encoder
from tests.unit.pool_fixtures import uid, write_pool


@pytest.fixture(scope="module")
def dinov2(tmp_path_factory):
    return build_dinov2_snapshot(tmp_path_factory.mktemp("dinov2"), seed=0)


def test_embeddings_are_the_normalised_pooled_cls(dinov2, tmp_path):
    shards = write_pool(tmp_path / "pool", samples_per_shard=3, n_samples=5, corrupt=(2,))
    uids, emb, report = embed_chunk(dinov2, shards, batch_size=2)
    assert uids == [uid(i) for i in (0, 1, 3, 4)]  # the corrupt one is skipped and counted
    assert sum(report["skipped"].values()) == 1
    assert emb.shape == (4, 64) and emb.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    # the same as the model's own pooler_output (the final layer-normed [CLS]) for one image
    from transformers import AutoImageProcessor, Dinov2Model

    from curate.data.shards import SkipReport, iter_pool_samples

    model = Dinov2Model.from_pretrained(str(dinov2)).eval()
    processor = AutoImageProcessor.from_pretrained(str(dinov2))
    first = next(iter_pool_samples([str(p) for p in shards], SkipReport()))
    with torch.no_grad():
        out = model(**processor(images=[first.image.convert("RGB")], return_tensors="pt"))
    cls = out.pooler_output
    want = torch.nn.functional.normalize(cls, dim=-1).numpy()[0]
    np.testing.assert_allclose(emb[0], want, atol=1e-5)
    # distinct images embed differently
    assert np.ptp(emb @ emb[0]) > 0


def test_embedding_file_has_empty_text_rows(dinov2, tmp_path):
    model, processor = load_image_encoder(dinov2)
    shards = write_pool(tmp_path / "pool", n_samples=2)
    uids, emb, _ = embed_chunk(dinov2, shards)
    save_embeddings(tmp_path / "e.npz", uids, emb, np.zeros((len(uids), 0), np.float32))
    got_uids, image, text = load_embeddings(tmp_path / "e.npz")
    assert got_uids == uids and text.shape == (2, 0)
    np.testing.assert_allclose(image, emb, atol=1e-3)  # float16 on disk
    assert encode_images(model, processor, [first_image(shards)]).shape == (1, 64)


def first_image(shards):
    from curate.data.shards import SkipReport, iter_pool_samples

    return next(iter_pool_samples([str(p) for p in shards], SkipReport())).image
