"""The synthetic world: pool chunks, ground truth, eval tasks, curated and downstream sets."""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import re
import tarfile
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from PIL import Image

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

from curate.data.shards import SkipReport, compute_key, iter_pool_samples, key_digits, shard_paths  # noqa: E402
from curate.data.synthetic import captions as cap  # noqa: E402
from curate.data.synthetic.curated import write_curated_set, write_labelled_set  # noqa: E402
from curate.data.synthetic.pool import (  # noqa: E402
    BAD_INPUT_TYPES,
    NOISE_TYPES,
    validate_noise_rates,
    write_pool_chunk,
)
from curate.data.synthetic.render import render_text_in_image  # noqa: E402
from curate.data.synthetic.tasks import TASKS, task_classnames, write_task  # noqa: E402
from curate.data.synthetic.world import COLOURS, SHAPES, Scene, random_scene, rng_for  # noqa: E402

SPS = 250
SHARDS = [6, 7]
N = SPS * len(SHARDS)
RATES = {t: 0.05 for t in NOISE_TYPES}  # 60% noise, 40% clean
SIGN_RATE = 0.2
UID_RE = re.compile(r"^[0-9a-f]{32}$")


def _sha(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _chunk(root: Path, name: str, seed=0, chunk=3, shard_ids=SHARDS, sps=SPS):
    summary = write_pool_chunk(
        out_dir=root / name,
        ground_truth_path=root / f"{name}_gt.parquet",
        chunk_index=chunk,
        shard_ids=shard_ids,
        samples_per_shard=sps,
        noise_rates=RATES,
        seed=seed,
        image_size=64,
        sign_rate=SIGN_RATE,
    )
    return summary, pd.read_parquet(root / f"{name}_gt.parquet")


@pytest.fixture(scope="module")
def pool(tmp_path_factory):
    root = tmp_path_factory.mktemp("pool")
    summary, gt = _chunk(root, "a")
    return root, summary, gt


def _tar_members(path: Path) -> dict[str, dict[str, bytes]]:
    out: dict[str, dict[str, bytes]] = {}
    with tarfile.open(path) as tar:
        for m in tar:
            key, ext = m.name.split(".", 1)
            out.setdefault(key, {})[ext] = tar.extractfile(m).read()
    return out


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z\-]+", text.lower()))


# -------------------------------------------------------------------------------------------
# determinism and uids
# -------------------------------------------------------------------------------------------


def test_same_seed_same_bytes_other_seed_differs(pool, tmp_path):
    root, summary, gt = pool
    summary2, gt2 = _chunk(tmp_path, "again")
    assert summary2 == summary
    for name in sorted(p.name for p in (root / "a").iterdir()):
        assert _sha(root / "a" / name) == _sha(tmp_path / "again" / name), name
    assert _sha(root / "a_gt.parquet") == _sha(tmp_path / "again_gt.parquet")

    _, gt_other = _chunk(tmp_path, "seed1", seed=1, shard_ids=[6], sps=50)
    _, gt_chunk = _chunk(tmp_path, "chunk4", chunk=4, shard_ids=[8], sps=50)
    assert _sha(tmp_path / "seed1" / "00000006.tar") != _sha(root / "a" / "00000006.tar")
    assert not set(gt_other.uid) & set(gt.uid)
    assert not set(gt_chunk.uid) & set(gt.uid)


def test_uids_format_unique_and_in_json(pool):
    root, _, gt = pool
    assert len(gt) == N and gt.uid.is_unique
    assert all(UID_RE.match(u) for u in gt.uid)
    members = {}
    for p in shard_paths(root / "a"):
        members.update(_tar_members(p))
    assert sorted(members) == sorted(gt.key)
    for row in gt.itertuples():
        meta = json.loads(members[row.key]["json"])
        if row.noise_type == "missing_uid":
            assert "uid" not in meta
        else:
            assert meta["uid"] == row.uid
        assert members[row.key]["txt"].decode() == row.caption == meta["caption"]


def test_validate_noise_rates():
    assert validate_noise_rates({"gibberish": 0.1})["gibberish"] == 0.1
    with pytest.raises(ValueError, match="unknown noise"):
        validate_noise_rates({"sunspots": 0.1})
    with pytest.raises(ValueError, match="sum"):
        validate_noise_rates({"gibberish": 0.6, "non_english": 0.6})


# -------------------------------------------------------------------------------------------
# the ground truth and the noise
# -------------------------------------------------------------------------------------------


def test_noise_rates_honoured(pool):
    _, summary, gt = pool
    counts = gt.noise_type.value_counts().to_dict()
    assert sum(summary["noise_counts"].values()) == N
    for t in NOISE_TYPES:
        p = RATES[t]
        tol = 4 * math.sqrt(N * p * (1 - p)) + 1
        assert abs(counts.get(t, 0) - N * p) <= tol, (t, counts.get(t, 0))
        assert summary["noise_counts"][t] == counts.get(t, 0)
    n_clean = counts["clean"]
    assert abs(n_clean - N * 0.4) <= 4 * math.sqrt(N * 0.24) + 1
    assert (gt.is_clean == (gt.noise_type == "clean")).all()
    signs = gt[gt.is_sign]
    assert (signs.noise_type == "clean").all()
    assert abs(len(signs) - n_clean * SIGN_RATE) <= 4 * math.sqrt(n_clean * 0.16) + 1
    assert signs["shape"].isna().all() and signs["image_text"].notna().all()
    for row in signs.itertuples():
        assert row.image_text in row.caption or cap.DIGIT_WORDS.get(row.image_text, "@") in row.caption


def test_clean_captions_name_their_scene(pool):
    _, _, gt = pool
    clean = gt[(gt.noise_type == "clean") & ~gt.is_sign]
    for row in clean.itertuples():
        text = row.caption
        assert any(w in text for w in cap.COLOUR_SYNONYMS[row.colour]), text
        assert any(s in text for pair in cap.SHAPE_SYNONYMS[row.shape] for s in pair), text
        assert not _words(text) & {"photo", "image", "picture", "stock"}, text
        assert row.clean_caption == cap.canonical_caption(
            Scene(row.shape, row.colour, row.count, row.size, row.position, row.background)
        )


def test_mismatched_caption_belongs_to_another_sample(pool):
    _, _, gt = pool
    by_uid = gt.set_index("uid")
    mism = gt[gt.noise_type == "mismatched_caption"]
    assert len(mism) > 5
    for row in mism.itertuples():
        src = by_uid.loc[row.source_uid]
        assert row.source_uid != row.uid
        assert row.caption == src.caption
        assert src.noise_type == "clean" and not src.is_sign
        assert (src["shape"], src["colour"]) != (row.shape, row.colour)
        assert (row.caption_shape, row.caption_colour) == (src["shape"], src["colour"])


def test_wrong_attribute_is_wrong(pool):
    _, _, gt = pool
    wrong = gt[gt.noise_type == "wrong_attribute"]
    assert len(wrong) > 5
    for row in wrong.itertuples():
        attr = row.corrupted_attribute
        assert attr in ("colour", "shape", "count", "size", "position", "background")
        if attr == "colour":
            assert row.caption_colour != row.colour
            assert any(w in _words(row.caption) for w in cap.COLOUR_SYNONYMS[row.caption_colour])
            assert not _words(row.caption) & set(cap.COLOUR_SYNONYMS[row.colour])
        elif attr == "shape":
            assert row.caption_shape != row.shape
            assert not any(s in row.caption for pair in cap.SHAPE_SYNONYMS[row.shape] for s in pair)
        else:
            assert (row.caption_shape, row.caption_colour) == (row.shape, row.colour)


def test_text_in_image_shows_an_unrelated_scene(pool):
    _, _, gt = pool
    tii = gt[gt.noise_type == "text_in_image"]
    assert len(tii) > 5
    for row in tii.itertuples():
        assert row.shape != row.caption_shape and row.colour != row.caption_colour
        assert row.image_text.split()[0] == row.caption_colour
        assert any(w in row.caption for w in cap.COLOUR_SYNONYMS[row.caption_colour])
    # pixels: the drawn objects have the drawn colour, and not the colour the text claims
    for i in range(20):
        rng = rng_for(5, 99, i)
        claimed = random_scene(rng, size="large")
        img, drawn, lines = render_text_in_image(claimed, 64, 64, rng)
        assert (drawn.shape, drawn.colour) != (claimed.shape, claimed.colour)
        assert drawn.shape != claimed.shape and drawn.colour != claimed.colour
        assert lines[0] == claimed.colour
        arr = np.asarray(img, dtype=np.int32)
        half = arr[:32] if drawn.position == "top" else arr[32:]  # the scene's half
        dist = lambda c: np.abs(half - np.array(COLOURS[c])).sum(-1)  # noqa: E731
        assert (dist(drawn.colour) < 60).sum() >= 10


def test_stored_sizes_recorded(pool):
    root, _, gt = pool
    members = {}
    for p in shard_paths(root / "a"):
        members.update(_tar_members(p))
    for row in gt.itertuples():
        if row.noise_type == "corrupt_image":
            continue
        with Image.open(io.BytesIO(members[row.key]["jpg"])) as im:
            assert im.size == (row.original_width, row.original_height)
    tiny = gt[gt.noise_type == "tiny_image"]
    assert len(tiny) and (np.maximum(tiny.original_width, tiny.original_height) <= 24).all()
    ext = gt[gt.noise_type == "extreme_aspect"]
    aspect = np.maximum(ext.original_width, ext.original_height) / np.minimum(ext.original_width, ext.original_height)
    assert len(ext) and (aspect > 3).all()
    normal = gt[gt.noise_type == "clean"]
    assert (normal.original_width >= 64).all() and (normal.original_width <= 160).all()


def test_near_duplicates_are_close_to_their_source(pool):
    root, _, gt = pool
    members = {}
    for p in shard_paths(root / "a"):
        members.update(_tar_members(p))
    by_uid = gt.set_index("uid")
    dups = gt[gt.noise_type == "near_duplicate"]
    assert len(dups) > 5
    for row in dups.itertuples():
        src = by_uid.loc[row.source_uid]
        a, b = (Image.open(io.BytesIO(members[k]["jpg"])).convert("RGB") for k in (row.key, src.key))
        assert a.size == b.size
        assert members[row.key]["jpg"] != members[src.key]["jpg"]
        # the same picture at low resolution (a pixel shift moves texture, not the picture),
        # up to a brightness change: strongly correlated, and close after scaling
        thumb = lambda im: np.asarray(im.resize((8, 8), Image.Resampling.BOX), dtype=np.float32).ravel()  # noqa: E731
        ta, tb = thumb(a), thumb(b)
        assert np.corrcoef(ta, tb)[0, 1] > 0.8
        assert np.abs(ta * (tb.mean() / ta.mean()) - tb).mean() < 10
        assert (row.shape, row.colour, row.count) == (src["shape"], src["colour"], src["count"])


def test_caption_noise_kinds(pool):
    _, _, gt = pool
    for row in gt[gt.noise_type == "medium_phrase"].itertuples():
        assert any(p in row.caption for p in cap.MEDIUM_PHRASES), row.caption
    for row in gt[gt.noise_type == "non_english"].itertuples():
        assert row.language in ("de", "es", "fr")
        assert not _words(row.caption) & {"circle", "circles", "square", "star", "red", "green", "blue"}
    for row in gt[gt.noise_type == "gibberish"].itertuples():
        assert re.fullmatch(r"[a-z]+( [a-z]+){2,}", row.caption)
    assert (gt[gt.noise_type == "empty_caption"].caption.str.strip() == "").all()


# -------------------------------------------------------------------------------------------
# the shards agree with each other, and the reader skips exactly the bad input
# -------------------------------------------------------------------------------------------


def test_parquet_stats_tar_agree(pool):
    root, _, gt = pool
    assert [p.name for p in shard_paths(root / "a")] == [f"{s:08d}.tar" for s in SHARDS]
    for shard_id in SHARDS:
        stats = json.loads((root / "a" / f"{shard_id:08d}_stats.json").read_text())
        table = pq.read_table(root / "a" / f"{shard_id:08d}.parquet").to_pandas()
        members = _tar_members(root / "a" / f"{shard_id:08d}.tar")
        rows = gt[gt.shard_id == shard_id]
        assert stats["count"] == stats["successes"] == len(table) == len(members) == SPS
        assert list(table.key) == list(members) == list(rows.key)
        assert list(table.key) == [compute_key(shard_id, i, SPS) for i in range(SPS)]
        assert all(len(k) == key_digits(SPS) and k.startswith(f"{shard_id:08d}") for k in table.key)
        expected_uids = [None if t == "missing_uid" else u for u, t in zip(rows.uid, rows.noise_type)]
        assert list(table.uid.replace({np.nan: None})) == expected_uids
        assert list(table.original_width) == list(rows.original_width)
        assert list(table.sha256) == [hashlib.sha256(m["jpg"]).hexdigest() for m in members.values()]
        assert (table.status == "success").all()


def test_reader_skips_bad_input_of_a_chunk(pool):
    root, _, gt = pool
    report = SkipReport()
    kept = [s.uid for s in iter_pool_samples(shard_paths(root / "a"), report)]
    expected = gt[~gt.noise_type.isin(BAD_INPUT_TYPES)].uid.tolist()
    assert kept == expected
    for reason in BAD_INPUT_TYPES:
        assert report.count(reason) == (gt.noise_type == reason).sum() > 0
    assert report.count("duplicate_uid") == report.count("missing_image") == 0
    assert report.total_seen == N and report.total_kept == len(expected)


# -------------------------------------------------------------------------------------------
# captions
# -------------------------------------------------------------------------------------------


def test_paraphrase_variety():
    scene = Scene("circle", "red", 2, "small", "left", "stripes")
    rng = rng_for(0, 77)
    texts = [cap.paraphrase(scene, rng) for _ in range(200)]
    assert len(set(texts)) >= 60
    assert cap.canonical_caption(scene) == "two small red circles on the left on a striped background"
    for t in texts:
        assert any(c in t for c in cap.COLOUR_SYNONYMS["red"])
        assert any(s in t for s in ("circles", "discs", "round shapes"))
    assert any("pair of" in t for t in texts) and any("two of them" in t for t in texts)
    single = Scene("square", "orange", 1, "large", "top", "plain")
    texts = [cap.paraphrase(single, rng) for _ in range(100)]
    assert not any(re.search(r"\ba (orange|amber)\b", t) for t in texts)
    assert not any(re.search(r"\b(squares|boxes|blocks)\b", t) for t in texts)
    assert len(set(cap.paraphrases(scene, rng, 5))) == 5


# -------------------------------------------------------------------------------------------
# evaluation tasks, curated sets, downstream set
# -------------------------------------------------------------------------------------------


def test_tasks_load_with_clip_benchmark(tmp_path, pool):
    import torchvision.transforms as T
    from clip_benchmark.datasets.builder import build_dataset

    groups = {t: v["group"] for t, v in TASKS.items()}
    assert groups == {
        "objects": "Objects",
        "shape": "Attributes",
        "colour": "Attributes",
        "size": "Attributes",
        "background": "Attributes",
        "count": "Composition",
        "position": "Composition",
        "digits": "OCR",
        "retrieval": "Retrieval",
        "typographic": "Probe",  # follows the written colour word: never part of the Average
    }
    _, _, gt = pool
    transform = T.Compose([T.Resize((32, 32)), T.ToTensor()])
    n = 30
    for task, spec in TASKS.items():
        out = tmp_path / task
        summary = write_task(out, task, n, seed=0)
        assert summary["n_samples"] == n and (out / "test" / "nshards.txt").read_text().strip() == "1"
        assert (out / "dataset_type.txt").read_text().strip() == spec["type"]
        kind = "zeroshot_retrieval" if spec["type"] == "retrieval" else "zeroshot_classification"
        ds = build_dataset(dataset_name=f"wds/{task}", root=str(out), transform=transform, split="test", task=kind)
        items = list(ds)
        assert len(items) == n and tuple(items[0][0].shape) == (3, 32, 32)
        if spec["type"] == "retrieval":
            assert all(len(texts) == 5 and len(set(texts)) == 5 for _, texts in items)
        else:
            classes = task_classnames(task)
            assert ds.classes == classes and len(ds.templates) >= 4
            assert all("{c}" in t for t in ds.templates)
            labels = [label for _, label in items]
            assert all(isinstance(lb, int) and 0 <= lb < len(classes) for lb in labels)
            counts = np.bincount(labels, minlength=len(classes))
            assert counts.max() - counts.min() <= 1  # balanced
    assert len(task_classnames("objects")) == len(SHAPES) * len(COLOURS)
    # same seed, same bytes; another seed, other images
    write_task(tmp_path / "again", "shape", n, seed=0)
    write_task(tmp_path / "other", "shape", n, seed=1)
    assert _sha(tmp_path / "again/test/0.tar") == _sha(tmp_path / "shape/test/0.tar")
    assert _sha(tmp_path / "other/test/0.tar") != _sha(tmp_path / "shape/test/0.tar")


def test_curated_set(tmp_path):
    import webdataset as wds

    s = write_curated_set(tmp_path / "a", 120, seed=4, text_in_image_rate=0.5, samples_per_shard=50)
    assert s["n_samples"] == 120 and [Path(p).name for p in s["shards"]] == [
        "curated-000000.tar",
        "curated-000001.tar",
        "curated-000002.tar",
    ]
    assert 35 <= s["n_text_in_image"] <= 85
    got = list(wds.WebDataset(s["shards"], shardshuffle=False).decode("pil"))
    assert len(got) == 120 and all(g["txt"].strip() for g in got)
    assert got[0]["jpg"].size == (64, 64)
    s2 = write_curated_set(tmp_path / "b", 120, seed=4, text_in_image_rate=0.5, samples_per_shard=50)
    assert [_sha(p) for p in s["shards"]] == [_sha(p) for p in s2["shards"]]
    clean = write_curated_set(tmp_path / "c", 60, seed=4, sign_rate=0.0)
    assert clean["n_text_in_image"] == clean["n_signs"] == 0 and len(clean["shards"]) == 1


def test_labelled_set(tmp_path):
    s = write_labelled_set(tmp_path / "d.npz", "objects", n_per_class=2, seed=7, image_size=32)
    with np.load(tmp_path / "d.npz") as z:
        images, labels, classnames = z["images"], z["labels"], list(z["classnames"])
    k = len(SHAPES) * len(COLOURS)
    assert images.shape == (2 * k, 32, 32, 3) and images.dtype == np.uint8
    assert labels.shape == (2 * k,) and np.issubdtype(labels.dtype, np.integer)
    assert classnames == task_classnames("objects") and len(classnames) == k
    assert (np.bincount(labels, minlength=k) == 2).all()
    assert s["n_samples"] == 2 * k
    write_labelled_set(tmp_path / "e.npz", "objects", n_per_class=2, seed=7, image_size=32)
    assert _sha(tmp_path / "d.npz") == _sha(tmp_path / "e.npz")
    # another task's set: its classes, its own seed stream
    shape = write_labelled_set(tmp_path / "s.npz", "shape", n_per_class=3, seed=7, image_size=32)
    with np.load(tmp_path / "s.npz") as z:
        assert list(z["classnames"]) == task_classnames("shape") and shape["task"] == "shape"
        assert (np.bincount(z["labels"], minlength=len(SHAPES)) == 3).all()
