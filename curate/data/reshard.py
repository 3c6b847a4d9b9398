"""Write a subset of a pool as training shards (docs/algorithms.md §0, "Resharding a subset").

Every pool sample whose uid occurs c times in the subset is written c times with keys
"{uid}-{j}"; an optional seeded shuffle buffer spreads repeats apart. Shards are numbered
contiguously from 0 and the tar members carry a fixed mtime, so reruns give the same bytes.

MoS strategies reach training through the reshard: `weights` (uid -> loss weight, sample
weighting) puts a ``weight`` field into every sample's ``.json`` (`WEIGHT_KEY`); `captions`
(uid -> caption, re-captioning) replaces those samples' ``.txt`` and keeps the alt-text in the
``.json`` under ``original_caption``.
"""

from __future__ import annotations

import json
import tarfile
from collections import Counter
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from curate.data.shards import SkipReport, add_tar_member, iter_pool_samples
from curate.data.subset import u8u8_to_uids

SAMPLES_PER_SHARD = 10_000
#: The field of a reshard sample's .json that holds its loss weight (sample weighting).
WEIGHT_KEY = "weight"


def repeat_counts(subset: np.ndarray) -> Counter:
    """uid -> how many times the subset lists it."""
    return Counter(u8u8_to_uids(subset))


def _shuffled(records: Iterable, buffer_size: int, rng: np.random.Generator) -> Iterator:
    """Emit records through a fixed-size buffer, replacing a random slot each time (webdataset-style)."""
    if buffer_size <= 1:
        yield from records
        return
    buffer = []
    for record in records:
        if len(buffer) < buffer_size:
            buffer.append(record)
            continue
        slot = int(rng.integers(len(buffer)))
        yield buffer[slot]
        buffer[slot] = record
    order = rng.permutation(len(buffer))
    for slot in order:
        yield buffer[slot]


def reshard(
    subset: np.ndarray,
    pool_shards: list,
    out_dir,
    samples_per_shard: int = SAMPLES_PER_SHARD,
    shuffle_buffer: int = 0,
    seed: int = 0,
    weights: dict | None = None,
    captions: dict | None = None,
) -> dict:
    """Write the subset's samples from `pool_shards` into `out_dir`; return (and write) meta.json.

    `weights`: every subset uid's loss weight (a uid without one stops the reshard), written as
    the ``weight`` field of its ``.json``. `captions`: uids whose ``.txt`` is replaced."""
    if samples_per_shard < 1:
        raise ValueError(f"samples_per_shard must be >= 1, got {samples_per_shard}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    counts = repeat_counts(subset)
    if weights is not None:
        unweighted = [uid for uid in counts if uid not in weights]
        if unweighted:
            raise ValueError(f"{len(unweighted)} subset uids have no weight, e.g. {unweighted[:3]}")
    captions = captions or {}
    recaptioned: set[str] = set()
    report = SkipReport()
    found: set[str] = set()

    def records():
        for sample in iter_pool_samples(pool_shards, report):
            repeats = counts.get(sample.uid, 0)
            if not repeats:
                continue
            found.add(sample.uid)
            fields = dict(sample.meta)
            text = sample.text
            if weights is not None:
                fields[WEIGHT_KEY] = float(weights[sample.uid])
            if sample.uid in captions:
                fields["original_caption"] = text
                text = str(captions[sample.uid])
                recaptioned.add(sample.uid)
            meta = json.dumps(fields, sort_keys=True).encode()
            for j in range(repeats):
                yield f"{sample.uid}-{j}", sample.jpg, text.encode(), meta

    rng = np.random.default_rng(seed)
    shard_sizes: list[int] = []
    tar = None
    for key, jpg, txt, meta in _shuffled(records(), shuffle_buffer, rng):
        if tar is None or shard_sizes[-1] == samples_per_shard:
            if tar is not None:
                tar.close()
            tar = tarfile.open(out_dir / f"{len(shard_sizes):08d}.tar", "w", format=tarfile.USTAR_FORMAT)
            shard_sizes.append(0)
        add_tar_member(tar, f"{key}.jpg", jpg)
        add_tar_member(tar, f"{key}.txt", txt)
        add_tar_member(tar, f"{key}.json", meta)
        shard_sizes[-1] += 1
    if tar is not None:
        tar.close()

    missing = sorted(set(counts) - found)
    meta = {
        "subset_size": int(len(subset)),
        "unique_uids": len(counts),
        "written": int(sum(shard_sizes)),
        "written_unique": len(found),
        "missing_uids": len(missing),
        "missing_examples": missing[:5],
        "shards": len(shard_sizes),
        "shard_sizes": shard_sizes,
        "samples_per_shard": samples_per_shard,
        "shuffle_buffer": shuffle_buffer,
        "seed": seed,
        "weighted": weights is not None,
        "recaptioned": len(recaptioned),
        "pool_report": report.as_dict(),
    }
    (out_dir / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    return meta


def train_data(shard_dir) -> str:
    """open_clip_train's --train-data for a folder of webdataset shards: its tars joined by '::'."""
    shards = sorted(Path(shard_dir).glob("*.tar"))
    if not shards:
        raise ValueError(f"{shard_dir} holds no shards: the subset is empty or none of its uids is in the pool")
    return "::".join(str(path) for path in shards)


def reshard_contents(shard_dir) -> tuple[list[Path], dict]:
    """The tars of a reshard, sorted, and its meta.json (``written`` = samples written); a
    reshard without shards (an empty subset) raises naming the folder."""
    shards = sorted(Path(shard_dir).glob("*.tar"))
    if not shards:
        raise ValueError(f"{shard_dir} holds no shards")
    return shards, json.loads((Path(shard_dir) / "meta.json").read_text())
