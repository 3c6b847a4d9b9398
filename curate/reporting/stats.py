"""Statistics over training seeds and selections: intervals, paired differences, rank correlation.

Every table row trained with k seeds (config ``seeds``: replicates of the row's recipe, each with
the recipe's seed plus the replicate's index) has k values of each metric. What the tables report
of them:

- the **mean** over the seeds and its **95 % t-interval** (Student's t with k - 1 degrees of
  freedom: ``mean ± t_{0.975, k-1} · sd / sqrt(k)``, ``sd`` with ``ddof=1``), which assumes the
  seeds' values are a normal sample; with one seed there is no interval and its bounds are NaN
  (written as blank cells), never a fake zero width;
- the **paired difference** to a baseline row trained with the same seeds (``no_filter``): the
  t-interval of the per-seed differences, which removes what a seed does to both rows alike;
- **Spearman's rank correlation** between two per-selection quantities (precision at equal
  subset size against the downstream Average), with a percentile **bootstrap** interval over
  selections and, inside each drawn selection, over its seeds.

Pure functions on numbers; nothing here reads files.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

LEVEL = 0.95


def t_quantile(level: float, df: int) -> float:
    """The two-sided ``level`` quantile of Student's t with ``df`` degrees of freedom."""
    from scipy.stats import t

    if df < 1:
        raise ValueError(f"a t quantile needs df >= 1, got {df}")
    return float(t.ppf(0.5 + level / 2, df))


def _finite(values: Sequence[float]) -> np.ndarray:
    array = np.asarray([np.nan if v is None else v for v in values], dtype=np.float64)
    if np.isnan(array).any():
        raise ValueError(f"a value is missing (NaN or None) among {list(values)}")
    return array


def t_interval(values: Sequence[float], level: float = LEVEL) -> tuple[float, float, float]:
    """``(mean, low, high)``: the mean of ``values`` and its ``level`` t-interval; low and high are
    NaN with fewer than two values (no interval from one seed). A missing value raises."""
    array = _finite(values)
    if len(array) == 0:
        return math.nan, math.nan, math.nan
    mean = float(array.mean())
    if len(array) < 2:
        return mean, math.nan, math.nan
    half = t_quantile(level, len(array) - 1) * float(array.std(ddof=1)) / math.sqrt(len(array))
    return mean, mean - half, mean + half


def paired_difference(
    values: Sequence[float], baseline: Sequence[float], level: float = LEVEL
) -> tuple[float, float, float]:
    """``t_interval`` of the per-seed differences ``values[i] - baseline[i]`` (the same seed i
    trained both rows)."""
    a, b = _finite(values), _finite(baseline)
    if len(a) != len(b):
        raise ValueError(f"paired values need the same seeds: {len(a)} values against {len(b)} baseline values")
    return t_interval(a - b, level)


def ranks(values: Sequence[float]) -> np.ndarray:
    """Ranks from 1, ties given the mean of the ranks they span."""
    array = np.asarray(values, dtype=np.float64)
    order = np.argsort(array, kind="stable")
    out = np.empty(len(array), dtype=np.float64)
    i = 0
    while i < len(array):
        j = i
        while j + 1 < len(array) and array[order[j + 1]] == array[order[i]]:
            j += 1
        out[order[i : j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return out


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's rank correlation (Pearson's of the tie-averaged ranks); NaN when either side is
    constant or fewer than two pairs are given."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if len(x) != len(y):
        raise ValueError(f"{len(x)} x values against {len(y)} y values")
    if len(x) < 2:
        return math.nan
    rx, ry = ranks(x), ranks(y)
    rx, ry = rx - rx.mean(), ry - ry.mean()
    denominator = math.sqrt(float((rx * rx).sum() * (ry * ry).sum()))
    return math.nan if denominator == 0 else float((rx * ry).sum() / denominator)


def bootstrap_spearman(
    x: Sequence[float],
    y_per_seed: Sequence[Sequence[float]],
    n_boot: int = 2000,
    seed: int = 0,
    level: float = LEVEL,
) -> tuple[float, float, float]:
    """``(rho, low, high)``: Spearman's rho between ``x`` (one value per selection) and the mean
    over seeds of ``y_per_seed`` (one list of seed values per selection), with a percentile
    bootstrap interval: each replicate draws the selections with replacement and, for each drawn
    selection, its seeds with replacement. Replicates whose rho is undefined (a constant side) are
    left out; NaN bounds when fewer than two selections are given."""
    x = np.asarray(x, dtype=np.float64)
    ys = [_finite(v) for v in y_per_seed]
    if len(ys) != len(x):
        raise ValueError(f"{len(x)} x values against {len(ys)} selections of y")
    rho = spearman(x, [v.mean() for v in ys])
    if len(x) < 2:
        return rho, math.nan, math.nan
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(n_boot):
        pick = rng.integers(len(x), size=len(x))
        y = [ys[i][rng.integers(len(ys[i]), size=len(ys[i]))].mean() for i in pick]
        value = spearman(x[pick], y)
        if not math.isnan(value):
            draws.append(value)
    if not draws:
        return rho, math.nan, math.nan
    low, high = np.quantile(draws, [(1 - level) / 2, (1 + level) / 2])
    return rho, float(low), float(high)


def paired_bootstrap_mean(
    differences: Sequence[float], n_boot: int = 2000, seed: int = 0, level: float = LEVEL
) -> tuple[float, float, float]:
    """``(mean, low, high)`` of per-item paired differences (e.g. kept by A minus kept by B, per
    sample) with a percentile bootstrap interval over the items; NaN bounds with fewer than two."""
    d = _finite(differences)
    if len(d) == 0:
        return math.nan, math.nan, math.nan
    mean = float(d.mean())
    if len(d) < 2:
        return mean, math.nan, math.nan
    rng = np.random.default_rng(seed)
    means = d[rng.integers(len(d), size=(n_boot, len(d)))].mean(axis=1)
    low, high = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
    return mean, float(low), float(high)


def verdict(low: float, high: float, mean: float) -> str:
    """Whether a claim "A >= B", measured as the difference A - B, holds: ``holds`` when its
    interval lies above 0, ``does not hold`` when it lies below 0, ``unresolved`` when it spans 0;
    with no interval (one seed) the sign of the mean decides, marked ``(one seed)``."""
    if math.isnan(mean):
        return "not measured"
    if math.isnan(low) or math.isnan(high):
        return ("holds" if mean >= 0 else "does not hold") + " (one seed, no interval)"
    if low > 0:
        return "holds"
    if high < 0:
        return "does not hold"
    return "unresolved (interval spans 0)"
