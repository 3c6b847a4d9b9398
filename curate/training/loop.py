"""What curate's own training loops share: reading a reshard's samples in a seeded order, and
the warm-up + cosine learning rate."""

from __future__ import annotations

import json
import math
import random
import tarfile
from typing import Iterator

from curate.data.reshard import WEIGHT_KEY


def read_samples(shards: list, order_seed: int, shuffle_buffer: int = 1000) -> Iterator[tuple[bytes, str, float]]:
    """``(jpg, text, weight)`` of every sample of `shards`, shards in a seeded order, through a
    seeded shuffle buffer."""
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
                    pending.setdefault(key, {})[ext] = tar.extractfile(member).read()
            for key in sorted(pending):  # members of a key are adjacent; order by key for safety
                parts = pending[key]
                if "jpg" not in parts or "txt" not in parts:
                    continue
                fields = json.loads(parts["json"]) if "json" in parts else {}
                yield parts["jpg"], parts["txt"].decode("utf-8"), float(fields.get(WEIGHT_KEY, 1.0))

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


def lr_at(step: int, total_steps: int, warmup_steps: int, lr: float) -> float:
    """Linear warm-up to `lr` over `warmup_steps`, then cosine to 0 (open_clip's ``cosine_lr``)."""
    if step < warmup_steps:
        return lr * (step + 1) / warmup_steps
    e = step - warmup_steps
    es = max(1, total_steps - warmup_steps)
    return 0.5 * (1 + math.cos(math.pi * e / es)) * lr
