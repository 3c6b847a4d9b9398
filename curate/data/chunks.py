"""Chunks: a pool's jobs. A chunk is a fixed group of consecutive shards, so the DAG of a pool
with a million shards stays a few thousand jobs."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

CHUNK_DIGITS = 5
#: A downloaded chunk's report beside its shard folder: shards/{chunk}.download.json, shards/{chunk}/
DOWNLOAD_REPORT_SUFFIX = ".download.json"
#: The index of a chunk of a download read in place (curate.data.inplace): shards/{chunk}.index.json
#: beside shards/{chunk}/, a folder of links to the download's shards and their checksum records
INDEX_REPORT_SUFFIX = ".index.json"


def chunk_name(index: int) -> str:
    return f"{index:0{CHUNK_DIGITS}d}"


def n_chunks(n_shards: int, shards_per_chunk: int) -> int:
    if n_shards < 1 or shards_per_chunk < 1:
        raise ValueError(f"need n_shards >= 1 and shards_per_chunk >= 1, got {n_shards}, {shards_per_chunk}")
    return math.ceil(n_shards / shards_per_chunk)


def chunk_names(n_shards: int, shards_per_chunk: int) -> list[str]:
    return [chunk_name(i) for i in range(n_chunks(n_shards, shards_per_chunk))]


def chunk_shard_ids(chunk: str, n_shards: int, shards_per_chunk: int) -> list[int]:
    """The global shard ids of one chunk; the last chunk may be short."""
    index = int(chunk)
    if not 0 <= index < n_chunks(n_shards, shards_per_chunk):
        raise ValueError(f"chunk {chunk} is outside a pool of {n_shards} shards in chunks of {shards_per_chunk}")
    first = index * shards_per_chunk
    return list(range(first, min(first + shards_per_chunk, n_shards)))


def chunk_folder(chunk) -> Path:
    """The shard folder of a chunk given as its folder, as a downloaded chunk's report
    ``shards/<chunk>.download.json`` (the rules' input for downloaded pools; the shards are in
    ``shards/<chunk>/`` beside it) or as the index of a chunk read in place
    ``shards/<chunk>.index.json`` (its folder holds links to the shards)."""
    chunk = Path(chunk)
    for suffix in (DOWNLOAD_REPORT_SUFFIX, INDEX_REPORT_SUFFIX):
        if chunk.name.endswith(suffix):
            return chunk.with_name(chunk.name[: -len(suffix)])
    return chunk


def chunk_seed(seed: int, chunk: str) -> int:
    """The captioning seed of one pool chunk: derived from (captioner seed, chunk index), so
    chunks can be captioned in any order, on any machine, and give the same captions."""
    return int(np.random.SeedSequence([int(seed), int(chunk)]).generate_state(1)[0])
