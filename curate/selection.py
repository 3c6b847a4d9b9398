"""Turn a selection's config entry and its inputs into a DataComp subset of uids.

Methods available so far:
- ``no_filter``: every uid in the pool's metadata (DataComp's baseline).
- ``clip_score``: one scorer's CLIP score, top ``fraction`` by the DataComp rule (ALGORITHMS §1)
  or ``score >= threshold``.
- ``oracle``: the synthetic pool's ground-truth clean uids (an upper bound; only synthetic pools).
- ``fused_score``: a fusion's per-chunk fused scores (see "Fused scores" below) and a sampler,
  ``top_fraction`` (§1) or ``scs`` (§7; the subset then holds repeats).
- DataComp's baselines ``basic_filter``, ``text_based``, ``image_based``,
  ``image_based_clip_score`` and ``laion2b`` (`curate.baseline_selection`).
- MoS's three data strategies (§5; see "MoS strategies" at the end), each on one ``scorer``'s
  score or one ``fusion``'s fused score: ``drop_lowest`` (drop the lowest ``rho``, MoS's
  keep-exactly rule), ``sample_weighting`` (every scored sample, with a loss weight) and
  ``recaption`` (every scored sample; the lowest ``rho`` get a captioner's caption).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from curate import fusion as fusion_lib
from curate.baseline_selection import BASELINE_METHODS, select_baseline
from curate.sampling import keep_ratio, scs
from curate.sampling import threshold as keep_above_threshold
from curate.sampling import top_fraction
from curate.score import load_scores
from curate.subset import uids_to_u8u8

log = logging.getLogger(__name__)

METHODS = ("no_filter", "clip_score", "oracle", "fused_score", *BASELINE_METHODS, "drop_lowest", "sample_weighting",
           "recaption")


def pool_uids(metadata_parquets: list) -> list[str]:
    """All uids listed in a pool's per-shard metadata; rows without a uid are not samples one can select."""
    frames = [pd.read_parquet(path, columns=["uid"]) for path in metadata_parquets]
    uids = pd.concat(frames, ignore_index=True)["uid"] if frames else pd.Series([], dtype=object)
    return [uid for uid in uids if isinstance(uid, str) and uid]


def clean_uids(ground_truth_parquets: list) -> list[str]:
    frames = [pd.read_parquet(path, columns=["uid", "is_clean"]) for path in ground_truth_parquets]
    truth = pd.concat(frames, ignore_index=True)
    return truth.loc[truth["is_clean"].astype(bool), "uid"].tolist()


def load_chunk_scores(score_files: list, column: str = "clip_score") -> tuple[list[str], np.ndarray]:
    frames = [load_scores(path) for path in score_files]
    scores = pd.concat(frames, ignore_index=True)
    duplicated = scores["uid"].duplicated()
    if duplicated.any():
        raise ValueError(f"uid {scores['uid'][duplicated].iloc[0]} is scored in more than one chunk of {Path(score_files[0]).parent}")
    return scores["uid"].tolist(), scores[column].to_numpy(np.float64)


def select_clip_score(uids: list[str], scores: np.ndarray, fraction: float | None = None, threshold: float | None = None) -> list[str]:
    if (fraction is None) == (threshold is None):
        raise ValueError("clip_score needs exactly one of fraction or threshold")
    kept = top_fraction(scores, fraction) if fraction is not None else keep_above_threshold(scores, threshold)
    return [uids[i] for i in np.sort(kept)]


def select(method: str, params: dict, inputs: dict) -> np.ndarray:
    """The subset (u8,u8, unsorted) for one selection; `inputs` holds the file lists the rule gathered."""
    if method == "no_filter":
        uids = pool_uids(inputs["metadata"])
    elif method == "oracle":
        uids = clean_uids(inputs["ground_truth"])
    elif method == "clip_score":
        all_uids, scores = load_chunk_scores(inputs["scores"], column=params.get("score_column", "clip_score"))
        uids = select_clip_score(all_uids, scores, params.get("fraction"), params.get("threshold"))
    elif method == "fused_score":
        all_uids, scores = load_chunk_scores(inputs["scores"], column=FUSED_COLUMN)
        uids = sample_fused(all_uids, scores, params)
    elif method in BASELINE_METHODS:
        uids = select_baseline(method, params, inputs)
    elif method in STRATEGY_METHODS:
        all_uids, scores = load_strategy_scores(params, inputs["scores"])
        uids = strategy_subset(method, all_uids, scores, params)
    else:
        raise ValueError(f"unknown selection method {method!r}; known: {', '.join(METHODS)}")
    return uids_to_u8u8(uids)


# --------------------------------------------------------------------------------------------
# Fused scores (DESIGN "Global statistics, then rows"): a reduce step over every chunk's score
# files gives the pool-wide statistics a fusion needs (JSON), then each chunk is fused alone from
# them, so fusing chunk by chunk gives the same scores as fusing the whole pool at once.
#
# Fusion methods (config `fusions`, ALGORITHMS §5, §6):
# - ``none``: one scorer's raw score (a degenerate fusion, for single-scorer samplers).
# - ``sum``: the plain sum of the raw scores (FLYT's "Sum" baseline: "a simple sum of all input
#   scores", no normalisation).
# - ``standardised_sum``: the sum of the scores z-scored over the pool, unbiased std (FLYT's
#   "Standardized Sum": "sum of scores after standardization to zero mean and unit std").
# - ``in_weighted``: IN-weighted standardised sum, weights from each scorer's ImageNet(-analogue)
#   accuracy and the max-to-min ratio ``r`` (§6).
# - ``mos``: Mixture of Scores over the pool-normalised scores (min-max by default, or z-score),
#   with the pool's row-std range as a second pass over the normalised scores (§5).
# - ``sieve_clip``: Sieve + CLIPScore, ``(1 - a) * minmax(sieve) + a * minmax(clip)`` over the
#   pool (§4); scorers = [a Sieve scorer, a CLIP scorer].
# - ``mflyt``: a trained M-FLYT mixing head (`curate.flyt.MixingHead`) over the pool-standardised
#   scores (§6); its logits are the fused score. The head is trained by the workflow's
#   ``train_mixer`` rule from the same statistics.
# - ``eflyt``: a trained E-FLYT GLU head over a CLIP scorer's chunk embeddings (§6); scorers =
#   [that CLIP scorer], whose statistics are computed but not used (`fuse_embeddings_chunk`).
#
# Each scorer's file holds its score under its own name (`curate.workflow.score_column`:
# ``clip_score``, ``sieve_score``, ...), so the callers pass one column per scorer.
# --------------------------------------------------------------------------------------------

FUSION_METHODS = ("none", "sum", "standardised_sum", "in_weighted", "mos", "sieve_clip", "mflyt", "eflyt")
FUSED_COLUMN = "score"


def _columns(columns, n: int) -> list[str]:
    if columns is None:
        return ["clip_score"] * n
    if isinstance(columns, str):
        return [columns] * n
    if len(columns) != n:
        raise ValueError(f"{n} score files but {len(columns)} score columns")
    return list(columns)


def load_score_matrix(paths: list, columns: list[str] | str | None = None) -> tuple[list[str], np.ndarray]:
    """One chunk's scores of several scorers (one file per scorer, in order) as ``(uids, N x M)``;
    ``columns`` names each file's score column (default ``clip_score``).

    Rows are the uids every scorer scored (inner join), in the first file's order; a uid one
    scorer skipped (a NaN score, say) is left out of the fusion and logged.
    """
    if not paths:
        raise ValueError("load_score_matrix: no score files")
    columns = _columns(columns, len(paths))
    frames = [load_scores(path, [column]) for path, column in zip(paths, columns)]
    joined = frames[0][["uid", columns[0]]].rename(columns={columns[0]: 0})
    for j, (frame, column) in enumerate(zip(frames[1:], columns[1:]), 1):
        joined = joined.merge(frame[["uid", column]].rename(columns={column: j}), on="uid", how="inner", sort=False)
    dropped = max(len(f) for f in frames) - len(joined)
    if dropped:
        log.warning("%d uids of %s are not scored by every scorer and are left out of the fusion", dropped, paths[0])
    S = joined[list(range(len(frames)))].to_numpy(np.float64)
    return joined["uid"].tolist(), S


def scorer_accuracy(records: list[dict], task: str) -> float:
    """The main metric of `task` in a scorer's evaluation records (its ImageNet-analogue accuracy)."""
    for record in records:
        if record["key"] == task:
            value = record["metrics"].get("main_metric")
            if value is None:
                raise ValueError(f"task {task!r} has no main metric")
            return float(value)
    raise ValueError(f"no evaluation record for task {task!r} (tasks: {[r['key'] for r in records]})")


def _normalise(S: np.ndarray, fusion: dict, stats: dict) -> np.ndarray:
    if fusion.get("normalise", "minmax") == "zscore":
        return fusion_lib.zscore(S, stats)
    return fusion_lib.minmax(S, stats)


def fusion_statistics(chunk_files: list[list], fusion: dict, accuracies: list[float] | None = None,
                      columns: list[str] | None = None) -> dict:
    """Pool-wide statistics of a fusion (JSON-ready) from ``chunk_files`` = per chunk, one score
    file per scorer (in the fusion's scorer order), ``columns`` = each scorer's score column.

    Holds the columns' ``min, max, mean, std (ddof=1), n``; for ``in_weighted`` the accuracies and
    weights; for ``mos`` the ``sigma_range`` of the normalised rows (a second pass).
    """
    method = fusion["method"]
    if method not in FUSION_METHODS:
        raise ValueError(f"unknown fusion method {method!r}; known: {', '.join(FUSION_METHODS)}")
    if method == "none" and len(fusion["scorers"]) != 1:
        raise ValueError(f"fusion method 'none' takes one scorer, got {fusion['scorers']}")
    if method == "sieve_clip" and len(fusion["scorers"]) != 2:
        raise ValueError(f"fusion method 'sieve_clip' takes [sieve scorer, clip scorer], got {fusion['scorers']}")
    stats = fusion_lib.column_stats(load_score_matrix(files, columns)[1] for files in chunk_files)
    out = {"method": method, "scorers": list(fusion["scorers"])}
    out.update({key: np.atleast_1d(stats[key]).tolist() for key in ("min", "max", "mean", "std", "n")})
    if method == "in_weighted":
        if accuracies is None or len(accuracies) != len(fusion["scorers"]):
            raise ValueError(f"in_weighted needs one accuracy per scorer, got {accuracies}")
        out["accuracy"] = [float(a) for a in accuracies]
        out["weights"] = fusion_lib.in_weighted_weights(accuracies, fusion["r"]).tolist()
    if method == "mos":
        lo, hi = fusion_lib.mos_sigma_range(
            _normalise(load_score_matrix(files, columns)[1], fusion, _stats_arrays(out)) for files in chunk_files
        )
        out["sigma_range"] = [lo, hi]
    return out


def standardised_pool_scores(chunk_files: list[list], stats: dict, columns: list[str] | None = None) -> tuple[list[str], np.ndarray]:
    """Every chunk's score matrix z-scored with the pool-wide `stats` of `fusion_statistics`,
    stacked: ``(uids, N x M)``, M-FLYT's head inputs."""
    arrays = _stats_arrays(stats)
    uids, rows = [], []
    for files in chunk_files:
        chunk_uids, S = load_score_matrix(files, columns)
        uids += chunk_uids
        rows.append(fusion_lib.zscore(S, arrays))
    return uids, np.concatenate(rows) if rows else np.zeros((0, len(arrays["mean"])))


def _stats_arrays(stats: dict) -> dict:
    return {key: np.asarray(stats[key], dtype=np.float64) for key in ("min", "max", "mean", "std", "n")}


def fuse_matrix(S: np.ndarray, fusion: dict, stats: dict, head=None) -> np.ndarray:
    """The fused score of each row of ``S`` (N x M, columns in the fusion's scorer order), from
    the pool-wide `stats` of :func:`fusion_statistics` (and for ``mflyt`` the trained mixing
    `head`); each row depends only on itself."""
    S = np.asarray(S, dtype=np.float64)
    method = fusion["method"]
    if S.ndim != 2 or S.shape[1] != len(stats["min"]):
        raise ValueError(f"score matrix of shape {S.shape} for a fusion of {len(stats['min'])} scorers")
    arrays = _stats_arrays(stats)
    if method == "none":
        return S[:, 0].copy()
    if method == "sum":
        return fusion_lib.weighted_sum(S, np.ones(S.shape[1]))
    if method == "standardised_sum":
        return fusion_lib.standardised_sum(S, arrays)
    if method == "in_weighted":
        return fusion_lib.weighted_sum(fusion_lib.zscore(S, arrays), np.asarray(stats["weights"], dtype=np.float64))
    if method == "mos":
        return fusion_lib.mos(_normalise(S, fusion, arrays), fusion.get("tmin", 0.5), fusion.get("tmax", 1.5),
                              sigma_range=tuple(stats["sigma_range"]))
    if method == "sieve_clip":
        return fusion_lib.sieve_clip_fusion(S[:, 0], S[:, 1], fusion.get("a", 0.5), arrays)
    if method == "mflyt":
        if head is None:
            raise ValueError("fusion method 'mflyt' needs its trained mixing head")
        from curate.flyt import apply_mixer

        return apply_mixer(head, fusion_lib.zscore(S, arrays)).astype(np.float64)
    raise ValueError(f"unknown fusion method {method!r}; known: {', '.join(FUSION_METHODS)}")


def fuse_chunk(paths: list, fusion: dict, stats: dict, columns: list[str] | None = None, head=None) -> pd.DataFrame:
    """One chunk's fused scores, ``DataFrame[uid, score (float32)]`` (see `curate.score.save_scores`)."""
    uids, S = load_score_matrix(paths, columns)
    fused = fuse_matrix(S, fusion, stats, head)
    if np.isnan(fused).any():
        raise ValueError(f"fusion {fusion['method']} gave NaN scores for chunk {paths[0]}")
    return pd.DataFrame({"uid": pd.Series(uids, dtype=object), FUSED_COLUMN: fused.astype(np.float32)})


def eflyt_inputs(embedding_files: list) -> tuple[list[str], np.ndarray]:
    """E-FLYT's head inputs of chunks: ``(uids, [image | text] embeddings)``, L2-normalised."""
    from curate.flyt import eflyt_features
    from curate.score import load_embeddings

    uids, rows = [], []
    for path in embedding_files:
        chunk_uids, image, text = load_embeddings(path)
        uids += chunk_uids
        rows.append(eflyt_features(image, text).numpy())
    return uids, np.concatenate(rows) if rows else np.zeros((0, 0), np.float32)


def fuse_embeddings_chunk(embedding_file, head) -> pd.DataFrame:
    """One chunk's E-FLYT scores: the trained head's logits over its embeddings."""
    from curate.flyt import apply_mixer

    uids, X = eflyt_inputs([embedding_file])
    fused = apply_mixer(head, X)
    return pd.DataFrame({"uid": pd.Series(uids, dtype=object), FUSED_COLUMN: fused.astype(np.float32)})


SAMPLERS = ("top_fraction", "scs")


def sample_fused(uids: list[str], scores: np.ndarray, params: dict) -> list[str]:
    """Apply a fused_score selection's sampler; repeats in the result mean "repeat this sample".

    - ``top_fraction``: ALGORITHMS §1 with ``fraction``.
    - ``scs``: Soft Cap Sampling (§7), ``n = int(N * n_fraction)`` draws (default 1.0: as many
      as the scored pool has samples, like FLYT's medium setting), in rounds of ``batch_size``
      or ``int(N * batch_fraction)`` distinct samples, ``alpha``, ``seed``. With ``standardise``
      (default true) the fused scores are z-scored over the pool first: SCS's softmax depends on
      the scores' scale (raw CLIP cosines of ~0.0-0.4 would be drawn almost uniformly), so this
      puts every fusion on the same logit scale and ``alpha`` means the same for all.
    """
    sampler = params.get("sampler")
    scores = np.asarray(scores, dtype=np.float64)
    if sampler == "top_fraction":
        kept = np.sort(top_fraction(scores, params["fraction"]))
        return [uids[i] for i in kept]
    if sampler == "scs":
        N = scores.shape[0]
        n = int(N * params.get("n_fraction", 1.0))
        if "batch_size" in params:
            G = int(params["batch_size"])
        else:
            G = max(1, int(N * params["batch_fraction"]))
        if params.get("standardise", True):
            scores = fusion_lib.zscore(scores)
        drawn = scs(scores, n, alpha=params["alpha"], batch_size=G, seed=params.get("seed", 0))
        return [uids[i] for i in drawn]
    raise ValueError(f"unknown sampler {sampler!r}; known: {', '.join(SAMPLERS)}")


# --------------------------------------------------------------------------------------------
# MoS strategies (ALGORITHMS §5): filtering, sample weighting, re-captioning. Each takes one
# score per sample: a scorer's raw score (``scorer``) or a fusion's fused score (``fusion``).
# - ``drop_lowest``: keep exactly ``max(1, min(round(N * (1 - rho)), N))`` samples, the highest
#   after a stable descending sort (MoS's keep rule, `curate.sampling.keep_ratio`).
# - ``sample_weighting``: the subset is every scored sample; its loss weight is the score
#   min-max normalised over the pool, ``(s - min) / (max - min + 1e-8)`` in [0, 1]
#   (`sample_weights`, written beside the subset and into the reshard).
# - ``recaption``: the subset is every scored sample; the lowest ``rho`` (the complement of
#   ``drop_lowest``'s kept set) get a ``captioner``'s caption instead of their alt-text
#   (`recaption_uids`; the captions are written beside the subset and into the reshard).
# --------------------------------------------------------------------------------------------

STRATEGY_METHODS = ("drop_lowest", "sample_weighting", "recaption")
WEIGHT_COLUMN = "weight"
CAPTION_COLUMN = "caption"


def strategy_score_source(params: dict) -> tuple[str, str]:
    """``("scorer" | "fusion", name)`` of a strategy selection: exactly one of the two."""
    if ("scorer" in params) == ("fusion" in params):
        raise ValueError(f"a {params.get('method')} selection takes exactly one of scorer or fusion, got {params}")
    return ("scorer", params["scorer"]) if "scorer" in params else ("fusion", params["fusion"])


def load_strategy_scores(params: dict, score_files: list) -> tuple[list[str], np.ndarray]:
    kind, _ = strategy_score_source(params)
    return load_chunk_scores(score_files, column=params.get("score_column", "clip_score") if kind == "scorer" else FUSED_COLUMN)


def lowest_mask(scores: np.ndarray, rho: float) -> np.ndarray:
    """True for the lowest ``rho`` of the samples: those MoS's keep rule with ``1 - rho`` drops."""
    if not 0.0 <= float(rho) < 1.0:
        raise ValueError(f"rho must be in [0, 1), got {rho}")
    scores = np.asarray(scores, dtype=np.float64)
    low = np.ones(scores.shape[0], dtype=bool)
    low[keep_ratio(scores, 1.0 - float(rho))] = False
    return low


def sample_weights(scores: np.ndarray) -> np.ndarray:
    """Per-sample loss weights: the scores min-max normalised over the pool (§5), in [0, 1]."""
    scores = np.asarray(scores, dtype=np.float64)
    if scores.size == 0:
        return scores.copy()
    return np.clip(fusion_lib.minmax(scores), 0.0, 1.0)


def strategy_subset(method: str, uids: list[str], scores: np.ndarray, params: dict) -> list[str]:
    if method == "drop_lowest":
        return [uid for uid, low in zip(uids, lowest_mask(scores, params["rho"])) if not low]
    if method in ("sample_weighting", "recaption"):
        return list(uids)
    raise ValueError(f"unknown strategy {method!r}; known: {', '.join(STRATEGY_METHODS)}")


def weights_table(uids: list[str], scores: np.ndarray) -> pd.DataFrame:
    """``DataFrame[uid, weight (float64)]`` of a sample_weighting selection."""
    return pd.DataFrame({"uid": pd.Series(list(uids), dtype=object), WEIGHT_COLUMN: sample_weights(scores)})


def recaption_uids(uids: list[str], scores: np.ndarray, rho: float) -> list[str]:
    """The uids whose alt-text a recaption selection replaces (the lowest ``rho``), in pool order."""
    return [uid for uid, low in zip(uids, lowest_mask(scores, rho)) if low]


def read_uid_column(path, column: str) -> dict:
    """``{uid: value}`` of a weights or captions file (parquet with ``uid`` and `column`)."""
    frame = pd.read_parquet(path)
    if "uid" not in frame.columns or column not in frame.columns:
        raise ValueError(f"{path}: needs columns uid and {column}, has {list(frame.columns)}")
    if frame["uid"].duplicated().any():
        raise ValueError(f"{path}: uid {frame['uid'][frame['uid'].duplicated()].iloc[0]} appears twice")
    return dict(zip(frame["uid"].tolist(), frame[column].tolist()))
