"""Pure helpers the Snakemake rules use to lay out a pool's chunks and targets.

A chunk is a fixed group of consecutive shards; chunks, not shards, are jobs, so the DAG of a
pool with a million shards stays a few thousand jobs.
"""

from __future__ import annotations

import math

CHUNK_DIGITS = 5
#: A downloaded chunk's report beside its shard folder: shards/{chunk}.download.json, shards/{chunk}/
DOWNLOAD_REPORT_SUFFIX = ".download.json"


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


def table_selections(config: dict, table: str, scale: str | None = None) -> list[str]:
    """The selections of `table` at `scale` (default: the config's): the scale's own `tables`
    entry where it has one, else the table's `selections`."""
    entry = config["scales"][scale or config["scale"]]
    return list(entry.get("tables", {}).get(table, config["tables"][table]["selections"]))


def chunk_input(data_root: str, pool: str, pool_entry: dict, chunk: str) -> str:
    """The file a chunk's consumers depend on: a synthetic chunk's shard folder (made by its
    generator), or a downloaded chunk's download report, written by the download job once every
    shard of the chunk is complete (the shards sit in the folder beside it,
    `curate.shards.chunk_folder`)."""
    if pool_entry["source"] == "synthetic":
        return f"{data_root}/pools/{pool}/shards/{chunk}"
    return f"{data_root}/pools/{pool}/shards/{chunk}{DOWNLOAD_REPORT_SUFFIX}"


def selection_labels(config: dict, selection: str) -> dict:
    """A selection's fusion, scorers and sampler as table labels (table2's columns)."""
    entry = config["selections"][selection]
    method = entry["method"]
    if method == "fused_score":
        fusion = config["fusions"][entry["fusion"]]
        return {"fusion": entry["fusion"], "scorers": "+".join(fusion["scorers"]), "sampler": entry["sampler"]}
    if method == "clip_score":
        sampler = "top_fraction" if "fraction" in entry else "threshold"
        return {"fusion": "none", "scorers": entry["scorer"], "sampler": sampler}
    if method == "no_filter":
        return {"fusion": "", "scorers": "", "sampler": "all"}
    return {"fusion": "", "scorers": "", "sampler": method}


def fusion_score_files(data_root: str, pool: str, scorers: list[str], chunks: list[str]) -> list[str]:
    """Score files of a fusion, chunk-major: for each chunk, one file per scorer in order."""
    return [f"{data_root}/scores/{pool}/{scorer}/{chunk}.parquet" for chunk in chunks for scorer in scorers]


def chunk_files(files: list, n_scorers: int) -> list[list]:
    """`fusion_score_files`' flat list back as one list of ``n_scorers`` files per chunk."""
    files = list(files)
    if n_scorers < 1 or len(files) % n_scorers:
        raise ValueError(f"{len(files)} score files are not whole chunks of {n_scorers} scorers")
    return [files[i:i + n_scorers] for i in range(0, len(files), n_scorers)]


#: The column of a scorer's score files that holds its score, by the scorer's library.
SCORE_COLUMNS = {"open_clip": "clip_score", "sieve": "sieve_score"}


def score_column(scorer: dict) -> str:
    """The score column of a scorer's files: ``clip_score`` for CLIP scorers, ``sieve_score``
    for Sieve scorers, the method's name (``s_clip_loss``, ``normsim_inf``) for embedding scores."""
    library = scorer["library"]
    if library == "embedding":
        return scorer["method"]
    if library not in SCORE_COLUMNS:
        raise ValueError(f"no score column known for scorers of library {library!r}")
    return SCORE_COLUMNS[library]


def names_pattern(names) -> str:
    """A wildcard regex matching exactly these names (one that matches nothing when empty), so
    that rules writing the same path pattern for different kinds of scorers never overlap."""
    import re

    names = sorted(names)
    return "|".join(re.escape(name) for name in names) if names else "(?!)"


def training_gpus(recipe: dict) -> int:
    """GPUs a training job asks the cluster for: one per process of a CUDA recipe (its
    ``world_size``, default 1; torchrun starts that many), none for a CPU one (the default device)."""
    if recipe.get("device", "cpu") != "cuda":
        return 0
    return int(recipe.get("world_size", 1))
