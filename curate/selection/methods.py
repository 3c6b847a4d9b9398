"""The selection methods: how a config ``selections`` entry becomes a DataComp subset of uids.

Each method is one entry of :data:`SELECTIONS`: its parameters (with defaults), the files it reads
(``inputs``, from the workflow's paths), what it runs and, for table labels, which fusion, scorers
and sampler it stands for. The workflow's ``select_subset`` job gathers the inputs, calls
:func:`select` and saves the subset (`curate.data.subset`).

Every score a method reads comes from one scorer's chunk files (``scorer``: its own column, given
to the method as ``score_column``) or one fusion's fused chunks (``fusion``).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from curate.data.scorefiles import load_chunk_scores
from curate.data.subset import SUBSET_DTYPE, read_uids_file, uids_to_u8u8
from curate.registry import FRACTION, NAME, POSITIVE_INT, SEED, ConfigError, Registry, optional, require_entry, required
from curate.selection import baselines, strategies
from curate.selection.pool_fusion import FUSED_COLUMN
from curate.selection.sampling import SAMPLERS, threshold, top_fraction

log = logging.getLogger(__name__)

SELECTIONS = Registry("selection method", key="method")


def select(params: dict, inputs: dict) -> np.ndarray:
    """The subset (u8,u8, unsorted) of one completed selection entry; ``inputs`` holds the files
    the workflow gathered by role (lists, or one path). A method returns hex uids or a u8,u8 array."""
    kept = SELECTIONS.of(params, "selection").run(params, inputs)
    if isinstance(kept, np.ndarray) and kept.dtype == SUBSET_DTYPE:
        return kept
    return uids_to_u8u8(kept)


def score_source(entry: dict) -> tuple[str, str] | None:
    """``("scorer" | "fusion", name)`` of the score a selection reads, None if it reads none."""
    if entry.get("fusion") is not None:
        return "fusion", entry["fusion"]
    if entry.get("scorer") is not None:
        return "scorer", entry["scorer"]
    return None


def chunk_scores(params: dict, inputs: dict) -> tuple[list[str], np.ndarray]:
    """The uids and scores of the selection's score source over the pool, in chunk order."""
    return load_chunk_scores(inputs["scores"], params["score_column"])


def _score_inputs(ws, pool: str, entry: dict) -> dict:
    kind, name = score_source(entry)
    return {"scores": ws.score_files(pool, name) if kind == "scorer" else ws.fused_files(pool, name)}


def _labels(fusion: str = "", scorers: str = "", sampler: str = "") -> dict:
    return {"fusion": fusion, "scorers": scorers, "sampler": sampler}


# ---------------------------------------------------------------------------------------------
# The pool as it is, and its ground truth


def pool_uids(metadata_parquets: list) -> list[str]:
    """All uids listed in a pool's per-shard metadata, each once (a url a retry downloaded again is
    listed by its first shard as failed and by the retry's as a success); rows without a uid are
    not samples one can select."""
    frames = [pd.read_parquet(path, columns=["uid"]) for path in metadata_parquets]
    uids = pd.concat(frames, ignore_index=True)["uid"] if frames else pd.Series([], dtype=object)
    return list(dict.fromkeys(uid for uid in uids if isinstance(uid, str) and uid))


def clean_uids(ground_truth_parquets: list) -> list[str]:
    frames = [pd.read_parquet(path, columns=["uid", "is_clean"]) for path in ground_truth_parquets]
    truth = pd.concat(frames, ignore_index=True)
    return truth.loc[truth["is_clean"].astype(bool), "uid"].tolist()


@SELECTIONS.register(
    "no_filter",
    inputs=lambda ws, pool, entry: {"metadata": ws.chunk_inputs(pool)},
    labels=lambda config, entry: _labels(sampler="all"),
)
def select_no_filter(params: dict, inputs: dict) -> list[str]:
    """Every uid of the pool (DataComp's baseline)."""
    return pool_uids(inputs["metadata"])


@SELECTIONS.register(
    "oracle",
    inputs=lambda ws, pool, entry: {"ground_truth": ws.per_chunk("ground_truth", pool)},
    needs_ground_truth=True,
)
def select_oracle(params: dict, inputs: dict) -> list[str]:
    """The synthetic pool's ground-truth clean uids (an upper bound; synthetic pools only)."""
    return clean_uids(inputs["ground_truth"])


def noise_mix_uids(truth: pd.DataFrame, size: float, noise_type: str | None, share: float, seed: int) -> list[str]:
    """``int(size * N)`` uids of a pool of N samples: ``round(share * n)`` drawn (seeded) from the
    samples of ``noise_type``, the rest the first clean samples of one seeded order of the clean
    ones, which every share and noise type shares (so two such subsets differ only in the noise
    swapped in). A pool with too few samples of either kind raises."""
    n = int(len(truth) * size)
    k = round(n * share) if noise_type is not None else 0
    rng = np.random.default_rng(seed)
    clean = sorted(truth.loc[truth["is_clean"].astype(bool), "uid"])
    clean = [clean[i] for i in rng.permutation(len(clean))]
    if len(clean) < n - k:
        raise ValueError(f"the pool has {len(clean)} clean samples, fewer than the {n - k} asked for")
    noisy = sorted(truth.loc[truth["noise_type"] == noise_type, "uid"]) if k else []
    if len(noisy) < k:
        raise ValueError(f"the pool has {len(noisy)} samples of {noise_type!r}, fewer than the {k} asked for")
    picked = [noisy[i] for i in np.random.default_rng([seed, 1]).permutation(len(noisy))[:k]]
    return clean[: n - k] + picked


@SELECTIONS.register(
    "noise_mix",
    params={
        "size": required(FRACTION, "the subset's size as a fraction of the pool"),
        "noise_type": optional({"type": ["string", "null"]}, None, "the noise type mixed in (null: clean only)"),
        "share": optional({"type": "number", "minimum": 0, "maximum": 1}, 0.0, "its share of the subset"),
        "seed": optional(SEED, 0),
    },
    inputs=lambda ws, pool, entry: {"ground_truth": ws.per_chunk("ground_truth", pool)},
    needs_ground_truth=True,
    labels=lambda config, entry: _labels(sampler=f"clean + {entry['share']:g} {entry['noise_type'] or 'nothing'}"),
)
def select_noise_mix(params: dict, inputs: dict) -> list[str]:
    """Clean samples with one noise type swapped in at a fixed share, at a fixed size (ground truth,
    synthetic pools only): what that noise does to a model, against the same clean samples alone."""
    frames = [pd.read_parquet(p, columns=["uid", "is_clean", "noise_type"]) for p in inputs["ground_truth"]]
    truth = pd.concat(frames, ignore_index=True)
    return noise_mix_uids(truth, params["size"], params["noise_type"], params["share"], params["seed"])


# ---------------------------------------------------------------------------------------------
# A subset made elsewhere


def published_name(entry: dict, pool: str) -> str | None:
    """The ``published_uids`` entry a ``uids_file`` selection reads on ``pool`` (None: it names a
    ``path``, or nothing for this pool)."""
    published = entry.get("published")
    if isinstance(published, dict):
        return published.get(pool)
    return published


def _uids_inputs(ws, pool: str, entry: dict) -> dict:
    if entry["path"] is not None:
        return {"uids": entry["path"]}
    name = published_name(entry, pool)
    if name is None:
        raise ConfigError(
            f"a uids_file selection publishes uids for {sorted(entry['published'])}, not for pool {pool!r}: "
            f"add `{pool}: <published_uids name>` to its `published`, or give a `path`"
        )
    if name not in ws.config.get("published_uids", {}):
        raise ConfigError(
            f"published_uids.{name} is not configured: add it to the config's published_uids "
            "({url: ..., sha256: ...} or {path: ...}) to fetch and train on those uids"
        )
    return {"uids": ws.path("published_uids", published=name)}


def _uids_unavailable(config: dict, entry: dict, pool: str) -> str | None:
    """Why a ``uids_file`` selection cannot run on ``pool`` (None when it can)."""
    if entry["path"] is not None:
        return None
    name = published_name(entry, pool)
    if name is None:
        return f"published uids not available for pool {pool} (published for {', '.join(sorted(entry['published']))})"
    if name not in config.get("published_uids", {}):
        return f"published uids not available: {name}"
    return None


def _check_uids_file(config: dict, where: str, entry: dict) -> None:
    if (entry["path"] is None) == (entry["published"] is None):
        raise ConfigError(f"{where}: a uids_file selection takes exactly one of path or published")
    if isinstance(entry["published"], dict):
        for pool in entry["published"]:
            require_entry(config, "pools", pool, f"{where}.published")


def _uids_labels(config: dict, entry: dict) -> dict:
    published = entry["published"]
    if entry["path"] is not None:
        source = Path(entry["path"]).name
    else:
        source = "+".join(sorted(set(published.values()))) if isinstance(published, dict) else published
    return _labels("none", "", f"uids file: {source}")


@SELECTIONS.register(
    "uids_file",
    params={
        "path": optional(
            {"type": ["string", "null"]},
            None,
            "a subset made elsewhere: DataComp .npy (u8,u8), parquet/CSV/text of hex uids",
        ),
        "published": optional(
            {
                "oneOf": [
                    {"type": "null"},
                    NAME,
                    {"type": "object", "minProperties": 1, "additionalProperties": NAME},
                ]
            },
            None,
            "a `published_uids` entry, or one per pool ({pool: name})",
        ),
        "format": optional(
            {"enum": [None, "npy", "parquet", "csv", "text"]}, None, "the file's format (default: from its suffix)"
        ),
        "max_missing": optional(
            {"type": ["number", "null"], "minimum": 0, "maximum": 1},
            None,
            "the share of its uids the pool may lack at reshard time (default: integrity.max_subset_missing); "
            "a subset made on the whole pool meets the images a download could not fetch",
        ),
    },
    check=_check_uids_file,
    inputs=_uids_inputs,
    unavailable=_uids_unavailable,
    labels=_uids_labels,
)
def select_uids_file(params: dict, inputs: dict) -> np.ndarray:
    """The uids of a file made elsewhere, as they are: every repeat kept (it trains its sample once
    more, as in DataComp), written sorted; the uids the pool lacks are counted at reshard time."""
    uids, info = read_uids_file(inputs["uids"], params["format"])
    log.info(
        "uids file %s (%s): %d uids, %d unique, %d repeats (each trains its sample once more), %s",
        inputs["uids"],
        info["format"],
        info["rows"],
        info["unique"],
        info["repeats"],
        "sorted" if info["sorted"] else "not sorted (written sorted)",
    )
    return uids


# ---------------------------------------------------------------------------------------------
# One score, or a fusion's


def _check_fraction_or_threshold(config: dict, where: str, entry: dict) -> None:
    if (entry["fraction"] is None) == (entry["threshold"] is None):
        raise ConfigError(f"{where}: clip_score takes exactly one of fraction or threshold")


@SELECTIONS.register(
    "clip_score",
    params={
        "scorer": required(NAME, "the scorer whose score is thresholded", ref="scorers", paper=True),
        "fraction": optional(FRACTION, None, "keep the top fraction (docs/algorithms.md §1)"),
        "threshold": optional({"type": "number"}, None, "keep score >= threshold"),
    },
    check=_check_fraction_or_threshold,
    inputs=_score_inputs,
    labels=lambda config, entry: _labels(
        "none", entry["scorer"], "top_fraction" if entry["fraction"] is not None else "threshold"
    ),
)
def select_clip_score(params: dict, inputs: dict) -> list[str]:
    """One scorer's score: the top ``fraction`` by DataComp's rule, or ``score >= threshold``."""
    uids, scores = chunk_scores(params, inputs)
    if params["fraction"] is not None:
        kept = top_fraction(scores, params["fraction"])
    else:
        kept = threshold(scores, params["threshold"])
    return [uids[i] for i in np.sort(kept)]


def top_n(scores: np.ndarray, n: int) -> np.ndarray:
    """Indices of the ``n`` largest scores, exactly ``n`` (fewer when fewer are finite), ties to
    the lower index; NaN scores are never kept. (Wang et al.'s ``filter_by_score`` keeps exactly
    ``n`` with ``np.argpartition``, which breaks ties arbitrarily.)"""
    scores = np.asarray(scores, dtype=np.float64)
    valid = np.flatnonzero(~np.isnan(scores))
    order = valid[np.argsort(-scores[valid], kind="stable")]
    return np.sort(order[: max(0, int(n))])


def two_stage(
    uids: list[str], first: np.ndarray, second: np.ndarray, fraction: float, second_fraction: float
) -> list[str]:
    """s-CLIPLoss's two-stage filter (Wang et al. 2024; FLYT Table 10, App. C.4): with ``N`` the
    pool's scored samples, keep the top ``int(N * fraction)`` by ``first``, then of those the top
    ``int(N * second_fraction)`` by ``second``: both counts are shares of the whole pool (the
    authors' ``filter_by_score(..., total_num)``), each exactly that many (`top_n`)."""
    n = len(uids)
    kept = top_n(first, int(n * fraction))
    kept = kept[top_n(np.asarray(second)[kept], int(n * second_fraction))]
    return [uids[i] for i in np.sort(kept)]


def _two_stage_inputs(ws, pool: str, entry: dict) -> dict:
    return {
        "scores": ws.score_files(pool, entry["scorer"]),
        "second_scores": ws.score_files(pool, entry["second_scorer"]),
    }


def _two_stage_columns(config: dict, entry: dict) -> dict:
    from curate.scoring.kinds import score_column

    return {"second_score_column": score_column(config["scorers"][entry["second_scorer"]])}


def _check_two_stage(config: dict, where: str, entry: dict) -> None:
    if entry["second_fraction"] > entry["fraction"]:
        raise ConfigError(
            f"{where}.second_fraction: {entry['second_fraction']} of the pool cannot come from the first stage's "
            f"{entry['fraction']}"
        )


@SELECTIONS.register(
    "two_stage",
    params={
        "scorer": required(NAME, "the first stage's scorer (s-CLIPLoss)", ref="scorers", paper=True),
        "fraction": required(FRACTION, "the pool's share the first stage keeps (0.3)"),
        "second_scorer": required(NAME, "the second stage's scorer (NormSim)", ref="scorers", paper=True),
        "second_fraction": required(FRACTION, "the pool's share kept in the end (0.2)"),
    },
    check=_check_two_stage,
    inputs=_two_stage_inputs,
    config_params=_two_stage_columns,
    labels=lambda config, entry: _labels("two_stage", f"{entry['scorer']}>{entry['second_scorer']}", "top_n"),
)
def select_two_stage(params: dict, inputs: dict) -> list[str]:
    """The top ``fraction`` of the pool by one score, then the top ``second_fraction`` of the pool
    among those by another (s-CLIPLoss, then NormSim: Wang et al.'s two-stage filter)."""
    uids, first = chunk_scores(params, inputs)
    second_uids, second = load_chunk_scores(inputs["second_scores"], params["second_score_column"])
    by_uid = dict(zip(second_uids, second))
    aligned = np.array([by_uid.get(uid, np.nan) for uid in uids], dtype=np.float64)
    return two_stage(uids, first, aligned, params["fraction"], params["second_fraction"])


def _fused_labels(config: dict, entry: dict) -> dict:
    fusion = config["fusions"][entry["fusion"]]
    return _labels(entry["fusion"], "+".join(fusion["scorers"]), entry["sampler"])


@SELECTIONS.register(
    "fused_score",
    params={
        "fusion": required(NAME, "the fusion whose fused score is sampled", ref="fusions"),
        "sampler": required({"type": "string"}, "how the subset is drawn from the fused scores (a sampler)"),
    },
    extra_params=lambda entry, where: SAMPLERS.of(entry, where).params,
    check=lambda config, where, entry: _check_sampler(config, where, entry),
    inputs=_score_inputs,
    labels=_fused_labels,
    resolve=lambda config, entry: _resolve_sampler(config, entry),
)
def select_fused_score(params: dict, inputs: dict) -> list[str]:
    """A fusion's fused score and a sampler (top fraction, SCS; the subset then holds repeats)."""
    uids, scores = chunk_scores(params, inputs)
    return SAMPLERS.of(params, "selection").run(uids, scores, params)


def _resolve_sampler(config: dict, entry: dict) -> dict:
    resolve = SAMPLERS.of(entry).spec.get("resolve")
    return resolve(config, entry) if resolve is not None else entry


def resolve_selection(config: dict, entry: dict) -> dict:
    """A selection entry with what only the run's config decides filled in (an SCS sampler's
    ``n: samples_seen`` becomes the count of its recipe); the entry itself where nothing is."""
    resolve = SELECTIONS.of(entry).spec.get("resolve")
    return resolve(config, entry) if resolve is not None else entry


def _check_sampler(config: dict, where: str, entry: dict) -> None:
    sampler = SAMPLERS.of(entry, where)
    if sampler.check is not None:
        sampler.check(config, where, entry)


# ---------------------------------------------------------------------------------------------
# DataComp's baselines (docs/algorithms.md §2; curate.selection.baselines)


def _baseline_inputs(ws, pool: str, entry: dict) -> dict:
    inputs = {"metadata": ws.chunk_inputs(pool)}
    langid = ws.langid_model(entry["langid"])
    if langid is not None:  # gcld3's model ships inside its package
        inputs["langid"] = langid
    if entry.get("concepts") == "wordnet":
        inputs["wordnet"] = ws.model_folder(entry["wordnet"])
        inputs["synsets"] = ws.model_folder(entry["synsets"])
    if entry.get("embeddings") is not None:
        clip = entry["embeddings"]
        inputs["embeddings"] = ws.per_chunk("embeddings", pool, scorer=clip)
        inputs["target"] = ws.dataset_embeddings(entry["target"], clip)
    if entry.get("scorer") is not None:
        inputs["scores"] = ws.score_files(pool, entry["scorer"])
    return inputs


_LANGID = {
    "langid": required(NAME, "the language detector (DataComp: fastText lid.176)", ref="langid_models", paper=True)
}


def _langid_entry(config: dict, entry: dict) -> dict:
    """The baseline's language detector entry, which says how to run it (`curate.scoring.langid.english_mask`)."""
    return {"langid_model": config["langid_models"][entry["langid"]]}


_CONCEPTS = optional(
    {"enum": ["synthetic", "wordnet"]}, "wordnet", "WordNet's ImageNet-21k synsets, or the synthetic world's concepts"
)
#: Where DataComp's text-based filter looks words up: nltk's WordNet and ImageNet-21k's synset ids.
_WORDNET = {
    "wordnet": optional(NAME, "wordnet", "the `models` entry of nltk's WordNet corpus (unpacked)", ref="models"),
    "synsets": optional(
        NAME, "imagenet21k-wordnet-ids", "the `models` entry of ImageNet-21k's WordNet ids (a text file)", ref="models"
    ),
}
_IMAGE_BASED = {
    "embeddings": required(NAME, "the CLIP scorer whose image embeddings are clustered", ref="scorers"),
    "target": required(
        NAME, "the labelled set whose images pick the target clusters (DataComp: ImageNet's train)", ref="datasets"
    ),
    "n_clusters": required({"type": "integer", "minimum": 1}, "k-means clusters (DataComp: 100 000)"),
    "n_iter": optional({"type": "integer", "minimum": 1}, 20, "k-means iterations"),
    "seed": optional(SEED, 0, "k-means seed"),
    "max_points_per_centroid": optional(
        POSITIVE_INT,
        baselines.MAX_POINTS_PER_CENTROID,
        "faiss trains k-means on at most this many points per centroid (DataComp: 10 000 000, i.e. all)",
    ),
}

SELECTIONS.register(
    "basic_filter",
    run=baselines.select_basic_filter,
    inputs=_baseline_inputs,
    config_params=_langid_entry,
    doc="English, > 2 words, > 5 characters, min side and aspect ratio of the original image",
    params={
        **_LANGID,
        "min_side": optional({"type": "integer", "minimum": 0}, 200, "smallest image side (px)"),
        "max_aspect": optional({"type": "number", "minimum": 1}, 3.0, "largest aspect ratio"),
    },
)
SELECTIONS.register(
    "text_based",
    run=baselines.select_text_based,
    inputs=_baseline_inputs,
    config_params=_langid_entry,
    doc="English and a caption word naming an ImageNet-21k concept",
    params={
        **_LANGID,
        "concepts": _CONCEPTS,
    },
    extra_params=lambda entry, where: _WORDNET if entry.get("concepts", _CONCEPTS.default) == "wordnet" else {},
)
SELECTIONS.register(
    "laion2b",
    run=baselines.select_laion2b,
    inputs=_baseline_inputs,
    config_params=_langid_entry,
    doc="English and a CLIP score at least the threshold",
    params={
        **_LANGID,
        "scorer": required(NAME, "the CLIP scorer (DataComp: OpenAI B/32)", ref="scorers", paper=True),
        "threshold": optional({"type": "number"}, 0.28, "the CLIP score threshold"),
    },
)
SELECTIONS.register(
    "image_based",
    run=baselines.select_image_based,
    inputs=_baseline_inputs,
    config_params=_langid_entry,
    doc="caption-filtered samples whose image falls in a k-means cluster the downstream set hits",
    params={**_LANGID, **_IMAGE_BASED},
)
SELECTIONS.register(
    "image_based_clip_score",
    run=baselines.select_image_based,
    inputs=_baseline_inputs,
    config_params=_langid_entry,
    doc="the image-based filter and the CLIP score's top fraction of the whole pool",
    params={
        **_LANGID,
        **_IMAGE_BASED,
        "scorer": required(NAME, "the CLIP scorer", ref="scorers", paper=True),
        "fraction": optional(FRACTION, 0.3, "the CLIP score's kept fraction, on the unfiltered pool"),
    },
)


# ---------------------------------------------------------------------------------------------
# Density-Based Pruning (docs/algorithms.md §11; curate.selection.dbp)


def _dbp_inputs(ws, pool: str, entry: dict) -> dict:
    inputs = {"embeddings": ws.image_embedding_files(pool, entry["embeddings"])}
    if entry.get("scorer") is not None:
        inputs["scores"] = ws.score_files(pool, entry["scorer"])
    return inputs


def _check_prefilter(config: dict, where: str, entry: dict) -> None:
    if (entry["scorer"] is None) != (entry["prefilter_fraction"] is None):
        raise ConfigError(f"{where}: a CLIP-score prefilter takes both scorer and prefilter_fraction")


@SELECTIONS.register(
    "density_based_pruning",
    params={
        "embeddings": required(
            NAME, "the image encoder whose embeddings are clustered", ref="image_encoders", paper=True
        ),
        "fraction": required(FRACTION, "the share of the (prefiltered, deduplicated) candidates kept"),
        "n_clusters": required(POSITIVE_INT, "k-means clusters (the authors: 100 on DataComp medium)"),
        "temperature": optional(
            {"type": "number", "exclusiveMinimum": 0}, 0.5, "softmax temperature over complexities"
        ),
        "n_neighbours": optional(POSITIVE_INT, 20, "nearest centroids averaged in d_inter"),
        "balance": optional(
            {"type": "number", "minimum": 0, "maximum": 1}, 0.5, "cluster-balance share of the quota floor"
        ),
        "dedup_eps": optional(
            {"type": "number", "minimum": 0}, None, "SemDeDup threshold first (none: no deduplication)"
        ),
        "dedup_clusters": optional(POSITIVE_INT, None, "SemDeDup's k-means clusters (default n_clusters)"),
        "scorer": optional(NAME, None, "a CLIP score prefilter's scorer", ref="scorers", paper=True),
        "prefilter_fraction": optional(FRACTION, None, "the prefilter's top fraction of the pool"),
        "n_iter": optional(POSITIVE_INT, 20, "k-means iterations"),
        "seed": optional(SEED, 0, "k-means seed"),
    },
    check=_check_prefilter,
    inputs=_dbp_inputs,
    labels=lambda config, entry: _labels("none", entry["scorer"] or "", "density_based_pruning"),
)
def select_density_based_pruning(params: dict, inputs: dict) -> list[str]:
    """CLIP-score prefilter (optional), SemDeDup (optional), then DBP's complexity-weighted quotas."""
    from curate.data.scorefiles import load_embeddings
    from curate.selection.dbp import density_based_pruning

    top = None
    if params["scorer"] is not None:
        score_uids, scores = chunk_scores(params, inputs)
        top = set(score_uids[i] for i in top_fraction(scores, params["prefilter_fraction"]))
    # only the candidates' embeddings are held (a chunk at a time): the prefilter's 30 % of a pool
    uids, images, embedded = [], [], 0
    for path in inputs["embeddings"]:
        chunk_uids, image, _ = load_embeddings(path)
        embedded += len(chunk_uids)
        rows = np.arange(len(chunk_uids)) if top is None else [i for i, u in enumerate(chunk_uids) if u in top]
        uids += [chunk_uids[i] for i in rows]
        images.append(image[rows])
    features = np.concatenate(images) if images else np.zeros((0, 1), np.float32)
    keep, summary = density_based_pruning(
        features,
        params["fraction"],
        params["n_clusters"],
        temperature=params["temperature"],
        n_neighbours=params["n_neighbours"],
        balance=params["balance"],
        dedup_eps=params["dedup_eps"],
        dedup_clusters=params["dedup_clusters"],
        n_iter=params["n_iter"],
        seed=params["seed"],
    )
    log.info("density_based_pruning: %s (of %d embedded samples)", summary, embedded)
    return [uids[i] for i in np.flatnonzero(keep)]


# ---------------------------------------------------------------------------------------------
# MoS's strategies (docs/algorithms.md §5; curate.selection.strategies)


def _check_one_score(config: dict, where: str, entry: dict) -> None:
    if (entry["scorer"] is None) == (entry["fusion"] is None):
        raise ConfigError(f"{where}: a {entry['method']} selection takes exactly one of scorer or fusion")


_ONE_SCORE = {
    "scorer": optional(NAME, None, "the scorer whose score is used", ref="scorers", paper=True),
    "fusion": optional(NAME, None, "or the fusion whose fused score is used", ref="fusions"),
}
_RHO = {"rho": required({"type": "number", "minimum": 0, "exclusiveMaximum": 1}, "the lowest share affected")}


@SELECTIONS.register("drop_lowest", params={**_ONE_SCORE, **_RHO}, check=_check_one_score, inputs=_score_inputs)
def select_drop_lowest(params: dict, inputs: dict) -> list[str]:
    """Drop the lowest ``rho`` by MoS's keep-exactly rule."""
    uids, scores = chunk_scores(params, inputs)
    return strategies.drop_lowest(uids, scores, params["rho"])


@SELECTIONS.register(
    "sample_weighting",
    params=_ONE_SCORE,
    check=_check_one_score,
    inputs=_score_inputs,
    reshard_inputs=lambda ws, pool, selection, entry: {
        "weights": ws.path("sample_weights", pool=pool, selection=selection)
    },
)
def select_sample_weighting(params: dict, inputs: dict) -> list[str]:
    """Every scored sample, with a loss weight = its score min-max normalised over the pool."""
    return chunk_scores(params, inputs)[0]


@SELECTIONS.register(
    "recaption",
    params={
        **_ONE_SCORE,
        **_RHO,
        "captioner": required(NAME, "whose first caption replaces the alt-text", ref="captioners", paper=True),
    },
    check=_check_one_score,
    inputs=_score_inputs,
    reshard_inputs=lambda ws, pool, selection, entry: {
        "captions": ws.path("recaptions", pool=pool, selection=selection)
    },
)
def select_recaption(params: dict, inputs: dict) -> list[str]:
    """Every scored sample; the lowest ``rho`` get the captioner's caption in place of their alt-text."""
    return chunk_scores(params, inputs)[0]


def score_column_of(config: dict, entry: dict) -> str | None:
    """The column a selection's score source writes: its scorer's own, or a fusion's."""
    from curate.scoring.kinds import score_column

    source = score_source(entry)
    if source is None:
        return None
    kind, name = source
    return score_column(config["scorers"][name]) if kind == "scorer" else FUSED_COLUMN
