"""The papers' claims, measured on the scale's runs (``results/claims.csv``).

Each claim of the config's ``claims`` is one or more comparisons; each comparison is measured by
one pure function of its kind, whose result is a difference oriented so that a positive value
supports the claim, with a 95 % interval and a verdict (`curate.reporting.stats.verdict`:
``holds`` when the interval lies above 0, ``does not hold`` below 0, ``unresolved`` when it spans
0; with one seed the sign decides and the row says so):

- ``at_least`` ("A >= B"): the mean over seeds of A's metric minus B's, trained with the same
  seeds, with the t-interval of the per-seed differences;
- ``at_least_each_input``: ``at_least`` against each scorer of A's fusion alone (the selection
  that keeps that scorer's top share of the pool, the fraction A keeps);
- ``drops_noise`` ("A drops the noise B keeps"): the share of the pool's samples of one noise
  type that B keeps minus the share A keeps, with a paired bootstrap interval over those samples;
- ``rank_correlation`` (cleaner subsets train better models): Spearman's rho between the
  selections' precision (equal subset sizes) and their mean downstream Average, with a bootstrap
  interval over selections and seeds.

A claim is a result either way: a claim that does not hold here is reported as such.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from curate.reporting.stats import bootstrap_spearman, paired_bootstrap_mean, paired_difference, verdict

COLUMNS = (
    "claim",
    "source",
    "comparison",
    "metric",
    "measurement",
    "low95",
    "high95",
    "interval",
    "verdict",
    "status",
)


def _result(measurement: float, low: float, high: float, interval: str) -> dict:
    return {
        "measurement": measurement,
        "low95": low,
        "high95": high,
        "interval": interval if not math.isnan(low) else "none (one seed)",
        "verdict": verdict(low, high, measurement),
    }


def measure_at_least(values: list[float], baseline: list[float]) -> dict:
    """``A >= B`` from the per-seed values of A and of B (the same seeds, in order)."""
    mean, low, high = paired_difference(values, baseline)
    return _result(mean, low, high, f"t-interval of the paired differences over {len(values)} seeds")


def measure_drops_noise(kept: np.ndarray, kept_by_baseline: np.ndarray, n_boot: int = 2000, seed: int = 0) -> dict:
    """``A drops the samples B keeps``: per sample of the noise type, whether B keeps it and
    whether A does; the measurement is B's kept share minus A's."""
    kept, base = np.asarray(kept, dtype=np.float64), np.asarray(kept_by_baseline, dtype=np.float64)
    if kept.shape != base.shape:
        raise ValueError(f"{kept.shape} kept flags against {base.shape} of the baseline")
    if len(kept) == 0:
        return _result(math.nan, math.nan, math.nan, "no samples of the noise type") | {"verdict": "not measured"}
    mean, low, high = paired_bootstrap_mean(base - kept, n_boot=n_boot, seed=seed)
    return _result(mean, low, high, f"bootstrap over the pool's {len(kept)} samples of the noise type")


def measure_rank_correlation(precision: list[float], averages: list[list[float]], n_boot: int = 2000) -> dict:
    """Spearman's rho of precision against the mean Average, one value per selection."""
    rho, low, high = bootstrap_spearman(precision, averages, n_boot=n_boot)
    seeds = sorted({len(a) for a in averages})
    return _result(
        rho, low, high, f"bootstrap over {len(precision)} selections and their {'/'.join(map(str, seeds))} seeds"
    )


def claims_table(comparisons: list[dict], measured: list[dict]) -> pd.DataFrame:
    """The claims table: each comparison's labels (claim, source, comparison, metric, status)
    beside its measurement (empty where the comparison could not be measured)."""
    rows = []
    for comparison, result in zip(comparisons, measured):
        row = {k: comparison.get(k, "") for k in ("claim", "source", "comparison", "metric")}
        row |= {k: math.nan for k in ("measurement", "low95", "high95")} | {"interval": "", "verdict": ""}
        row |= result or {}
        row["status"] = comparison.get("status", "ok")
        rows.append(row)
    return pd.DataFrame(rows, columns=list(COLUMNS))


def _metric_values(paths: list, metric: str, groups: dict) -> list[float]:
    from curate.data.records import read_records
    from curate.reporting.tables import evaluation_columns

    values = []
    for path in paths:
        columns = evaluation_columns(read_records(path), groups)
        if metric not in columns:
            raise ValueError(f"{path}: no metric {metric!r} (Average, a group or a task key: {sorted(columns)})")
        values.append(math.nan if columns[metric] is None else float(columns[metric]))
    return values


def measure_comparison(comparison: dict, groups: dict, truth: pd.DataFrame | None) -> dict | None:
    """Read what one comparison of `curate.workflow.claims.claim_comparisons` names and measure
    it by its kind; None when its status is not "ok"."""
    from curate.data.subset import load_subset
    from curate.reporting.noise import kept_mask
    from curate.reporting.tables import selection_quality

    if comparison["status"] != "ok":
        return None
    kind, selections = comparison["kind"], comparison["selections"]
    if kind in ("at_least", "at_least_each_input"):
        a, b = (_metric_values(comparison["evaluations"][s], comparison["metric"], groups) for s in selections)
        return measure_at_least(a, b)
    if kind == "drops_noise":
        noise = comparison["metric"].removeprefix("kept ")
        rows = (truth["noise_type"] == noise).to_numpy()
        kept, base = (kept_mask(load_subset(comparison["subsets"][s]), truth)[rows] for s in selections)
        return measure_drops_noise(kept, base)
    if kind == "rank_correlation":
        precision = [selection_quality(load_subset(comparison["subsets"][s]), truth)["precision"] for s in selections]
        averages = [_metric_values(comparison["evaluations"][s], "Average", groups) for s in selections]
        return measure_rank_correlation(precision, averages)
    raise ValueError(f"unknown claim kind {kind!r}")
