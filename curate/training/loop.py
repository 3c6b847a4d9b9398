"""What curate's own training loops share: reading a reshard's samples in a seeded order, and
the warm-up + cosine learning rate."""

from __future__ import annotations

import json
import math
import random
import tarfile
from typing import Iterator

from curate.data.reshard import WEIGHT_KEY

#: The members a sample's image may be, in the order open_clip's loader looks for them
#: (``rename(image="jpg;png;jpeg;webp")``): a reshard copies the pool's members as they are.
IMAGE_MEMBERS = ("jpg", "png", "jpeg", "webp")


def decode_rgb(data: bytes):
    """The RGB PIL image of an image member, or None when it does not decode: open_clip's loader
    skips such a sample (its decode handler logs and continues), and so do curate's loops."""
    import io

    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as image:
            return image.convert("RGB")
    except Exception:  # noqa: BLE001 - PIL raises many kinds on bad bytes
        return None


def read_samples(shards: list, order_seed: int, shuffle_buffer: int = 1000) -> Iterator[tuple[bytes, str, float]]:
    """``(image bytes, text, weight)`` of every sample of `shards` that has a caption and an image
    member (as open_clip's ``filter_no_caption_or_no_image``; the image is the first of
    `IMAGE_MEMBERS`), shards in a seeded order, through a seeded shuffle buffer. Whether the
    image decodes is checked where it is decoded (`decode_rgb`)."""
    rng = random.Random(f"weighted-clip-{order_seed}")
    shards = list(shards)
    rng.shuffle(shards)

    def samples():
        for path in shards:
            pending: dict[str, dict] = {}
            with tarfile.open(path, "r") as tar:
                for member in tar:
                    if not member.isfile() or "." not in member.name:
                        continue
                    key, ext = member.name.rsplit("/", 1)[-1].split(".", 1)
                    pending.setdefault(key, {})[ext.lower()] = tar.extractfile(member).read()
            for key in sorted(pending):  # members of a key are adjacent; order by key for safety
                parts = pending[key]
                image = next((parts[ext] for ext in IMAGE_MEMBERS if ext in parts), None)
                if image is None or "txt" not in parts:
                    continue
                fields = _json_fields(parts.get("json"))
                yield image, parts["txt"].decode("utf-8", errors="replace"), float(fields.get(WEIGHT_KEY, 1.0))

    buffer = []
    for sample in samples():
        if len(buffer) < shuffle_buffer:
            buffer.append(sample)
            continue
        slot = rng.randrange(len(buffer))
        yield buffer[slot]
        buffer[slot] = sample
    rng.shuffle(buffer)
    yield from buffer


def _json_fields(data: bytes | None) -> dict:
    """A sample's ``.json`` fields; {} when it has none or it is not a JSON object."""
    if data is None:
        return {}
    try:
        fields = json.loads(data)
    except ValueError:
        return {}
    return fields if isinstance(fields, dict) else {}


def lr_at(step: int, total_steps: int, warmup_steps: int, lr: float) -> float:
    """Linear warm-up to `lr` over `warmup_steps`, then cosine to 0 (open_clip's ``cosine_lr``)."""
    if step < warmup_steps:
        return lr * (step + 1) / warmup_steps
    e = step - warmup_steps
    es = max(1, total_steps - warmup_steps)
    return 0.5 * (1 + math.cos(math.pi * e / es)) * lr
