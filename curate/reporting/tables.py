"""Assemble the workflow's result tables from subsets, ground truth and evaluation records."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from curate.data.integrity import read_json
from curate.data.records import aggregate, read_records
from curate.data.subset import load_subset, u8u8_to_uids


def load_ground_truth(paths: list) -> pd.DataFrame:
    truth = pd.concat([pd.read_parquet(p, columns=["uid", "is_clean", "noise_type"]) for p in paths], ignore_index=True)
    if truth["uid"].duplicated().any():
        raise ValueError(f"duplicate uid {truth['uid'][truth['uid'].duplicated()].iloc[0]} in the ground truth")
    return truth


def selection_quality(subset: np.ndarray, truth: pd.DataFrame | None) -> dict:
    """Subset size (repeats counted), unique uids, and precision/recall of the kept set against the clean uids.

    Precision = clean kept / unique kept; recall = clean kept / clean in the pool. Without ground truth
    (real pools) both are NaN.
    """
    unique = set(u8u8_to_uids(subset))
    quality = {"subset_size": int(len(subset)), "unique_uids": len(unique)}
    if truth is None:
        return quality | {"precision": math.nan, "recall": math.nan}
    clean = set(truth.loc[truth["is_clean"].astype(bool), "uid"])
    kept_clean = len(unique & clean)
    quality["precision"] = kept_clean / len(unique) if unique else math.nan
    quality["recall"] = kept_clean / len(clean) if clean else math.nan
    return quality


def evaluation_columns(records: list[dict], groups: dict[str, list[str]]) -> dict:
    """Group averages (Average first) then every task's main metric, keyed by task key."""
    columns = aggregate(records, groups)
    ordered = {"Average": columns.pop("Average")} | columns
    for record in records:
        main = record["metrics"].get("main_metric")
        ordered[record["key"]] = math.nan if main is None else float(main)
    return ordered


def absent_uids(reshard) -> float:
    """How many of a subset's uids its reshard did not find in the pool (its meta.json's
    ``missing_uids``); NaN without a reshard."""
    if reshard is None:
        return math.nan
    meta = read_json(Path(reshard) / "meta.json", "reshard meta.json")
    return int(meta["missing_uids"])


LABELS = ("selection", "pool", "recipe", "suite")

#: The row every other row is compared with, seed by seed (paired differences).
BASELINE = "no_filter"


def _value(value) -> float:
    return math.nan if value is None else float(value)


def seed_means(runs: list[dict]) -> dict:
    """Per column, the mean over seeds of ``evaluation_columns`` dicts (one per seed, same keys);
    a column missing (None or NaN) in any seed is NaN."""
    return {key: float(np.mean([_value(run[key]) for run in runs])) for key in runs[0]}


def seed_columns(per_seed: dict[str, list[dict]], columns: list[str], baseline: str | None = BASELINE) -> pd.DataFrame:
    """The seed statistics of each row (``per_seed``: selection -> one dict of column values per
    seed), one row per selection in order: ``seeds``; for each of ``columns``, ``<c>_lo95`` and
    ``<c>_hi95``, the 95 % t-interval of its mean over the seeds (blank, NaN, with one seed);
    and where ``baseline`` is a row, ``Average_vs_<baseline>`` with its 95 % t-interval: the mean
    of the per-seed differences to the baseline trained with the same seed
    (`curate.reporting.stats`)."""
    from curate.reporting.stats import paired_difference, t_interval

    def interval(values):
        values = [_value(v) for v in values]
        return (math.nan,) * 3 if any(math.isnan(v) for v in values) else t_interval(values)

    rows = []
    base = per_seed.get(baseline) if baseline else None
    for runs in per_seed.values():
        row = {"seeds": len(runs)}
        for column in columns:
            _, row[f"{column}_lo95"], row[f"{column}_hi95"] = interval([run[column] for run in runs])
        if base is not None:
            name = f"Average_vs_{baseline}"
            values, reference = [_value(r["Average"]) for r in runs], [_value(r["Average"]) for r in base]
            if len(values) != len(reference) or any(math.isnan(v) for v in values + reference):
                row[name], row[f"{name}_lo95"], row[f"{name}_hi95"] = (math.nan,) * 3
            else:
                row[name], row[f"{name}_lo95"], row[f"{name}_hi95"] = paired_difference(values, reference)
        rows.append(row)
    return pd.DataFrame(rows)


def read_runs(row: dict, groups: dict[str, list[str]]) -> list[dict]:
    """``evaluation_columns`` of each seed's evaluation of a table row (``evaluations``, else its
    one ``evaluation``)."""
    return [evaluation_columns(read_records(path), groups) for path in row.get("evaluations") or [row["evaluation"]]]


def leaderboard(
    rows: list[dict], truth_paths: list | None, groups: dict[str, list[str]], labels: tuple[str, ...] = LABELS
) -> pd.DataFrame:
    """One row per selection: its labels, subset quality and evaluation (table1's layout).

    Each input row holds the `labels` (default: selection, pool, recipe, suite), subset (a .npy
    path), its evaluations, one jsonl path per seed (``evaluations``; or one ``evaluation``), and
    reshard (its folder: ``absent_uids`` counts the subset's uids the pool did not hold; NaN for a
    row without one). The evaluation columns are means over the seeds; `seed_columns` follow them.
    """
    truth = load_ground_truth(truth_paths) if truth_paths else None
    table, per_seed = [], {}
    for row in rows:
        quality = selection_quality(load_subset(row["subset"]), truth)
        absent = {"absent_uids": absent_uids(row.get("reshard"))}
        runs = read_runs(row, groups)
        per_seed[row["selection"]] = runs
        table.append({k: row[k] for k in labels} | quality | absent | seed_means(runs))
    if not table:
        return pd.DataFrame(table)
    seeds = seed_columns(per_seed, ["Average", *groups])
    return pd.concat([pd.DataFrame(table), seeds], axis=1)


COMPARISON_LABELS = ("selection", "fusion", "scorers", "sampler", "status", "pool", "recipe", "suite")


def comparison_table(
    rows: list[dict], pending: list[dict], truth_paths: list | None, groups: dict[str, list[str]]
) -> pd.DataFrame:
    """Every selection head to head (table2's layout): leaderboard() of the built `rows`, labelled
    with fusion, scorers and sampler and status "ok", then one row per `pending` method (labels
    and its status, e.g. "not built yet: ...") with empty numbers."""
    built = leaderboard([row | {"status": "ok"} for row in rows], truth_paths, groups, COMPARISON_LABELS)
    waiting = pd.DataFrame(
        [{k: row.get(k, "") for k in COMPARISON_LABELS} for row in pending], columns=list(COMPARISON_LABELS)
    )
    if built.empty:
        return waiting
    if waiting.empty:
        return built
    table = pd.concat([built, waiting], ignore_index=True)[list(built.columns)]
    return table.astype({"subset_size": "Int64", "unique_uids": "Int64", "absent_uids": "Int64", "seeds": "Int64"})


def write_table(table: pd.DataFrame, path) -> None:
    table.to_csv(path, index=False, float_format="%.4f")
