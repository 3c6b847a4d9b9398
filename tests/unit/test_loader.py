"""The pool loader (curate/data/loader.py) and one-pass scoring (curate/scoring/one_pass.py): the
same samples, batches, skip counts and scores as the serial reader, whatever the workers."""

import io
import os

import numpy as np
import pytest
import torch
from PIL import Image

os.environ.setdefault("HF_HUB_OFFLINE", "1")
torch.set_num_threads(1)

from curate.data.loader import PoolInputs, iter_pool_input_batches  # noqa: E402
from curate.data.shards import ShardWriter, SkipReport, iter_pool_batches  # noqa: E402
from curate.scoring.clip import load_model  # noqa: E402
from curate.scoring.clip_score import score_chunk, score_chunk_group  # noqa: E402
from curate.scoring.one_pass import merge_inputs, transform_key  # noqa: E402
from tests.unit.model_fixtures import export_random_tiny_model  # noqa: E402


def uid(i):
    return f"{i:032x}"


def jpg(i, size=(40, 30)):
    buffer = io.BytesIO()
    Image.new("RGB", size, ((37 * i) % 256, (91 * i) % 256, (53 * i) % 256)).save(buffer, format="JPEG")
    return buffer.getvalue()


#: sample index -> what is wrong with it (the serial reader's rules, in its order)
BAD = {2: "corrupt_image", 5: "empty_caption", 7: "duplicate_uid", 11: "corrupt_image", 12: "duplicate_uid"}


@pytest.fixture(scope="module")
def pool(tmp_path_factory):
    """Three shards of 5, 5 and 4 samples, with every kind of bad sample the reader skips, one
    of them in a shard of its own; a duplicate uid across shards too."""
    folder = tmp_path_factory.mktemp("pool")
    i = 0
    for shard_id, n in ((0, 5), (1, 5), (2, 4)):
        with ShardWriter(folder, shard_id, 5, fixed_time=0.0) as writer:
            for _ in range(n):
                data = b"\xff\xd8 not a jpeg" if BAD.get(i) == "corrupt_image" else jpg(i)
                text = "  " if BAD.get(i) == "empty_caption" else f"sample number {i}"
                same = {7: 3, 12: 8}.get(i, i)  # 7 repeats 3's uid, 12 repeats 8's (another shard)
                writer.write(data, text, {"uid": uid(same)})
                i += 1
    return sorted(folder.glob("*.tar"))


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """Two tiny CLIPs with different weights and different image sizes (their own preprocessing)."""
    a = export_random_tiny_model(tmp_path_factory.mktemp("a"), arch="tiny-vit-narrow")
    b = export_random_tiny_model(tmp_path_factory.mktemp("b"), arch="tiny-vit")
    return {"a": f"local-dir:{a}", "b": f"local-dir:{b}"}


def _serial(paths, batch_size):
    report = SkipReport()
    batches = [[(s.uid, s.text) for s in batch] for batch in iter_pool_batches(paths, report, batch_size)]
    return batches, report.as_dict()


def _inputs():
    def image(im):
        return torch.tensor(np.asarray(im.resize((8, 8)), dtype=np.float32)).permute(2, 0, 1)

    return PoolInputs(images={"small": image}, texts={"len": lambda texts: torch.tensor([len(t) for t in texts])})


@pytest.mark.parametrize("workers, block_size", [(0, 32), (0, 2), (2, 2), (2, 3), (2, 1)])
@pytest.mark.parametrize("batch_size", [1, 3, 4, 20])
def test_same_batches_and_report_as_the_serial_reader(pool, workers, block_size, batch_size):
    want_batches, want_report = _serial(pool, batch_size)
    report = SkipReport()
    got = list(iter_pool_input_batches(pool, report, _inputs(), batch_size, workers=workers, block_size=block_size))
    assert [list(zip(b.uids, b.texts)) for b in got] == want_batches
    assert report.as_dict() == want_report
    skipped = want_report["skipped"]
    assert skipped["corrupt_image"] == 2 and skipped["empty_caption"] == 1 and skipped["duplicate_uid"] == 2
    assert want_report["seen"] == 14 and want_report["kept"] == 9
    # every batch's inputs are its own samples' (rows in order)
    for batch in got:
        assert batch.images["small"].shape == (len(batch), 3, 8, 8)
        assert batch.text_inputs["len"].tolist() == [len(t) for t in batch.texts]


def test_each_image_is_decoded_once_and_given_every_transform(pool, monkeypatch):
    import curate.data.shards as shards

    decoded = []
    real = shards._decode_image

    def counting(data):
        decoded.append(data)
        return real(data)

    monkeypatch.setattr(shards, "_decode_image", counting)
    seen = {"a": 0, "b": 0}

    def transform(name, size):
        def apply(im):
            seen[name] += 1
            return torch.zeros(3, size, size)

        return apply

    inputs = PoolInputs(images={"a": transform("a", 4), "b": transform("b", 6)})
    batches = list(iter_pool_input_batches(pool, SkipReport(), inputs, 4))
    assert len(decoded) == 14  # each sample's image once, whatever the number of transforms
    # every transform on every decoded sample with a caption (a repeated uid is dropped after)
    assert seen == {"a": 11, "b": 11} and sum(len(b) for b in batches) == 9
    assert batches[0].images["b"].shape == (4, 3, 6, 6)


def test_a_missing_shard_fails_before_anything_is_read(pool, tmp_path):
    with pytest.raises(FileNotFoundError, match="00000009.tar"):
        list(iter_pool_input_batches([*pool, tmp_path / "00000009.tar"], SkipReport(), _inputs(), 2))


def test_transform_keys_are_shared_by_equal_preprocessing(models):
    _, pre_a, tok_a = load_model(models["a"])
    _, pre_a2, tok_a2 = load_model(models["a"])
    _, pre_b, _ = load_model(models["b"])
    assert transform_key("image", pre_a) == transform_key("image", pre_a2)
    assert transform_key("text", tok_a) == transform_key("text", tok_a2)
    assert (transform_key("image", pre_a) == transform_key("image", pre_b)) == (repr(pre_a) == repr(pre_b))


@pytest.mark.parametrize("workers", [0, 2])
def test_one_pass_scores_equal_each_model_scored_alone(pool, models, workers, tmp_path):
    alone = {name: score_chunk(source, pool, batch_size=3) for name, source in models.items()}
    paths = {name: tmp_path / f"{name}.npz" for name in models}
    together = score_chunk_group(models, pool, batch_size=3, workers=workers, embeddings_paths=paths)
    assert set(together) == set(models)
    for name in models:
        df, report = together[name]
        want_df, want_report = alone[name]
        assert list(df.uid) == list(want_df.uid)
        np.testing.assert_allclose(df.clip_score.to_numpy(), want_df.clip_score.to_numpy(), atol=1e-6, rtol=0)
        assert report == want_report
        assert np.load(paths[name])["image"].shape[0] == len(df)
    # two different models give different scores (the pass does not hand one model's to another)
    assert not np.allclose(together["a"][0].clip_score, together["b"][0].clip_score)


def test_merge_inputs_keeps_one_transform_per_key():
    class M:
        def __init__(self, keys):
            self.inputs = PoolInputs(images={k: k for k in keys})

    merged = merge_inputs([M(["x", "y"]), M(["y", "z"])])
    assert sorted(merged.images) == ["x", "y", "z"]
