"""The synthetic pool: one chunk of img2dataset-style shards plus its ground truth.

Every sample is clean or carries exactly one kind of noise, drawn per sample with the
probabilities in ``noise_rates`` (the rest is clean); among clean samples a fraction
``sign_rate`` are signs (a rendered digit or word with a caption that says it), from which OCR
can be learned. The ground truth goes to its own parquet file, apart from the pool, so no filter
can read it.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

from ..shards import ShardWriter, record_shard, shard_name
from . import captions as cap
from .render import (
    corrupt_bytes,
    encode_jpeg,
    perturb,
    render_scene,
    render_sign,
    render_text_in_image,
)
from .world import (
    COLOUR_NAMES,
    DIGITS,
    SHAPES,
    SIGN_WORDS,
    STREAM_POOL,
    Scene,
    other_value,
    random_scene,
    rng_for,
)

NOISE_TYPES: tuple[str, ...] = (
    "mismatched_caption",
    "wrong_attribute",
    "text_in_image",
    "medium_phrase",
    "non_english",
    "gibberish",
    "tiny_image",
    "extreme_aspect",
    "near_duplicate",
    "corrupt_image",
    "empty_caption",
    "missing_uid",
)
#: noise types that are bad input: the pool reader skips (and counts) them
BAD_INPUT_TYPES: tuple[str, ...] = ("corrupt_image", "empty_caption", "missing_uid")
#: which attribute a wrong_attribute caption gets wrong, and how often
WRONG_ATTRIBUTE_WEIGHTS: dict[str, float] = {
    "colour": 0.35,
    "shape": 0.35,
    "count": 0.1,
    "size": 0.1,
    "position": 0.05,
    "background": 0.05,
}
JPEG_QUALITY = 90
#: a fixed stats-file time: reruns give byte-identical pools
_FIXED_TIME = 0.0

GROUND_TRUTH_SCHEMA = pa.schema(
    [
        ("uid", pa.string()),
        ("shard_id", pa.int64()),
        ("key", pa.string()),
        ("noise_type", pa.string()),
        ("is_clean", pa.bool_()),
        ("is_sign", pa.bool_()),
        ("shape", pa.string()),
        ("colour", pa.string()),
        ("count", pa.int64()),
        ("size", pa.string()),
        ("position", pa.string()),
        ("background", pa.string()),
        ("caption", pa.string()),
        ("clean_caption", pa.string()),
        ("caption_shape", pa.string()),
        ("caption_colour", pa.string()),
        ("corrupted_attribute", pa.string()),
        ("source_uid", pa.string()),
        ("image_text", pa.string()),
        ("language", pa.string()),
        ("original_width", pa.int64()),
        ("original_height", pa.int64()),
    ]
)


def validate_noise_rates(noise_rates: dict[str, float] | None) -> dict[str, float]:
    """Check the names and values of a noise-rate mapping; return it with every type present."""
    noise_rates = dict(noise_rates or {})
    unknown = sorted(set(noise_rates) - set(NOISE_TYPES))
    if unknown:
        raise ValueError(f"unknown noise types {unknown}; known: {list(NOISE_TYPES)}")
    out = {}
    for name in NOISE_TYPES:
        rate = float(noise_rates.get(name, 0.0))
        if not 0.0 <= rate <= 1.0 or rate != rate:
            raise ValueError(f"noise rate of {name} must be in [0, 1], got {rate}")
        out[name] = rate
    total = sum(out.values())
    if total > 1.0 + 1e-9:
        raise ValueError(f"noise rates sum to {total:.4f} > 1")
    return out


def clean_sign_caption(text: str) -> str:
    return f"a sign with the number {text}" if text.isdigit() else f'a sign that says "{text}"'


def random_sign_text(rng: np.random.Generator) -> str:
    if rng.random() < 0.6:
        return DIGITS[int(rng.integers(len(DIGITS)))]
    words = COLOUR_NAMES + SHAPES + SIGN_WORDS
    return words[int(rng.integers(len(words)))]


def _decode(jpg: bytes) -> Image.Image:
    with Image.open(io.BytesIO(jpg)) as im:
        return im.convert("RGB")


def _new_uids(rng: np.random.Generator, n: int) -> list[str]:
    uids: list[str] = []
    seen: set[str] = set()
    while len(uids) < n:
        uid = rng.bytes(16).hex()
        if uid not in seen:
            seen.add(uid)
            uids.append(uid)
    return uids


def _scene_fields(scene: Scene | None) -> dict:
    if scene is None:
        return dict(shape=None, colour=None, count=None, size=None, position=None, background=None)
    return scene.as_dict()


def write_pool_chunk(
    out_dir,
    ground_truth_path,
    chunk_index: int,
    shard_ids: list[int],
    samples_per_shard: int,
    noise_rates: dict[str, float],
    seed: int,
    image_size: int = 64,
    sign_rate: float = 0.1,
) -> dict:
    """Write one chunk of the synthetic pool and its ground truth; return counts per noise type.

    ``out_dir`` receives, for each GLOBAL shard id in ``shard_ids``, ``{id:08d}.tar``,
    ``{id:08d}.parquet`` and ``{id:08d}_stats.json`` holding ``samples_per_shard`` samples each,
    and ``_{id:08d}_sha256.json``, their sizes and checksums (`curate.data.shards.record_shard`).
    ``ground_truth_path`` receives one row per generated sample (see ``GROUND_TRUTH_SCHEMA``).
    Images are drawn at their stored ("original") size: clean ones with a side in
    ``[image_size, 2.5 * image_size]``, tiny ones in ``[image_size / 8, 3 * image_size / 8]``,
    extreme-aspect ones with aspect ratio 3.3-5. Everything follows from ``(seed, chunk_index)``.
    """
    rates = validate_noise_rates(noise_rates)
    if not 0.0 <= sign_rate <= 1.0:
        raise ValueError(f"sign_rate must be in [0, 1], got {sign_rate}")
    if samples_per_shard < 1:
        raise ValueError(f"samples_per_shard must be >= 1, got {samples_per_shard}")
    if image_size < 8:
        raise ValueError(f"image_size must be >= 8, got {image_size}")
    shard_ids = [int(s) for s in shard_ids]
    if len(set(shard_ids)) != len(shard_ids):
        raise ValueError(f"duplicate shard ids in {shard_ids}")
    n = len(shard_ids) * samples_per_shard
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    rng = rng_for(seed, STREAM_POOL, chunk_index, 1)
    uids = _new_uids(rng_for(seed, STREAM_POOL, chunk_index, 0), n)
    probs = np.array([rates[t] for t in NOISE_TYPES] + [max(0.0, 1.0 - sum(rates.values()))])
    probs = probs / probs.sum()
    type_names = list(NOISE_TYPES) + ["clean"]
    types = [type_names[k] for k in rng.choice(len(type_names), size=n, p=probs)]
    sign_draw = rng.random(n)
    scenes = [random_scene(rng) for _ in range(n)]

    def clean_size() -> tuple[int, int]:
        side = int(rng.integers(image_size, int(2.5 * image_size) + 1))
        return side, side

    rows: list[dict] = [dict() for _ in range(n)]
    jpgs: list[bytes | None] = [None] * n
    texts: list[str] = [""] * n
    sizes: list[tuple[int, int]] = [(0, 0)] * n
    derived = ("mismatched_caption", "near_duplicate")

    # pass 1: every sample that does not copy another one ------------------------------------
    for i in range(n):
        t = types[i]
        if t in derived:
            continue
        scene: Scene | None = scenes[i]
        row = dict(noise_type=t, is_sign=False, caption_shape=scene.shape, caption_colour=scene.colour)
        if t == "clean" and sign_draw[i] < sign_rate:
            text = random_sign_text(rng)
            w, h = clean_size()
            img = render_sign(text, w, h, rng)
            caption = cap.sign_caption(text, rng)
            scene = None
            row.update(
                is_sign=True,
                image_text=text,
                clean_caption=clean_sign_caption(text),
                caption_shape=None,
                caption_colour=None,
            )
        elif t == "text_in_image":
            claimed = random_scene(rng)
            w, h = clean_size()
            img, scene, lines = render_text_in_image(claimed, w, h, rng)
            caption = cap.paraphrase(claimed, rng)
            row.update(image_text=" ".join(lines), caption_shape=claimed.shape, caption_colour=claimed.colour)
        elif t == "tiny_image":
            side = int(rng.integers(max(4, image_size // 8), max(5, 3 * image_size // 8) + 1))
            img = render_scene(scene, image_size, image_size, rng).resize((side, side), Image.Resampling.BOX)
            w, h = side, side
            caption = cap.paraphrase(scene, rng)
        elif t == "extreme_aspect":
            short = int(rng.integers(int(0.5 * image_size), int(0.8 * image_size) + 1))
            long = int(round(short * float(rng.uniform(3.3, 5.0))))
            w, h = (long, short) if rng.random() < 0.5 else (short, long)
            img = render_scene(scene, w, h, rng)
            caption = cap.paraphrase(scene, rng)
        else:
            w, h = clean_size()
            img = render_scene(scene, w, h, rng)
            if t == "wrong_attribute":
                names = list(WRONG_ATTRIBUTE_WEIGHTS)
                p = np.array([WRONG_ATTRIBUTE_WEIGHTS[a] for a in names])
                attr = names[int(rng.choice(len(names), p=p / p.sum()))]
                wrong = scene.replace(**{attr: other_value(rng, attr, getattr(scene, attr))})
                force = (attr,) if attr in ("count", "size", "position", "background") else ()
                caption = cap.paraphrase(wrong, rng, force=force)
                row.update(corrupted_attribute=attr, caption_shape=wrong.shape, caption_colour=wrong.colour)
            elif t == "medium_phrase":
                caption = cap.medium_phrase_caption(scene, rng)
            elif t == "non_english":
                caption, lang = cap.non_english_caption(scene, rng)
                row.update(language=lang)
            elif t == "gibberish":
                caption = cap.gibberish(rng)
                row.update(caption_shape=None, caption_colour=None)
            elif t == "empty_caption":
                caption = cap.empty_caption(rng)
                row.update(caption_shape=None, caption_colour=None)
            else:  # clean, corrupt_image, missing_uid
                caption = cap.paraphrase(scene, rng)
        jpg = encode_jpeg(img, JPEG_QUALITY)
        if t == "corrupt_image":
            jpg = corrupt_bytes(jpg, rng)
        if scene is not None:
            row.setdefault("clean_caption", cap.canonical_caption(scene))
        row.update(_scene_fields(scene))
        rows[i], jpgs[i], texts[i], sizes[i] = row, jpg, caption, (w, h)
        scenes[i] = scene  # None for signs

    # pass 2: samples that copy another one (a caption or an image) --------------------------
    sources = [j for j in range(n) if types[j] == "clean" and scenes[j] is not None]
    fallback = [j for j in range(n) if types[j] not in derived and scenes[j] is not None and texts[j].strip()]

    def pick_source(i: int, want_different: bool) -> int | None:
        for pool in (sources, fallback):
            cands = [j for j in pool if j != i]
            if not cands:
                continue
            for _ in range(20):
                j = cands[int(rng.integers(len(cands)))]
                if not want_different or (scenes[j].shape, scenes[j].colour) != (
                    scenes[i].shape,
                    scenes[i].colour,
                ):
                    return j
            return j
        return None

    for i in range(n):
        t = types[i]
        if t not in derived:
            continue
        if t == "mismatched_caption":
            scene = scenes[i]
            w, h = clean_size()
            jpg = encode_jpeg(render_scene(scene, w, h, rng), JPEG_QUALITY)
            j = pick_source(i, want_different=True)
            if j is not None:
                caption, claimed, source = texts[j], scenes[j], uids[j]
            else:  # a one-sample chunk: describe some other scene
                claimed = random_scene(rng, colour=other_value(rng, "colour", scene.colour))
                caption, source = cap.paraphrase(claimed, rng), None
            row = dict(caption_shape=claimed.shape, caption_colour=claimed.colour, source_uid=source)
        else:  # near_duplicate
            j = pick_source(i, want_different=False)
            if j is None:  # nothing to copy: a fresh clean-looking sample, no source
                scene = scenes[i]
                w, h = clean_size()
                jpg = encode_jpeg(render_scene(scene, w, h, rng), JPEG_QUALITY)
                caption, source = cap.paraphrase(scene, rng), None
            else:
                scene = scenes[j]
                src = _decode(jpgs[j])
                w, h = src.size
                jpg = encode_jpeg(perturb(src, rng), int(rng.integers(70, 93)))
                caption = texts[j] if rng.random() < 0.5 else cap.paraphrase(scene, rng)
                source = uids[j]
            scenes[i] = scene
            row = dict(caption_shape=scene.shape, caption_colour=scene.colour, source_uid=source)
        row.update(noise_type=t, is_sign=False, clean_caption=cap.canonical_caption(scene))
        row.update(_scene_fields(scene))
        rows[i], jpgs[i], texts[i], sizes[i] = row, jpg, caption, (w, h)

    # write the shards -----------------------------------------------------------------------
    gt_rows = []
    shard_files = []
    for s, shard_id in enumerate(shard_ids):
        with ShardWriter(out_dir, shard_id, samples_per_shard, fixed_time=_FIXED_TIME) as writer:
            for j in range(samples_per_shard):
                i = s * samples_per_shard + j
                w, h = sizes[i]
                meta = {
                    "uid": uids[i],
                    "url": f"https://shapes.synthetic.invalid/{seed}/{shard_name(shard_id)}/{j:05d}.jpg",
                    "original_width": w,
                    "original_height": h,
                }
                if types[i] == "missing_uid":
                    del meta["uid"]
                key = writer.write(jpgs[i], texts[i], meta)
                row = rows[i]
                gt = {name: row.get(name) for name in GROUND_TRUTH_SCHEMA.names}
                gt.update(
                    uid=uids[i],
                    shard_id=shard_id,
                    key=key,
                    is_clean=types[i] == "clean",
                    caption=texts[i],
                    original_width=w,
                    original_height=h,
                )
                gt_rows.append(gt)
        record_shard(writer.tar_path)  # its readers notice a change in place
        shard_files.append(writer.tar_path.name)

    ground_truth_path = Path(ground_truth_path)
    ground_truth_path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(gt_rows, schema=GROUND_TRUTH_SCHEMA), ground_truth_path)

    counts = {t: 0 for t in ("clean", *NOISE_TYPES)}
    for t in types:
        counts[t] += 1
    return {
        "chunk_index": int(chunk_index),
        "n_samples": n,
        "shards": shard_files,
        "noise_counts": counts,
        "n_clean": counts["clean"],
        "n_signs": sum(1 for r in rows if r.get("is_sign")),
    }
