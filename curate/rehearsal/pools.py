"""The real pools' sources, rebuilt small: metadata in each source's published layout, images
drawn by the synthetic world and served over HTTP, with the failures a real download meets.

For each real pool of ``config/pools.yaml`` (`POOLS`) the metadata repo is written to
``R/hub/datasets/<metadata.hf_dataset>/`` as the source publishes it:

- DataComp (``mlfoundations/datacomp_{small,medium,large,xlarge}``): files named by 32 hex
  digits, ``<id>.parquet`` (columns ``uid, url, text, original_width, original_height,
  clip_b32_similarity_score, clip_l14_similarity_score, face_bboxes, sha256``) beside the
  row-aligned ``<id>.npz`` (``b32_img, b32_txt`` 512-d and ``l14_img, l14_txt`` 768-d, float16,
  unit length); the scores are the cosines of those vectors. ``face_bboxes`` holds relative
  ``[x0, y0, x1, y1]`` boxes (a few rows have one), ``sha256`` the image bytes' hash as it was when
  the metadata was made.
- CC3M (``google-research-datasets/conceptual_captions``): the card ``README.md``,
  ``unlabeled/train-0000{0,1}-of-00002.parquet`` and ``unlabeled/validation-00000-of-00001.parquet``
  with the columns ``image_url, caption``.
- LAION-400M (``laion/laion400m``, which ``laion100m`` samples): ``part-<5 digits>-<uuid>-c000.snappy.parquet``
  files with ``SAMPLE_ID, URL, TEXT, HEIGHT, WIDTH, LICENSE, NSFW, similarity`` (the B/32 cosine).

Sizes keep the pools' shapes: with ``rows`` = N (datacomp-small's rows), medium has 2N, large
3N, xlarge 4N, CC3M's training split 2N (plus a validation split of N/100) and LAION-400M 4N, of
which ``laion100m`` samples a quarter (100M of 400M).

Images (``curate.data.synthetic.pool.write_pool_chunk``: scenes, signs, text in images, tiny and
extreme-aspect images, near duplicates; captions from its grammar with its noise kinds) lie at
``R/img/<pool>/<block>/<row>.jpg``, their URLs ``http://127.0.0.1:<port>/img/<pool>/...``. A few
percent fail as downloads do (`FAULT_RATES`; a pool of 20 rows or more has each kind at least
once), listed in ``R/faults.json`` (``{"stall_s", "faults": {url: kind}, "counts"}``): ``404`` (no
file), ``timeout`` (the server answers after ``stall_s``), ``corrupt`` (bytes no decoder reads,
already so when the metadata was made: their ``sha256`` matches) and, where the metadata has
``sha256``, ``changed`` (a re-encoded image whose hash no longer matches). The generator's ground
truth per row (noise kind, scene, fault) is written to ``R/ground_truth/<pool>.parquet``, which
the server does not serve.

The precomputed CLIP features are drawn so that they mean something: each image and caption is
a unit vector mixing a part shared by everything (the baseline cosine), the vectors of the
concepts it shows or names (shape and colour, or a sign's text) and noise, so a caption that
describes its image scores about 0.3 and a mismatched one about 0.1, as with OpenAI's CLIPs.
"""

from __future__ import annotations

import hashlib
import io
import math
import shutil
import tempfile
import uuid
import zlib
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from curate.rehearsal.files import write_json, write_npz, write_text
from curate.rehearsal.hub import repo_dir
from curate.rehearsal.server import DEFAULT_STALL_S, FAULTS_FILE

#: datacomp-small's rows; the other pools are multiples of it (`PoolSpec.factor`)
DEFAULT_ROWS = 1000
SEED = 20240
#: rows drawn by one generator call (a unit of parallel work)
BLOCK_ROWS = 500
#: images: clean ones have a side of 160-400 px, so DataComp's basic filter (min side 200,
#: aspect at most 3) drops some of them besides the tiny and extreme-aspect ones
IMAGE_SIZE = 160
NOISE_RATES = {
    "mismatched_caption": 0.12,
    "wrong_attribute": 0.08,
    "text_in_image": 0.06,
    "medium_phrase": 0.05,
    "non_english": 0.06,
    "gibberish": 0.03,
    "tiny_image": 0.03,
    "extreme_aspect": 0.03,
    "near_duplicate": 0.03,
    "empty_caption": 0.005,
}
SIGN_RATE = 0.08
#: download failures (drawn per row, exclusive; `draw_faults`)
FAULT_RATES = {"404": 0.03, "timeout": 0.01, "corrupt": 0.01, "changed": 0.01}
FACE_RATE = 0.03
#: CLIP models whose features DataComp publishes: key prefix, width, (shared, concept, noise)
#: variances of the image and text vectors
FEATURES = {"b32": (512, (0.12, 0.20, 0.68)), "l14": (768, (0.10, 0.26, 0.64))}


@dataclass(frozen=True)
class PoolSpec:
    hf_dataset: str
    layout: str
    factor: int


POOLS = {
    "datacomp-small": PoolSpec("mlfoundations/datacomp_small", "datacomp", 1),
    "datacomp-medium": PoolSpec("mlfoundations/datacomp_medium", "datacomp", 2),
    "datacomp-large": PoolSpec("mlfoundations/datacomp_large", "datacomp", 3),
    "datacomp-xlarge": PoolSpec("mlfoundations/datacomp_xlarge", "datacomp", 4),
    "cc3m": PoolSpec("google-research-datasets/conceptual_captions", "cc3m", 2),
    "laion100m": PoolSpec("laion/laion400m", "laion400m", 4),
}
#: the share of LAION-400M's rows that laion100m samples
LAION_SAMPLE_SHARE = 0.25


def pool_rows(rows: int) -> dict[str, int]:
    """Training rows of each pool's source for ``rows`` = datacomp-small's rows."""
    return {pool: spec.factor * int(rows) for pool, spec in POOLS.items()}


def _blocks(n: int) -> list[int]:
    return [min(BLOCK_ROWS, n - start) for start in range(0, n, BLOCK_ROWS)]


def _render_block(seed: int, block: int, n: int) -> list[dict]:
    """``n`` generated rows: image bytes, caption, size and ground truth."""
    from curate.data.synthetic.pool import write_pool_chunk

    with tempfile.TemporaryDirectory(prefix="curate-rehearsal-") as tmp:
        tmp = Path(tmp)
        write_pool_chunk(
            tmp / "shards",
            tmp / "truth.parquet",
            block,
            [0],
            n,
            NOISE_RATES,
            seed,
            image_size=IMAGE_SIZE,
            sign_rate=SIGN_RATE,
        )
        truth = pq.read_table(tmp / "truth.parquet").to_pylist()
        members = _tar_members(tmp / "shards" / "00000000.tar")
    rows = []
    for gt in truth:
        gt["jpg"] = members[gt["key"]]["jpg"]
        rows.append(gt)
    return rows


def _tar_members(path: Path) -> dict[str, dict[str, bytes]]:
    import tarfile

    out: dict[str, dict[str, bytes]] = {}
    with tarfile.open(path) as tar:
        for member in tar:
            if member.isfile():
                key, _, ext = member.name.partition(".")
                out.setdefault(key, {})[ext] = tar.extractfile(member).read()
    return out


# --------------------------------------------------------------------------------------------
# Features
# --------------------------------------------------------------------------------------------


def _concept(model: str, key: tuple, dim: int) -> np.ndarray:
    rng = np.random.default_rng([SEED, zlib.crc32(model.encode()), zlib.crc32(repr(key).encode())])
    v = rng.standard_normal(dim)
    return v / np.linalg.norm(v)


def _image_concepts(row: dict) -> tuple[list[tuple], float]:
    """The concepts an image shows and how strongly (a tiny image shows them less clearly)."""
    if row["is_sign"]:
        return [("sign",), ("text", row["image_text"])], 1.0
    keys = [("shape", row["shape"]), ("colour", row["colour"])]
    if row["noise_type"] == "text_in_image":  # CLIPs read the text they see
        keys += [("shape", row["caption_shape"]), ("colour", row["caption_colour"])]
    return keys, 0.6 if row["noise_type"] == "tiny_image" else 1.0


def _text_concepts(row: dict) -> tuple[list[tuple], float]:
    """The concepts a caption names and how strongly (English CLIPs half-read other languages)."""
    if row["is_sign"]:
        return [("sign",), ("text", row["image_text"])], 1.0
    if row["caption_shape"] is None:  # gibberish, empty
        return [], 0.0
    keys = [("shape", row["caption_shape"]), ("colour", row["caption_colour"])]
    return keys, 0.4 if row["noise_type"] == "non_english" else 1.0


def features(rows: list[dict], model: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Unit float16 image and text features [N, width] of one CLIP model for generated rows."""
    dim, (shared, concept, noise) = FEATURES[model]
    rng = np.random.default_rng([SEED, seed, zlib.crc32(model.encode())])
    common = _concept(model, ("common",), dim)
    cache: dict[tuple, np.ndarray] = {}

    def vector(keys, strength):
        out = math.sqrt(shared) * common
        if keys:
            mix = sum(cache.setdefault(k, _concept(model, k, dim)) for k in keys) / math.sqrt(len(keys))
            out = out + strength * math.sqrt(concept) * mix
        g = rng.standard_normal(dim)
        out = out + math.sqrt(noise) * g / np.linalg.norm(g)
        return out / np.linalg.norm(out)

    images, texts = [], []
    for row in rows:
        images.append(vector(*_image_concepts(row)))
        texts.append(vector(*_text_concepts(row)))
    return np.stack(images).astype(np.float16), np.stack(texts).astype(np.float16)


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosines of two float16 feature arrays, as float32."""
    a, b = a.astype(np.float64), b.astype(np.float64)
    return ((a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))).astype(np.float32)


# --------------------------------------------------------------------------------------------
# Layouts
# --------------------------------------------------------------------------------------------


def _hex_name(*parts) -> str:
    return hashlib.md5(":".join(str(p) for p in parts).encode()).hexdigest()


def _n_files(n: int, per_file: int = 1000) -> int:
    return max(2, math.ceil(n / per_file))


def _slices(n: int, k: int) -> list[slice]:
    per = math.ceil(n / k)
    return [slice(i * per, min(n, (i + 1) * per)) for i in range(k) if i * per < n]


DATACOMP_SCHEMA = pa.schema(
    [
        ("uid", pa.string()),
        ("url", pa.string()),
        ("text", pa.string()),
        ("original_width", pa.int64()),
        ("original_height", pa.int64()),
        ("clip_b32_similarity_score", pa.float32()),
        ("clip_l14_similarity_score", pa.float32()),
        ("face_bboxes", pa.list_(pa.list_(pa.float64()))),
        ("sha256", pa.string()),
    ]
)
CC3M_SCHEMA = pa.schema([("image_url", pa.string()), ("caption", pa.string())])
LAION_SCHEMA = pa.schema(
    [
        ("SAMPLE_ID", pa.int64()),
        ("URL", pa.string()),
        ("TEXT", pa.string()),
        ("HEIGHT", pa.int64()),
        ("WIDTH", pa.int64()),
        ("LICENSE", pa.string()),
        ("NSFW", pa.string()),
        ("similarity", pa.float64()),
    ]
)
CC3M_CARD = """---
pretty_name: Conceptual Captions
configs:
- config_name: unlabeled
  data_files:
  - split: train
    path: unlabeled/train-*
  - split: validation
    path: unlabeled/validation-*
  default: true
---
# Conceptual Captions (rehearsal copy)

Image URLs and captions in the layout of the Hub's `google-research-datasets/conceptual_captions`
(`unlabeled` configuration); the images are generated (`curate.rehearsal.pools`).
"""


def _write_parquet(path: Path, table: pa.Table) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path, compression="snappy")


def _write_datacomp(folder: Path, spec: PoolSpec, rows: list[dict], meta: dict) -> list[str]:
    feats = {m: features(rows, m, meta["seed"]) for m in FEATURES}
    files = []
    for i, part in enumerate(_slices(len(rows), _n_files(len(rows)))):
        name = _hex_name(spec.hf_dataset, i)
        chunk = rows[part]
        table = pa.table(
            {
                "uid": [r["uid"] for r in chunk],
                "url": [r["url"] for r in chunk],
                "text": [r["caption"] for r in chunk],
                "original_width": [r["original_width"] for r in chunk],
                "original_height": [r["original_height"] for r in chunk],
                "clip_b32_similarity_score": cosines(*(f[part] for f in feats["b32"])),
                "clip_l14_similarity_score": cosines(*(f[part] for f in feats["l14"])),
                "face_bboxes": [r["face_bboxes"] for r in chunk],
                "sha256": [r["sha256"] for r in chunk],
            },
            schema=DATACOMP_SCHEMA,
        )
        _write_parquet(folder / f"{name}.parquet", table)
        arrays = {f"{m}_{side}": feats[m][j][part] for m in FEATURES for j, side in enumerate(("img", "txt"))}
        write_npz(folder / f"{name}.npz", arrays)
        files += [f"{name}.parquet", f"{name}.npz"]
    return files


def _write_cc3m(folder: Path, spec: PoolSpec, rows: list[dict], meta: dict) -> list[str]:
    train, validation = rows[: meta["train_rows"]], rows[meta["train_rows"] :]
    files = []
    splits = [("train", part) for part in (train[s] for s in _slices(len(train), 2))] + [("validation", validation)]
    counts = {"train": 2, "validation": 1}
    seen = {"train": 0, "validation": 0}
    for split, chunk in splits:
        name = f"unlabeled/{split}-{seen[split]:05d}-of-{counts[split]:05d}.parquet"
        seen[split] += 1
        table = pa.table(
            {"image_url": [r["url"] for r in chunk], "caption": [r["caption"] for r in chunk]}, schema=CC3M_SCHEMA
        )
        _write_parquet(folder / name, table)
        files.append(name)
    write_text(folder / "README.md", CC3M_CARD)
    return files + ["README.md"]


def _write_laion(folder: Path, spec: PoolSpec, rows: list[dict], meta: dict) -> list[str]:
    b32 = features(rows, "b32", meta["seed"])
    similarity = cosines(*b32).astype(np.float64)
    tag = uuid.UUID(_hex_name(spec.hf_dataset, "part"))
    files = []
    for i, part in enumerate(_slices(len(rows), _n_files(len(rows)))):
        chunk = rows[part]
        name = f"part-{i:05d}-{tag}-c000.snappy.parquet"
        table = pa.table(
            {
                "SAMPLE_ID": [r["row"] * 10 + 7 for r in chunk],  # LAION's ids are sparse, not row numbers
                "URL": [r["url"] for r in chunk],
                "TEXT": [r["caption"] for r in chunk],
                "HEIGHT": [r["original_height"] for r in chunk],
                "WIDTH": [r["original_width"] for r in chunk],
                "LICENSE": ["?"] * len(chunk),
                "NSFW": ["UNLIKELY"] * len(chunk),
                "similarity": similarity[part],
            },
            schema=LAION_SCHEMA,
        )
        _write_parquet(folder / name, table)
        files.append(name)
    return files


LAYOUTS = {"datacomp": _write_datacomp, "cc3m": _write_cc3m, "laion400m": _write_laion}


# --------------------------------------------------------------------------------------------
# Building
# --------------------------------------------------------------------------------------------


def draw_faults(n: int, kinds: list[str], rng: np.random.Generator) -> list[str | None]:
    """Each row's fault (None: none) drawn with `FAULT_RATES`; a pool of at least 20 rows gets
    every kind at least once, so every download of it meets each failure."""
    probs = np.array([FAULT_RATES[k] for k in kinds] + [1 - sum(FAULT_RATES[k] for k in kinds)])
    drawn = [None if j == len(kinds) else kinds[j] for j in rng.choice(len(probs), size=n, p=probs)]
    if n >= 20:
        for kind in kinds:
            if kind not in drawn:
                free = [i for i, f in enumerate(drawn) if f is None]
                drawn[free[int(rng.integers(len(free)))]] = kind
    return drawn


def _assign(pool: str, spec: PoolSpec, rows: list[dict], port: int, meta: dict) -> None:
    """Give each generated row its uid, URL, served bytes, metadata hash and fault, in place."""
    from PIL import Image

    from curate.data.synthetic.render import corrupt_bytes, encode_jpeg, perturb

    rng = np.random.default_rng([SEED, meta["seed"], 1])
    # only DataComp publishes hashes, so only there can an image have changed since
    kinds = [k for k in FAULT_RATES if k != "changed" or spec.layout == "datacomp"]
    train = meta["train_rows"]
    faults = draw_faults(train, kinds, rng) + draw_faults(len(rows) - train, kinds, rng)
    for i, (row, fault) in enumerate(zip(rows, faults)):
        row["row"] = i
        row["uid"] = _hex_name(spec.hf_dataset, "uid", i)
        row["url"] = f"http://127.0.0.1:{port}/img/{pool}/{i // BLOCK_ROWS:03d}/{i:06d}.jpg"
        if fault == "corrupt":  # broken before the metadata was made: its hash is of these bytes
            row["jpg"] = corrupt_bytes(row["jpg"], rng)
        row["sha256"] = hashlib.sha256(row["jpg"]).hexdigest()
        served = row["jpg"]
        if fault == "changed":
            with Image.open(io.BytesIO(row["jpg"])) as im:
                served = encode_jpeg(perturb(im.convert("RGB"), rng), 85)
        row["fault"] = fault
        row["served"] = None if fault == "404" else served
        boxes = []
        if rng.random() < FACE_RATE:
            x0, y0 = rng.uniform(0.05, 0.6, size=2)
            w, h = rng.uniform(0.1, 0.35, size=2)
            boxes = [[float(x0), float(y0), float(min(x0 + w, 1.0)), float(min(y0 + h, 1.0))]]
        row["face_bboxes"] = boxes


GROUND_TRUTH_COLUMNS = (
    "row uid url fault noise_type is_clean is_sign shape colour count size position background caption "
    "clean_caption caption_shape caption_colour corrupted_attribute image_text language original_width "
    "original_height"
).split()


def outputs(root) -> list[Path]:
    """Everything this part writes under a root (removed before it is rebuilt)."""
    root = Path(root)
    out = [root / FAULTS_FILE, root / "img", root / "ground_truth"]
    return out + [repo_dir(root, "dataset", spec.hf_dataset) for spec in POOLS.values()]


def build(root, port: int, rows: int = DEFAULT_ROWS, jobs: int = 1, pools=None) -> dict:
    """Write every pool's metadata repo, images, ground truth and ``faults.json`` under `root`
    for a server on `port`; returns a summary per pool (rows, files, faults, and the
    ``n_shards`` a scale needs at `samples_per_shard`). `pools`: only these (default: `POOLS`);
    each is drawn from its own seed, so a pool's bytes do not depend on which others are built."""
    root = Path(root)
    if rows < 10:
        raise ValueError(f"rows must be at least 10, got {rows}")
    unknown = sorted(set(pools or ()) - set(POOLS))
    if unknown:
        raise ValueError(f"unknown pools {unknown}; the local internet has {sorted(POOLS)}")
    for path in outputs(root):
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
    plan = {}
    chosen = {pool: spec for pool, spec in POOLS.items() if pools is None or pool in pools}
    for i, (pool, spec) in enumerate(POOLS.items()):
        if pool not in chosen:
            continue
        train = spec.factor * int(rows)
        extra = max(10, train // 100) if spec.layout == "cc3m" else 0
        plan[pool] = {"seed": SEED + i, "train_rows": train, "total": train + extra}
    with ProcessPoolExecutor(max_workers=max(1, int(jobs))) as workers:
        futures = {
            pool: [workers.submit(_render_block, p["seed"], b, n) for b, n in enumerate(_blocks(p["total"]))]
            for pool, p in plan.items()
        }
        faults: dict[str, str] = {}
        summary = {}
        for pool, spec in chosen.items():
            generated = [row for f in futures[pool] for row in f.result()]
            summary[pool] = _build_pool(root, pool, spec, generated, port, plan[pool], faults)
    counts = {pool: s["faults"] for pool, s in summary.items()}
    write_json(root / FAULTS_FILE, {"stall_s": DEFAULT_STALL_S, "faults": faults, "counts": counts})
    return summary


def _build_pool(root: Path, pool: str, spec: PoolSpec, rows: list[dict], port: int, meta: dict, faults: dict) -> dict:
    _assign(pool, spec, rows, port, meta)
    for row in rows:
        if row["served"] is not None:
            path = root / "img" / row["url"].split("/img/", 1)[1]
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(row["served"])
        if row["fault"] is not None:
            faults[row["url"]] = row["fault"]
    folder = repo_dir(root, "dataset", spec.hf_dataset)
    files = LAYOUTS[spec.layout](folder, spec, rows, meta)
    truth = pa.Table.from_pylist([{c: r.get(c) for c in GROUND_TRUTH_COLUMNS} for r in rows])
    _write_parquet(root / "ground_truth" / f"{pool}.parquet", truth)
    fault_counts = {k: sum(r["fault"] == k for r in rows[: meta["train_rows"]]) for k in FAULT_RATES}
    return {
        "hf_dataset": spec.hf_dataset,
        "layout": spec.layout,
        "rows": meta["train_rows"],
        "files": files,
        "faults": fault_counts,
        "noise": dict(sorted(_count(r["noise_type"] for r in rows[: meta["train_rows"]]).items())),
    }


def _count(values) -> dict:
    out: dict = {}
    for v in values:
        out[v] = out.get(v, 0) + 1
    return out


def scale_sizes(summary: dict, samples_per_shard: int) -> dict:
    """What a scale's pool entries need for these sources: ``n_shards`` at `samples_per_shard`
    (laion100m: of its sample, `LAION_SAMPLE_SHARE` of LAION-400M's rows, with that ``sample.n``)."""
    out = {}
    for pool, s in summary.items():
        n = s["rows"]
        entry = {"rows": n}
        if POOLS[pool].layout == "laion400m":
            n = int(n * LAION_SAMPLE_SHARE)
            entry.update(rows=n, sample_n=n, source_rows=s["rows"])
        entry.update(n_shards=math.ceil(n / samples_per_shard), samples_per_shard=samples_per_shard)
        out[pool] = entry
    return out
