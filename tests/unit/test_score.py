import io
import os

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

os.environ.setdefault("HF_HUB_OFFLINE", "1")
torch.set_num_threads(1)

import curate.data.shards  # noqa: E402
from curate.data.scorefiles import check_scores, load_scores, save_scores  # noqa: E402
from curate.data.shards import ShardWriter  # noqa: E402
from curate.scoring.clip import encode, load_model  # noqa: E402
from curate.scoring.clip_score import score_chunk  # noqa: E402
from tests.unit.model_fixtures import export_random_tiny_model  # noqa: E402

COLOURS = [(200, 20, 20), (20, 20, 200), (20, 180, 20), (220, 220, 30)]


def jpg(colour):
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), colour).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def uid(i):
    return f"{i:032x}"


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A random tiny model with fixed weights (exported, so every load gives the same model)."""
    return export_random_tiny_model(tmp_path_factory.mktemp("model"))


@pytest.fixture(scope="module")
def pool(tmp_path_factory):
    """Two shards, 7 samples: #2 has a corrupt image, #5 an empty caption."""
    folder = tmp_path_factory.mktemp("pool")
    rows = []
    i = 0
    for shard_id, n in ((0, 4), (1, 3)):
        with ShardWriter(folder, shard_id, 4, fixed_time=0.0) as writer:
            for _ in range(n):
                data = b"\xff\xd8 not a jpeg" if i == 2 else jpg(COLOURS[i % 4])
                text = "" if i == 5 else f"a square number {i}"
                writer.write(data, text, {"uid": uid(i)})
                rows.append((uid(i), data, text))
                i += 1
    return sorted(folder.glob("*.tar")), rows


def test_score_chunk_scores_kept_samples_in_order(model_dir, pool):
    paths, rows = pool
    df, report = score_chunk(f"local-dir:{model_dir}", paths, batch_size=2)
    kept = [r for r in rows if r[0] not in (uid(2), uid(5))]
    assert list(df.columns) == ["uid", "clip_score"]
    assert list(df.uid) == [r[0] for r in kept]
    assert df.clip_score.dtype == np.float32
    assert report["seen"] == 7 and report["kept"] == 5
    assert report["skipped"]["corrupt_image"] == 1 and report["skipped"]["empty_caption"] == 1
    assert report["skipped"]["nan_score"] == 0

    model, preprocess, tokenizer = load_model(f"local-dir:{model_dir}")
    images = [Image.open(io.BytesIO(r[1])).convert("RGB") for r in kept]
    img, txt = encode(model, preprocess, tokenizer, images, [r[2] for r in kept], batch_size=2)
    np.testing.assert_allclose(df.clip_score.to_numpy(), (img * txt).sum(axis=1), atol=1e-6)
    check_scores(df)


def test_score_chunk_drops_and_counts_nan_scores(model_dir, pool, monkeypatch):
    import curate.scoring.clip_score

    real_run = curate.scoring.clip_score.ClipPassModel.run

    def nan_first(self, batch):
        out = real_run(self, batch)
        out["score"][0] = np.nan
        return out

    monkeypatch.setattr(curate.scoring.clip_score.ClipPassModel, "run", nan_first)
    df, report = score_chunk(f"local-dir:{model_dir}", pool[0], batch_size=4)
    # batches of 4 kept samples: [0, 1, 3, 4] and [6]; the first of each is NaN
    assert list(df.uid) == [uid(1), uid(3), uid(4)]
    assert report["skipped"]["nan_score"] == 2 and report["kept"] == 3


def test_score_chunk_missing_shard_raises(model_dir, tmp_path):
    with pytest.raises(FileNotFoundError, match="00000009.tar"):
        score_chunk(f"local-dir:{model_dir}", [tmp_path / "00000009.tar"])


def scores_frame(n=4, dtype=np.float32):
    return pd.DataFrame(
        {"uid": pd.Series([uid(i) for i in range(n)], dtype=object), "clip_score": np.linspace(0, 1, n).astype(dtype)}
    )


def test_save_load_round_trip(tmp_path):
    df = scores_frame()
    path = save_scores(df, tmp_path / "s" / "chunk.parquet")
    back = load_scores(path)
    assert list(back.columns) == ["uid", "clip_score"]
    assert back.clip_score.dtype == np.float32
    pd.testing.assert_frame_equal(back, df)
    empty = scores_frame(0)
    pd.testing.assert_frame_equal(
        load_scores(save_scores(empty, tmp_path / "empty.parquet")), empty, check_index_type=False
    )


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda df: df.assign(uid=[uid(0), uid(1), uid(1), uid(3)]), "duplicate uids"),
        (lambda df: df.assign(clip_score=np.array([0, np.nan, 1, 2], np.float32)), "1 NaN"),
        (lambda df: df.assign(clip_score=df.clip_score.astype(np.float64)), "expected float32"),
        (lambda df: df.assign(uid=["xyz", uid(1), uid(2), uid(3)]), "not 32 lowercase hex"),
        (lambda df: df.drop(columns=["uid"]), "no 'uid' column"),
    ],
)
def test_save_scores_rejects_bad_frames(tmp_path, mutate, message):
    path = tmp_path / "bad.parquet"
    with pytest.raises(ValueError, match=message) as err:
        save_scores(mutate(scores_frame()), path)
    assert str(path) in str(err.value)
    assert not path.exists()


def test_load_scores_rejects_bad_files_naming_them(tmp_path):
    path = tmp_path / "dup.parquet"
    scores_frame().assign(uid=[uid(0)] * 4).to_parquet(path, index=False)
    with pytest.raises(ValueError, match=f"{path}.*duplicate uids"):
        load_scores(path)
    with pytest.raises(FileNotFoundError, match="missing.parquet"):
        load_scores(tmp_path / "missing.parquet")


def test_real_shards_module_api():
    assert hasattr(curate.data.shards, "iter_pool_samples") and hasattr(curate.data.shards, "SkipReport")
