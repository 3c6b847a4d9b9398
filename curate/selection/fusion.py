"""Score fusion: normalisation, MoS, weighted sums, Sieve + CLIPScore (docs/algorithms.md §4-§6).

Conventions
-----------
* A score matrix ``S`` is ``N x M`` (rows = samples, columns = scorers); a 1-D array is
  treated as one column and 1-D results are returned for 1-D input.
* Everything is computed in float64.
* "Global statistics first, then rows": every function that needs pool-wide
  statistics accepts them precomputed (``stats=`` from :func:`column_stats`,
  ``sigma_range=`` from :func:`mos_sigma_range`), so a pool can be processed chunk by
  chunk. Row-wise reductions are written as explicit loops over the (few) columns, so
  each row's result depends only on that row: chunked == unchunked bit for bit.
* NaN: statistics ignore NaN entries (per-column counts); a NaN entry makes that row's
  fused score NaN (samplers never keep NaN, see :mod:`curate.selection.sampling`).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from curate.registry import NAME, POSITIVE_INT, SEED, ConfigError, Registry, optional, require_entry, required

__all__ = [
    "column_stats",
    "minmax",
    "zscore",
    "mos",
    "mos_sigma_range",
    "row_std",
    "weighted_sum",
    "standardised_sum",
    "in_weighted_weights",
    "in_weighted_sum",
    "sieve_clip_fusion",
    "FUSIONS",
]

MINMAX_EPS = 1e-8


def _as_matrix(S) -> tuple[np.ndarray, bool]:
    S = np.asarray(S, dtype=np.float64)
    if S.ndim == 1:
        return S[:, None], True
    if S.ndim != 2:
        raise ValueError(f"score matrix must be 1-D or 2-D, got shape {S.shape}")
    return S, False


def _out(x: np.ndarray, was_1d: bool):
    return x[:, 0] if was_1d else x


# ----------------------------------------------------------------------- statistics
def column_stats(chunks: Iterable) -> dict:
    """Column-wise ``min, max, mean, std (ddof=1), n`` of row chunks, in one streaming pass.

    ``chunks`` is an iterable of ``N_c x M`` arrays (or 1-D arrays = one column) with the
    same ``M``. Per chunk, the mean and the sum of squared deviations (``M2``) are
    computed in float64 with a two-pass formula; chunks are merged with Chan et al.'s
    parallel update (``delta = mean_b - mean_a``; ``mean = mean_a + delta * n_b / n``;
    ``M2 = M2_a + M2_b + delta**2 * n_a * n_b / n``), which is numerically stable; all
    means are kept relative to a per-column shift taken from the first chunk, so a large
    common offset (e.g. 1e9 + noise) loses no precision.
    NaN entries are ignored (``n`` is per column, ``n_nan`` counts them). ``std`` uses
    the unbiased estimator (ddof=1, as the MoS z-score variant, §5); it is NaN when
    ``n < 2``. Values are float64 arrays of shape ``(M,)`` (0-d for 1-D chunks).
    """
    n = mean = m2 = mn = mx = nnan = None
    was_1d = None
    for chunk in chunks:
        X, one = _as_matrix(chunk)
        if was_1d is None:
            was_1d = one
            M = X.shape[1]
            n = np.zeros(M, dtype=np.int64)
            nnan = np.zeros(M, dtype=np.int64)
            mean = np.zeros(M)
            m2 = np.zeros(M)
            mn = np.full(M, np.inf)
            mx = np.full(M, -np.inf)
            shift = np.zeros(M)
        elif X.shape[1] != n.shape[0]:
            raise ValueError(f"chunk has {X.shape[1]} columns, expected {n.shape[0]}")
        if X.shape[0] == 0:
            continue
        nan = np.isnan(X)
        any_nan = bool(nan.any())
        nb = X.shape[0] - nan.sum(axis=0) if any_nan else np.full(X.shape[1], X.shape[0])
        nnan += X.shape[0] - nb
        has = nb > 0
        if (has & (n == 0)).any():
            # shift (a rough per-column centre, fixed for the whole stream): the sums
            # below are taken of X - shift, so a large common offset costs no precision
            rough = np.where(nan, 0.0, X).sum(axis=0) / np.maximum(nb, 1)
            shift = np.where(has & (n == 0), rough, shift)
        dev = X - shift
        if any_nan:
            dev[nan] = 0.0
        mb = dev.sum(axis=0) / np.maximum(nb, 1)  # shifted chunk mean
        dev -= mb
        if any_nan:
            dev[nan] = 0.0
        dev *= dev
        m2b = dev.sum(axis=0)
        del dev
        if any_nan:
            mn = np.minimum(mn, np.where(nan, np.inf, X).min(axis=0))
            mx = np.maximum(mx, np.where(nan, -np.inf, X).max(axis=0))
        else:
            mn = np.minimum(mn, X.min(axis=0))
            mx = np.maximum(mx, X.max(axis=0))
        na = n
        tot = na + nb
        with np.errstate(invalid="ignore", divide="ignore"):
            delta = mb - mean
            frac = np.where(tot > 0, nb / np.maximum(tot, 1), 0.0)
            new_mean = mean + delta * frac
            new_m2 = m2 + m2b + delta * delta * np.where(tot > 0, na * frac, 0.0)
        mean = np.where(has, new_mean, mean)
        m2 = np.where(has, new_m2, m2)
        n = tot
    if was_1d is None:
        raise ValueError("column_stats: no chunks")
    with np.errstate(invalid="ignore", divide="ignore"):
        std = np.where(n > 1, np.sqrt(m2 / np.maximum(n - 1, 1)), np.nan)
    empty = n == 0
    mean = np.where(empty, np.nan, mean + shift)
    mn = np.where(empty, np.nan, mn)
    mx = np.where(empty, np.nan, mx)
    stats = {"min": mn, "max": mx, "mean": mean, "std": std, "n": n, "n_nan": nnan}
    if was_1d:
        stats = {k: v[0] for k, v in stats.items()}
    return stats


def _stats_for(S: np.ndarray, stats, was_1d: bool) -> dict:
    if stats is None:
        return column_stats([S])
    out = {}
    for key, v in stats.items():
        v = np.asarray(v)
        out[key] = v.reshape(1) if v.ndim == 0 else v
        if out[key].shape[0] not in (1, S.shape[1]):
            raise ValueError(f"stats[{key!r}] has {out[key].shape[0]} columns, S has {S.shape[1]}")
    return out


def minmax(S, stats: dict | None = None, eps: float = MINMAX_EPS) -> np.ndarray:
    """Column-wise ``(s - min) / (max - min + eps)`` (§5 default normalisation).

    ``stats`` (from :func:`column_stats` over the WHOLE pool) gives ``min``/``max``;
    without it they are taken from ``S`` itself. ``eps = 1e-8`` as in the MoS code.
    With ``eps = 0`` a constant column (max == min) maps to 0 instead of NaN.
    """
    S, one = _as_matrix(S)
    st = _stats_for(S, stats, one)
    lo = np.asarray(st["min"], dtype=np.float64)
    hi = np.asarray(st["max"], dtype=np.float64)
    den = hi - lo + eps
    with np.errstate(invalid="ignore", divide="ignore"):
        out = (S - lo) / den
    if eps == 0:
        out = np.where(den == 0, 0.0, out)
    return _out(out, one)


def zscore(S, stats: dict | None = None) -> np.ndarray:
    """Column-wise ``(s - mean) / std`` with the UNBIASED std (ddof=1) (§5, §6).

    ``stats`` from :func:`column_stats` over the whole pool, or computed from ``S``.
    A constant column (std == 0) maps to 0 (it carries no ranking information) instead
    of NaN/inf.
    """
    S, one = _as_matrix(S)
    st = _stats_for(S, stats, one)
    mu = np.asarray(st["mean"], dtype=np.float64)
    sd = np.asarray(st["std"], dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = (S - mu) / sd
    out = np.where(sd == 0, 0.0, out)
    return _out(out, one)


# ----------------------------------------------------------------------------- MoS
_BLOCK = 1 << 15  # rows per cache-sized block inside the row-wise functions


def _blocks(n: int):
    for a in range(0, n, _BLOCK):
        yield a, min(n, a + _BLOCK)


def _row_std_cols(C: np.ndarray) -> np.ndarray:
    """Population std of each column of the M x n array ``C`` (= rows of the scores)."""
    M = C.shape[0]
    mu = C[0].copy()
    for j in range(1, M):
        mu += C[j]
    mu /= M
    var = np.zeros(C.shape[1])
    d = np.empty(C.shape[1])
    for j in range(M):
        np.subtract(C[j], mu, out=d)
        d *= d
        var += d
    var /= M
    return np.sqrt(var, out=var)


def row_std(S) -> np.ndarray:
    """Population standard deviation (ddof=0) of each row, as MoS's ``sigma_i`` (§5).

    Elementwise column loops over cache-sized row blocks: a row's value does not
    depend on the chunk it is in.
    """
    S, _ = _as_matrix(S)
    out = np.empty(S.shape[0])
    for a, b in _blocks(S.shape[0]):
        out[a:b] = _row_std_cols(np.ascontiguousarray(S[a:b].T))
    return out


def mos_sigma_range(S_chunks: Iterable) -> tuple[float, float]:
    """``(sigma_min, sigma_max)`` of the per-row population std over the whole pool (§5).

    ``S_chunks`` yields the ALREADY NORMALISED ``N_c x M`` score chunks (the same rows
    that :func:`mos` will see). Rows with a NaN are ignored.
    """
    lo, hi = np.inf, -np.inf
    seen = False
    for chunk in S_chunks:
        sig = row_std(chunk)
        sig = sig[~np.isnan(sig)]
        if sig.shape[0]:
            seen = True
            lo = min(lo, float(sig.min()))
            hi = max(hi, float(sig.max()))
    if not seen:
        raise ValueError("mos_sigma_range: no rows without NaN")
    return lo, hi


def mos(S, tmin: float = 0.5, tmax: float = 1.5, sigma_range: tuple[float, float] | None = None) -> np.ndarray:
    """Mixture of Scores (docs/algorithms.md §5) of an ``N x M`` normalised score matrix.

    For each row i:

    * ``d_ij = -(1 / (M - 1)) * sum_k |S_ij - S_ik|`` (density: agreement with the
      other scores);
    * ``sigma_i`` = population std of row i; ``T_i = tmin + (tmax - tmin) *
      (sigma_i - sigma_min) / (sigma_max - sigma_min + 1e-8)`` with ``sigma_min`` /
      ``sigma_max`` over the WHOLE pool (pass ``sigma_range`` from
      :func:`mos_sigma_range` when ``S`` is a chunk; without it the range of ``S``
      itself is used);
    * ``MoS_i = sum_j softmax_j(d_ij / T_i) * S_ij``.

    The softmax subtracts the row maximum first (mathematically identical; avoids
    overflow for unnormalised inputs). All row reductions are column loops, so given
    the same ``sigma_range`` chunked and unchunked results are identical bit for bit.
    ``M == 1`` returns the column itself (softmax over one item is 1; ``d`` is 0/0).
    A row with a NaN gives NaN. The result is a convex combination of the row.
    """
    S, _ = _as_matrix(S)
    N, M = S.shape
    if M == 1:
        return S[:, 0].copy()
    if sigma_range is None:
        sigma = row_std(S)
        valid = sigma[~np.isnan(sigma)]
        if valid.shape[0] == 0:
            return np.full(N, np.nan)
        smin, smax = float(valid.min()), float(valid.max())
    else:
        smin, smax = float(sigma_range[0]), float(sigma_range[1])
    out = np.empty(N)
    for a, b in _blocks(N):
        out[a:b] = _mos_block(np.ascontiguousarray(S[a:b].T), tmin, tmax, smin, smax)
    return out


def _mos_block(C: np.ndarray, tmin: float, tmax: float, smin: float, smax: float) -> np.ndarray:
    """MoS of the rows of a block given as its M x n transpose ``C`` (see :func:`mos`)."""
    M, n = C.shape
    sigma = _row_std_cols(C)
    T = tmin + (tmax - tmin) * (sigma - smin) / (smax - smin + 1e-8)
    # sum_k |S_ij - S_ik|: each unordered pair once, added to both ends
    d = np.zeros((M, n))
    tmp = np.empty(n)
    for j in range(M):
        for k in range(j + 1, M):
            np.subtract(C[j], C[k], out=tmp)
            np.abs(tmp, out=tmp)
            d[j] += tmp
            d[k] += tmp
    d *= -(1.0 / (M - 1))  # density d_ij
    d /= T  # d_ij / T_i
    zmax = d[0].copy()
    for j in range(1, M):
        np.maximum(zmax, d[j], out=zmax)
    num = np.zeros(n)
    den = np.zeros(n)
    for j in range(M):
        np.subtract(d[j], zmax, out=tmp)
        np.exp(tmp, out=tmp)
        den += tmp
        tmp *= C[j]
        num += tmp
    num /= den
    return num


# ------------------------------------------------------------------- weighted sums
def weighted_sum(S, weights) -> np.ndarray:
    """``sum_j weights_j * S[:, j]`` (column loop: chunking-invariant bit for bit)."""
    S, _ = _as_matrix(S)
    w = np.asarray(weights, dtype=np.float64).reshape(-1)
    if w.shape[0] != S.shape[1]:
        raise ValueError(f"{w.shape[0]} weights for {S.shape[1]} score columns")
    out = np.zeros(S.shape[0])
    for j in range(S.shape[1]):
        out += w[j] * S[:, j]
    return out


def standardised_sum(S, stats: dict | None = None) -> np.ndarray:
    """Sum of the z-scored columns (ddof=1): the unweighted standardised-sum baseline."""
    Z = zscore(S, stats)
    Z, _ = _as_matrix(Z)
    return weighted_sum(Z, np.ones(Z.shape[1]))


def in_weighted_weights(imagenet_acc, r: float) -> np.ndarray:
    """IN-weighted standardised-sum weights (docs/algorithms.md §6, FLYT baseline).

    ``w_hat_i = (IN_i - min IN) / (max IN - min IN)``; ``w_i = w_hat_i + 1 / (r - 1)``
    with ``r`` in {2, 4, 8, 16} (so the best scorer weighs up to ``r`` times the worst:
    ``(1 + 1/(r-1)) / (1/(r-1)) = r``). ``r`` must be > 1. If all accuracies are equal,
    ``w_hat = 0`` and the weights are uniform.
    """
    acc = np.asarray(imagenet_acc, dtype=np.float64).reshape(-1)
    r = float(r)
    if not r > 1:
        raise ValueError(f"r must be > 1, got {r}")
    span = acc.max() - acc.min()
    w_hat = (acc - acc.min()) / span if span > 0 else np.zeros_like(acc)
    return w_hat + 1.0 / (r - 1.0)


def in_weighted_sum(S, imagenet_acc, r: float, stats: dict | None = None) -> np.ndarray:
    """IN-weighted standardised sum (§6): ``sum_i w_i * zscore(S)_i``."""
    return weighted_sum(zscore(S, stats), in_weighted_weights(imagenet_acc, r))


# ------------------------------------------------------------------ Sieve + CLIP
def sieve_clip_fusion(sieve, clip, a: float = 0.5, stats: dict | None = None) -> np.ndarray:
    """Sieve + CLIPScore (docs/algorithms.md §4): ``(1 - a) * mm(sieve) + a * mm(clip)``.

    ``mm`` is min-max normalisation over the WHOLE pool: pass ``stats`` =
    ``column_stats`` of the 2-column chunks ``np.column_stack([sieve, clip])``
    (column 0 = sieve, column 1 = clip). The paper's normalisation is a plain
    ``(s - min) / (max - min)`` (no epsilon, unlike MoS's 1e-8); a constant score maps
    to 0.
    """
    X = np.column_stack([np.asarray(sieve, dtype=np.float64), np.asarray(clip, dtype=np.float64)])
    Z = minmax(X, stats, eps=0.0)
    return (1.0 - a) * Z[:, 0] + a * Z[:, 1]


# ------------------------------------------------------------------- the fusion methods
COLUMN_STATS = ("min", "max", "mean", "std", "n")


def column_arrays(stats: dict) -> dict:
    """The per-column statistics of a fusion's pool statistics (as ``fusion_statistics`` stores
    them, JSON lists) as float64 arrays."""
    return {key: np.asarray(stats[key], dtype=np.float64) for key in COLUMN_STATS}


# A config ``fusions`` entry names one of these (``method``) and its ``scorers``. The workflow
# computes the pool statistics of the scorers' columns (``column_stats``, then the method's
# ``statistics``) in one job, then fuses each chunk alone from them (``run``), so fusing chunk by
# chunk gives the pool-at-once scores. A method with a ``head`` is a trained mixing head
# (`curate.selection.flyt`): the workflow trains it first (rule train_mixer) and applies it to
# each chunk's ``head_input``.

FUSIONS = Registry(
    "fusion method",
    key="method",
    common={
        "scorers": required(
            {"type": "array", "minItems": 1, "uniqueItems": True, "items": NAME},
            "the scorers fused, in this order",
            ref="scorers",
            paper=True,
        )
    },
)


def _n_scorers(n: int):
    def check(config: dict, where: str, entry: dict) -> None:
        if len(entry["scorers"]) != n:
            raise ConfigError(
                f"{where}.scorers: method {entry['method']!r} takes exactly {n} scorer(s), got {entry['scorers']}"
            )

    return check


def _normalised(S: np.ndarray, fusion: dict, stats: dict) -> np.ndarray:
    columns = column_arrays(stats)
    return zscore(S, columns) if fusion["normalise"] == "zscore" else minmax(S, columns)


@FUSIONS.register("none", check=_n_scorers(1))
def fuse_none(S: np.ndarray, stats: dict, fusion: dict) -> np.ndarray:
    """One scorer's raw score (for the single-scorer samplers)."""
    return S[:, 0].copy()


@FUSIONS.register("sum")
def fuse_sum(S: np.ndarray, stats: dict, fusion: dict) -> np.ndarray:
    """The plain sum of the raw scores (FLYT's "Sum" baseline)."""
    return weighted_sum(S, np.ones(S.shape[1]))


@FUSIONS.register(
    "mean",
    params={"normalise": optional({"enum": ["minmax", "zscore"]}, "minmax", "per-scorer normalisation over the pool")},
)
def fuse_mean(S: np.ndarray, stats: dict, fusion: dict) -> np.ndarray:
    """The mean of the pool-normalised scores (min-max by default): the baseline MoS's mixture is
    compared with (the same normalised scores, every scorer weighted alike)."""
    return _normalised(S, fusion, stats).mean(axis=1)


@FUSIONS.register("standardised_sum")
def fuse_standardised_sum(S: np.ndarray, stats: dict, fusion: dict) -> np.ndarray:
    """The sum of the scores z-scored over the pool, unbiased std (FLYT's "Standardized Sum")."""
    return standardised_sum(S, column_arrays(stats))


def input_filter_selection(config: dict, fusion: dict, scorer: str) -> str | None:
    """The selection whose model's ImageNet accuracy weighs ``scorer`` in an IN-weighted fusion
    (FLYT Table 2's left panel: the model trained on the subset filtered by that input alone).

    The fusion's ``accuracy.selections`` names it where the paper's number is another method's
    (FLYT prints one number for HYPE's three inputs, HYPE's own filter); otherwise it is the first
    configured selection that keeps the top ``accuracy.fraction`` of ``scorer`` by DataComp's rule
    (a ``clip_score`` selection of that scorer and fraction). None if there is none."""
    accuracy = fusion["accuracy"]
    named = (accuracy.get("selections") or {}).get(scorer)
    if named is not None:
        return named
    for name, entry in config.get("selections", {}).items():
        if (
            entry.get("method") == "clip_score"
            and entry.get("scorer") == scorer
            and entry.get("threshold") is None
            and entry.get("fraction") == accuracy["fraction"]
        ):
            return name
    return None


def accuracy_recipe(config: dict, fusion: dict) -> str:
    """The recipe the IN-weighted fusion's per-input filters are trained with: its own, else the scale's."""
    recipe = fusion["accuracy"].get("recipe")
    return recipe if recipe is not None else config["scales"][config["scale"]]["recipe"]


def _accuracy_inputs(ws, pool: str, fusion: dict) -> dict:
    return {"accuracy": ws.input_filter_evaluations(pool, fusion)}


def _check_accuracy(config: dict, where: str, entry: dict) -> None:
    accuracy = entry["accuracy"]
    suite, task = accuracy["suite"], accuracy["task"]
    require_entry(config, "suites", suite, f"{where}.accuracy.suite")
    if task not in config["suites"][suite]["tasks"]:
        raise ConfigError(f"{where}.accuracy.task: {task!r} is not in suites.{suite}.tasks")
    if "scales" in config:
        require_entry(config, "recipes", accuracy_recipe(config, entry), f"{where}.accuracy.recipe")
    for scorer, selection in (accuracy.get("selections") or {}).items():
        if scorer not in entry["scorers"]:
            raise ConfigError(f"{where}.accuracy.selections.{scorer}: not one of the fusion's scorers")
        require_entry(config, "selections", selection, f"{where}.accuracy.selections.{scorer}")
    for scorer in entry["scorers"]:
        if input_filter_selection(config, entry, scorer) is None:
            raise ConfigError(
                f"{where}.accuracy: no selection keeps the top {accuracy['fraction']} of {scorer!r} "
                f"(its accuracy weighs the input: add one, a clip_score selection, or name it in accuracy.selections)"
            )


def _in_weighted_statistics(matrices, stats: dict, fusion: dict, inputs: dict) -> dict:
    from curate.data.records import main_metric_of, read_records

    accuracies = [main_metric_of(read_records(path), fusion["accuracy"]["task"]) for path in inputs["accuracy"]]
    return {
        "accuracy": [float(a) for a in accuracies],
        "weights": in_weighted_weights(accuracies, fusion["r"]).tolist(),
    }


@FUSIONS.register(
    "in_weighted",
    params={
        "r": required({"type": "number", "exclusiveMinimum": 1}, "max-to-min weight ratio"),
        "accuracy": required(
            {
                "type": "object",
                "required": ["suite", "task"],
                "additionalProperties": False,
                "properties": {
                    "suite": NAME,
                    "task": {"type": "string"},
                    "recipe": {"oneOf": [NAME, {"type": "null"}], "default": None},
                    "fraction": {"type": "number", "exclusiveMinimum": 0, "maximum": 1, "default": 0.2},
                    "selections": {
                        "oneOf": [{"type": "object", "additionalProperties": NAME}, {"type": "null"}],
                        "default": None,
                    },
                },
            },
            "each input's weight: the accuracy on `task` of `suite` of the model (`recipe`, default the "
            "scale's) trained on the subset filtered by that input alone: its top `fraction`, or the "
            "selection `selections` names for it",
        ),
    },
    check=_check_accuracy,
    statistics=_in_weighted_statistics,
    stats_inputs=_accuracy_inputs,
)
def fuse_in_weighted(S: np.ndarray, stats: dict, fusion: dict) -> np.ndarray:
    """IN-weighted standardised sum: weights from the ImageNet accuracy of filtering with each input, and ``r``."""
    return weighted_sum(zscore(S, column_arrays(stats)), np.asarray(stats["weights"], dtype=np.float64))


def _mos_statistics(matrices, stats: dict, fusion: dict, inputs: dict) -> dict:
    return {"sigma_range": list(mos_sigma_range(_normalised(S, fusion, stats) for S in matrices()))}


@FUSIONS.register(
    "mos",
    params={
        "normalise": optional({"enum": ["minmax", "zscore"]}, "minmax", "per-scorer normalisation over the pool"),
        "tmin": optional({"type": "number"}, 0.5, "lowest temperature"),
        "tmax": optional({"type": "number"}, 1.5, "highest temperature"),
    },
    statistics=_mos_statistics,
)
def fuse_mos(S: np.ndarray, stats: dict, fusion: dict) -> np.ndarray:
    """Mixture of Scores over the pool-normalised scores, temperatures from the pool's row-std range."""
    return mos(_normalised(S, fusion, stats), fusion["tmin"], fusion["tmax"], sigma_range=tuple(stats["sigma_range"]))


@FUSIONS.register(
    "sieve_clip",
    params={"a": optional({"type": "number", "minimum": 0, "maximum": 1}, 0.5, "the CLIP score's weight")},
    check=_n_scorers(2),
)
def fuse_sieve_clip(S: np.ndarray, stats: dict, fusion: dict) -> np.ndarray:
    """Sieve + CLIPScore, ``(1 - a) * minmax(sieve) + a * minmax(clip)`` (scorers: [Sieve, CLIP])."""
    return sieve_clip_fusion(S[:, 0], S[:, 1], fusion["a"], column_arrays(stats))


#: FLYT's settings a fusion's ``hparams`` may change (`curate.selection.flyt.FlytHParams`).
FLYT_HPARAMS = {
    "steps": POSITIVE_INT,
    "warmup": {"type": "integer", "minimum": 0},
    "ref_lr": {"type": "number", "minimum": 0},
    "head_lr": {"type": "number", "minimum": 0},
    "weight_decay": {"type": "number", "minimum": 0},
    "head_weight_decay": {"type": "number", "minimum": 0},
    "upstream_batch": POSITIVE_INT,
    "downstream_batch": POSITIVE_INT,
    "tau_ds_init": {"type": ["number", "null"]},
    "tau_ds_lr": {"type": ["number", "null"]},
    "downstream_loss": {"enum": ["ce", "clip"]},
    "update_reference": {"type": "boolean"},
    "train_extractor": {"type": "boolean"},
}
#: FLYT's defaults of the settings a scale's ``flyt_hparams`` rebases (FLYT App. C.1, Table 7).
FLYT_DEFAULTS = {
    "steps": 5000,
    "warmup": 100,
    "ref_lr": 5e-5,
    "head_lr": 1e-3,
    "upstream_batch": 4096,
    "downstream_batch": 3072,
}

_FLYT_PARAMS = {
    "reference": required(
        {
            "type": "object",
            "additionalProperties": False,
            "oneOf": [{"required": ["selection", "recipe"]}, {"required": ["scorer"]}, {"required": ["model"]}],
            "properties": {"selection": NAME, "recipe": NAME, "scorer": NAME, "model": NAME},
        },
        "the reference CLIP's initialisation: a selection's model on the same pool, a scorer's model, or a "
        "`models` entry (fetched, a run of this workflow, or a seeded random initialisation)",
    ),
    "downstream": required(
        {
            "type": "object",
            "required": ["dataset"],
            "additionalProperties": False,
            "properties": {"dataset": NAME, "balanced": {"type": "boolean", "default": False}},
        },
        "the labelled downstream set (a `datasets` entry; its `classes` give the class names and templates); "
        "a group of sets is drawn in proportion to their sizes, or each equally often with `balanced`",
    ),
    "hparams": required(
        {"type": "object", "additionalProperties": False, "properties": FLYT_HPARAMS},
        "FlytHParams overrides",
    ),
    "seed": optional(SEED, 0, "the mixer training's seed"),
    "head_pool": optional(
        NAME,
        None,
        "the pool whose trained head is applied (default: the pool fused); FLYT Table 4 applies the "
        "head trained at medium to the small pool, not retrained",
        ref="pools",
    ),
}


def _check_flyt(config: dict, where: str, entry: dict) -> None:
    from curate.data.datasets import dataset_format

    reference = entry["reference"]
    if "scorer" in reference:
        require_entry(config, "scorers", reference["scorer"], f"{where}.reference.scorer")
    elif "model" in reference:
        require_entry(config, "models", reference["model"], f"{where}.reference.model")
        if config["models"][reference["model"]]["library"] not in CLIP_MODEL_LIBRARIES:
            raise ConfigError(f"{where}.reference.model: {reference['model']!r} is not a CLIP model")
    else:
        require_entry(config, "selections", reference["selection"], f"{where}.reference.selection")
        require_entry(config, "recipes", reference["recipe"], f"{where}.reference.recipe")
    dataset = entry["downstream"]["dataset"]
    require_entry(config, "datasets", dataset, f"{where}.downstream.dataset")
    found = config["datasets"][dataset]
    fmt = dataset_format(found)
    if fmt == "pairs":
        raise ConfigError(f"{where}.downstream.dataset: {dataset!r} holds image-text pairs, not a labelled set")
    if fmt != "group" and not found.get("classes"):
        raise ConfigError(f"{where}.downstream.dataset: {dataset!r} names no `classes` (its class names and templates)")
    if fmt == "group" and entry["hparams"].get("downstream_loss", "ce") != "clip":
        raise ConfigError(
            f"{where}.downstream.dataset: {dataset!r} is a group of sets, whose classes differ: it takes "
            "hparams.downstream_loss: clip (FLYT's E-FLYT-22)"
        )
    if entry["hparams"].get("train_extractor") and entry["method"] != "eflyt":
        raise ConfigError(f"{where}.hparams.train_extractor: only E-FLYT has a feature extractor")


#: The `models` libraries that are open_clip CLIPs (a reference or a scorer may load them).
CLIP_MODEL_LIBRARIES = ("open_clip", "trained", "random")


def _check_eflyt(config: dict, where: str, entry: dict) -> None:
    _n_scorers(1)(config, where, entry)
    _check_flyt(config, where, entry)
    scorer = config["scorers"].get(entry["scorers"][0])
    if scorer is not None and scorer["library"] != "open_clip":
        raise ConfigError(f"{where}.scorers: E-FLYT reads a CLIP scorer's embeddings")


def _embeddings_input(ws, pool: str, fusion: dict, chunk: str) -> dict:
    if fusion["hparams"].get("train_extractor"):
        # the head's features come from the extractor trained with it (in the mixer file): the
        # chunk's shards are embedded again
        return {"shards": ws.chunk_input(pool, chunk)}
    return {"embeddings": ws.path("embeddings", pool=pool, scorer=fusion["scorers"][0], chunk=chunk)}


def flyt_stand_ins(fusion: dict, mapping: dict) -> None:
    """In place: a FLYT fusion's reference model and downstream set replaced by their stand-ins
    (`curate.workflow.scales.apply_stand_ins`)."""
    reference = fusion["reference"]
    for key in ("model", "scorer"):
        if reference.get(key) is not None:
            reference[key] = mapping.get(reference[key], reference[key])
    downstream = fusion["downstream"]
    downstream["dataset"] = mapping.get(downstream["dataset"], downstream["dataset"])


def move_flyt_hparams(hparams: dict, base: dict | None) -> dict:
    """A FLYT fusion's ``hparams`` at a scale whose base settings are ``base`` (its
    ``flyt_hparams``; None: FLYT's own). Each base setting the fusion does not change is the
    base's; one it changes is the base's times the factor by which the fusion's value differs
    from FLYT's default (`FLYT_DEFAULTS`): FLYT Table 12's 12 500 steps (2.5 x 5000) are 500 of
    the tiny scale's 200. Counts are rounded and at least 1 (warm-up at least 0, below the
    steps); other settings are kept as given."""
    if not base:
        return dict(hparams)
    out = dict(hparams)
    for key, value in base.items():
        if key not in hparams:
            out[key] = value
            continue
        moved = value * (hparams[key] / FLYT_DEFAULTS[key])
        out[key] = max(0 if key == "warmup" else 1, int(round(moved))) if isinstance(value, int) else float(moved)
    if "warmup" in out and "steps" in out and out["warmup"] >= out["steps"]:
        out["warmup"] = max(0, out["steps"] - 1)
    return out


@FUSIONS.register(
    "mflyt",
    params={
        **_FLYT_PARAMS,
        "standardise": optional(
            {"type": "boolean"},
            True,
            "the head's inputs are the scores standardised over the pool (FLYT); false: the raw scores (FLYT Table 8)",
        ),
        "zero_init": optional(
            {"type": "boolean"}, False, "start the mixing head at zero (FLYT: nn.Linear's initialisation)"
        ),
    },
    check=_check_flyt,
    head="mixing",
    head_input="scores",
    stand_ins=flyt_stand_ins,
)
def fuse_mflyt(S: np.ndarray, stats: dict, fusion: dict) -> np.ndarray:
    """M-FLYT's head inputs: the scores standardised over the pool (or raw, ``standardise: false``)."""
    return zscore(S, column_arrays(stats)) if fusion["standardise"] else np.asarray(S, dtype=np.float64)


@FUSIONS.register(
    "eflyt",
    params={
        **_FLYT_PARAMS,
        "hidden": optional(
            {"oneOf": [POSITIVE_INT, {"type": "null"}]},
            None,
            "hidden units of the GLU head (null: its input width, FLYT's `hidden_dim_mod` 1: 1024 for B/32)",
        ),
    },
    check=_check_eflyt,
    head="glu",
    head_input="embeddings",
    chunk_inputs=_embeddings_input,
    stand_ins=flyt_stand_ins,
)
def fuse_eflyt(S: np.ndarray, stats: dict, fusion: dict) -> np.ndarray:
    """E-FLYT: a GLU head over one CLIP scorer's L2-normalised image and text embeddings."""
    raise ValueError("E-FLYT fuses a chunk's embeddings through its trained head, not a score matrix")
