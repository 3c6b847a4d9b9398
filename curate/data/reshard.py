"""Write a subset of a pool as training shards (docs/algorithms.md §0, "Resharding a subset").

As DataComp's resharder: the pool's tars are read as webdataset groups them (members sharing a
key up to the first dot of their name; suffixes lower-cased), and every sample whose ``.json``
``uid`` is one of the subset's (compared as a 128-bit number, so upper-case hex matches) is
written once per time the subset lists it, with key "{uid}-{j}" (the uid as the sample spells
it) and EVERY member copied as bytes, nothing decoded: a whitespace caption, an image that does
not decode, a png, an extra member all go through, and skipping what cannot be trained on is the
trainer's job. A sample without a ``.json``, or whose ``uid`` is not a 128-bit hex number, cannot
be matched and is not written; like every pool sample the subset does not list, it is counted in
``meta.json``. An optional seeded shuffle buffer spreads repeats apart. Shards are numbered
contiguously from 0 and the tar members carry a fixed mtime, so reruns give the same bytes.

MoS strategies reach training through the reshard: `weights` (uid -> loss weight, sample
weighting) puts a ``weight`` field into every sample's ``.json`` (`WEIGHT_KEY`); `captions`
(uid -> caption, re-captioning) replaces those samples' ``.txt`` and keeps the alt-text in the
``.json`` under ``original_caption``. Only then is a member rewritten.
"""

from __future__ import annotations

import json
import logging
import tarfile
from collections import Counter
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from curate.data.shards import add_tar_member, iter_checked_groups, iter_tar_groups, shard_files
from curate.data.subset import u8u8_to_uids

log = logging.getLogger(__name__)

SAMPLES_PER_SHARD = 10_000
#: The field of a reshard sample's .json that holds its loss weight (sample weighting).
WEIGHT_KEY = "weight"
#: Why a pool sample was not written, as meta.json counts them.
NOT_WRITTEN = ("not_in_subset", "no_json", "bad_json", "bad_uid")


def repeat_counts(subset: np.ndarray) -> Counter:
    """uid -> how many times the subset lists it."""
    return Counter(u8u8_to_uids(subset))


def uid_number(uid) -> int | None:
    """The 128-bit number a sample's uid names, as DataComp's resharder reads it
    (``int(uid, 16)``, whatever the case), or None when it names none."""
    if not isinstance(uid, str):
        return None
    try:
        value = int(uid, 16)
    except ValueError:
        return None
    return value if 0 <= value < 1 << 128 else None


def iter_raw_samples(tar_paths: Iterable) -> Iterator[tuple[str, dict[str, bytes]]]:
    """``(key, {suffix: bytes})`` of every sample of the tars, grouped as webdataset groups them:
    regular members only, metadata members (``__...__``) and names without a suffix skipped, the
    key up to the first dot of the name, suffixes lower-cased, a repeated suffix starting a new
    sample. A pool shard is read against its record (`iter_checked_groups`: a damaged or
    changed shard stops the reshard); a tar without one (made elsewhere) is read as it is."""
    for path in tar_paths:
        if shard_files(Path(path))[1].is_file():
            yield from iter_checked_groups(path)
        else:
            log.warning("%s has no img2dataset record beside it: read without checking it", path)
            yield from iter_tar_groups(path)


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
    by_number = {int(uid, 16): uid for uid in counts}
    if weights is not None:
        unweighted = [uid for uid in counts if uid not in weights]
        if unweighted:
            raise ValueError(f"{len(unweighted)} subset uids have no weight, e.g. {unweighted[:3]}")
    captions = captions or {}
    recaptioned: set[str] = set()
    found: set[str] = set()
    read = {"samples": 0, **{reason: 0 for reason in NOT_WRITTEN}}

    def records():
        for _, members in iter_raw_samples(pool_shards):
            read["samples"] += 1
            if "json" not in members:
                read["no_json"] += 1
                continue
            try:
                fields = json.loads(members["json"])
            except (UnicodeDecodeError, ValueError):
                read["bad_json"] += 1
                continue
            spelled = fields.get("uid") if isinstance(fields, dict) else None
            number = uid_number(spelled)
            if number is None:
                read["bad_uid"] += 1
                continue
            uid = by_number.get(number)
            if uid is None:
                read["not_in_subset"] += 1
                continue
            found.add(uid)
            members = dict(members)
            if weights is not None or uid in captions:
                if weights is not None:
                    fields[WEIGHT_KEY] = float(weights[uid])
                if uid in captions:
                    fields["original_caption"] = members.get("txt", b"").decode("utf-8", errors="replace")
                    members["txt"] = str(captions[uid]).encode()
                    recaptioned.add(uid)
                members["json"] = json.dumps(fields, sort_keys=True).encode()
            for j in range(counts[uid]):
                yield f"{spelled}-{j}", members

    rng = np.random.default_rng(seed)
    shard_sizes: list[int] = []
    tar = None
    for key, members in _shuffled(records(), shuffle_buffer, rng):
        if tar is None or shard_sizes[-1] == samples_per_shard:
            if tar is not None:
                tar.close()
            tar = tarfile.open(out_dir / f"{len(shard_sizes):08d}.tar", "w", format=tarfile.USTAR_FORMAT)
            shard_sizes.append(0)
        for suffix in sorted(members):  # webdataset's TarWriter writes a sample's members sorted
            add_tar_member(tar, f"{key}.{suffix}", members[suffix])
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
        "pool_read": read,
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
