"""What only a synthetic pool's ground truth shows: which noise each selection keeps, and whether a
cleaner subset trains a better model.

- ``results/noise_kept.csv``: per selection, the share of the pool's samples of each noise type
  (and of the clean ones) its subset keeps (unique uids: a sample SCS repeats counts once).
- ``results/precision_vs_average.csv``: per selection of equal subset size (the top 20 % of a
  score), its precision against the clean uids and its downstream Average over seeds, with
  Spearman's rank correlation between the two and its bootstrap interval over selections and
  seeds (`curate.reporting.stats.bootstrap_spearman`).

Pure functions on subsets, ground truth frames and per-seed evaluation columns.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from curate.data.subset import u8u8_to_uids

CLEAN = "clean"


def noise_types(truth: pd.DataFrame) -> list[str]:
    """The pool's sample types, clean first, then its noise types in the generator's order."""
    from curate.data.synthetic.pool import NOISE_TYPES

    present = set(truth["noise_type"])
    return [CLEAN] + [t for t in NOISE_TYPES if t in present] + sorted(present - set(NOISE_TYPES) - {CLEAN})


def kept_mask(subset: np.ndarray, truth: pd.DataFrame) -> np.ndarray:
    """For each ground-truth row, whether the subset keeps its uid (at least once)."""
    kept = set(u8u8_to_uids(subset))
    return truth["uid"].isin(kept).to_numpy()


def kept_shares(subset: np.ndarray, truth: pd.DataFrame) -> dict[str, float]:
    """Per sample type of the pool (:func:`noise_types`), the share of its samples the subset keeps."""
    mask = kept_mask(subset, truth)
    types = truth["noise_type"].to_numpy()
    return {t: float(mask[types == t].mean()) for t in noise_types(truth)}


def noise_kept_table(rows: list[dict], subsets: dict[str, np.ndarray], truth: pd.DataFrame) -> pd.DataFrame:
    """One row per selection (``rows``: dicts with ``selection`` and any labels to keep), its
    unique uids, precision, and ``kept_<type>`` for each sample type of the pool."""
    from curate.reporting.tables import selection_quality

    table = []
    for row in rows:
        subset = subsets[row["selection"]]
        quality = selection_quality(subset, truth)
        shares = kept_shares(subset, truth)
        table.append(
            dict(row)
            | {"unique_uids": quality["unique_uids"], "precision": quality["precision"]}
            | {f"kept_{t}": share for t, share in shares.items()}
        )
    return pd.DataFrame(table)


def precision_vs_average(
    rows: list[dict], n_boot: int = 2000, seed: int = 0
) -> tuple[pd.DataFrame, tuple[float, float, float]]:
    """Per selection (``rows``: ``selection``, ``unique_uids``, ``precision`` and ``averages``,
    its Average per seed), the precision, the mean Average over seeds and its t-interval; and
    ``(rho, low, high)``: Spearman's rho between precision and mean Average with its 95 %
    bootstrap interval over selections and seeds."""
    from curate.reporting.stats import bootstrap_spearman, t_interval

    table = []
    for row in rows:
        mean, low, high = t_interval(row["averages"])
        table.append(
            {
                "selection": row["selection"],
                "unique_uids": row["unique_uids"],
                "precision": row["precision"],
                "seeds": len(row["averages"]),
                "Average": mean,
                "Average_lo95": low,
                "Average_hi95": high,
            }
        )
    if not rows:
        return pd.DataFrame(table), (math.nan, math.nan, math.nan)
    rho = bootstrap_spearman([r["precision"] for r in rows], [r["averages"] for r in rows], n_boot=n_boot, seed=seed)
    return pd.DataFrame(table), rho


def run_metrics(records: list[dict], groups: dict, probes: tuple[str, ...] = ()) -> dict:
    """One evaluation's Average, groups and task main metrics (`evaluation_columns`), and for each
    probe task (no main metric: it stays out of the Average) its ``acc1``."""
    from curate.reporting.tables import evaluation_columns

    columns = evaluation_columns(records, groups)
    by_key = {r["key"]: r for r in records}
    for probe in probes:
        if probe in by_key:
            columns[probe] = float(by_key[probe]["metrics"]["acc1"])
    return columns


def noise_harm_table(per_seed: dict[str, list[dict]], labels: dict[str, dict], control: str) -> pd.DataFrame:
    """What each noise type does to a model (long format: one row per selection and metric):
    ``per_seed`` maps each selection (clean samples with one noise type swapped in, and the
    ``control``: the same clean samples alone) to one dict of metric values per seed; ``labels``
    to its ``noise_type`` and ``share``. Columns: the mean over seeds and its 95 % t-interval,
    and ``vs_clean``: the paired difference to the control trained with the same seeds, with its
    t-interval. A negative ``vs_clean`` is harm (the probe ``typographic`` counts how often a model
    follows written text: a positive one is the OCR shortcut)."""
    from curate.reporting.stats import paired_difference, t_interval

    base = per_seed[control]
    rows = []
    for selection, runs in per_seed.items():
        for metric in runs[0]:
            values = [math.nan if r[metric] is None else r[metric] for r in runs]
            reference = [math.nan if r[metric] is None else r[metric] for r in base]
            if any(math.isnan(v) for v in values + reference):
                continue
            mean, low, high = t_interval(values)
            diff = paired_difference(values, reference) if len(values) == len(reference) else (math.nan,) * 3
            rows.append(
                {"selection": selection}
                | labels[selection]
                | {"metric": metric, "seeds": len(values), "mean": mean, "lo95": low, "hi95": high}
                | {"vs_clean": diff[0], "vs_clean_lo95": diff[1], "vs_clean_hi95": diff[2]}
            )
    return pd.DataFrame(rows)
