"""The papers' figures as PNG (``results/figures/<figure>.png``), from the runs at the current scale.

Figure types (config ``figures``):

- ``curve``: a paper metric against x (Sieve Fig. 4: accuracy against the fraction kept; FLYT
  Fig. 3: accuracy against SCS's repetition penalty alpha), one line per series of
  ``{selection: x}``, one panel per metric; the metric is read through the suite's
  ``paper_metrics`` (curate.reporting.paper_tables), in percent.
- ``repetitions``: FLYT Fig. 2, how many samples a subset holds exactly k times.
- ``disparity``: MoS's score disparity, the per-sample standard deviation across a fusion's
  scorers after min-max normalisation over the pool (unbiased, as MoS's temperatures use).
- ``noise_scores``: each scorer's score distribution per noise type of a synthetic pool's
  ground truth (what a filter can and cannot tell apart).

`curate.workflow.figure_plans` says which files a figure reads at the current scale (or that
the scale's pool cannot give them); the draw functions here write the PNG.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from curate.data.records import read_records
from curate.reporting.paper_tables import metric_value, paper_metric_spec

FONT = {
    "font.size": 13,
    "axes.titlesize": 14,
    "axes.labelsize": 13,
    "legend.fontsize": 11,
    "xtick.labelsize": 12,
    "ytick.labelsize": 12,
    "figure.titlesize": 15,
}

METRIC_LABELS = {
    "imagenet_acc1": "ImageNet top-1 (%)",
    "average": "Average (%)",
    "vtab": "VTAB (%)",
    "retrieval": "Retrieval (%)",
    "imagenet_dist_shifts": "ImageNet dist. shifts (%)",
}


# ---------------------------------------------------------------------------------------------
# Plans (pure)


# ---------------------------------------------------------------------------------------------
# Computations (pure)


def repetition_histogram(subset: np.ndarray) -> dict[int, int]:
    """{k: number of distinct samples the subset holds exactly k times}."""
    from curate.data.subset import subset_counts

    if len(subset) == 0:
        return {}
    _, counts = subset_counts(subset)
    ks, n = np.unique(counts, return_counts=True)
    return {int(k): int(c) for k, c in zip(ks, n)}


def score_disparity(S: np.ndarray) -> np.ndarray:
    """Per-sample unbiased std across the columns of ``S`` after min-max normalising each column over the pool."""
    S = np.asarray(S, dtype=np.float64)
    lo, hi = S.min(axis=0), S.max(axis=0)
    normalised = (S - lo) / np.maximum(hi - lo, 1e-8)
    return normalised.std(axis=1, ddof=1)


def curve_values(points: list[dict], records: dict, suite: dict, metric: str) -> pd.DataFrame:
    """series, x, value (percent; the mean over the point's seeds, ``evaluations``, else its one
    ``evaluation``) and the value's 95 % t-interval ``low``, ``high`` (NaN with one seed) of every
    point, sorted by series then x."""
    from curate.reporting.stats import t_interval

    spec = paper_metric_spec(suite, metric)
    rows = []
    for point in points:
        paths = point.get("evaluations") or [point["evaluation"]]
        values = [metric_value(records[p], suite.get("groups", {}), spec) for p in paths]
        if any(v is None for v in values):
            mean = low = high = None
        else:
            mean, low, high = (100 * v for v in t_interval(values))
        rows.append({"series": point["series"], "x": point["x"], "value": mean, "low": low, "high": high})
    columns = ["series", "x", "value", "low", "high"]
    return pd.DataFrame(rows, columns=columns).sort_values(["series", "x"], kind="stable")


def join_scores(paths_by_scorer: dict[str, list]) -> pd.DataFrame:
    """uid and one column per scorer (the ``clip_score`` of its chunk files), inner-joined on uid."""
    joined = None
    for scorer, paths in paths_by_scorer.items():
        frame = pd.concat([pd.read_parquet(p, columns=["uid", "clip_score"]) for p in paths], ignore_index=True)
        frame = frame.rename(columns={"clip_score": scorer})
        joined = frame if joined is None else joined.merge(frame, on="uid", how="inner")
    return joined


def split_by_scorer(paths: list, scorers: list, n_chunks: int) -> dict[str, list]:
    """Score files listed scorer-major (n_chunks per scorer) as {scorer: files}."""
    return {s: list(paths[i * n_chunks : (i + 1) * n_chunks]) for i, s in enumerate(scorers)}


# ---------------------------------------------------------------------------------------------
# Drawing


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update(FONT)
    return plt


def _save(fig, path) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    import matplotlib.pyplot as plt

    plt.close(fig)


def draw_curve(
    points: list[dict], records: dict, suite: dict, metrics: list, x_label: str, title: str, path, note: str = ""
) -> None:
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(metrics), figsize=(6 * len(metrics), 4.8), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        values = curve_values(points, records, suite, metric)
        for series, group in values.groupby("series", sort=False):
            low, high = group["low"].astype(float), group["high"].astype(float)
            if low.notna().any():  # the seeds' 95 % t-intervals
                y = group["value"].astype(float)
                ax.errorbar(
                    group["x"],
                    y,
                    yerr=[y - low, high - y],
                    marker="o",
                    linewidth=2,
                    markersize=7,
                    capsize=4,
                    label=series,
                )
            else:
                ax.plot(group["x"], group["value"], marker="o", linewidth=2, markersize=7, label=series)
        ax.set_xlabel(x_label)
        label = METRIC_LABELS.get(metric, metric)
        if "paper_metrics" in suite:  # a stand-in suite: say what the analogue is
            spec = paper_metric_spec(suite, metric) or {}
            label += f"\n(analogue: {spec.get('task') or spec.get('group')})"
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend(loc="best")
    fig.suptitle(title + (f"\n{note}" if note else ""))
    _save(fig, path)


def draw_repetitions(histograms: dict[str, dict], title: str, path) -> None:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 5))
    labels = list(histograms)
    ks = list(range(1, max((k for h in histograms.values() for k in h), default=1) + 1))  # every k, none skipped
    width = 0.8 / max(1, len(labels))
    for i, label in enumerate(labels):
        ax.bar(np.arange(len(ks)) + i * width, [histograms[label].get(k, 0) for k in ks], width=width, label=label)
    ax.set_xticks(np.arange(len(ks)) + width * (len(labels) - 1) / 2, [str(k) for k in ks])
    ax.set_xlabel("times a sample appears in the subset (k)")
    ax.set_ylabel("number of distinct samples")
    ax.set_yscale("log")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(loc="best")
    ax.set_title(title)
    _save(fig, path)


def draw_disparity(disparity: np.ndarray, scorers: list, title: str, path) -> None:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 5))
    ax.hist(disparity, bins=50, color="tab:purple", alpha=0.85)
    ax.axvline(float(np.mean(disparity)), color="black", linestyle="--", label=f"mean {np.mean(disparity):.3f}")
    ax.set_xlabel("per-sample std of the min-max normalised scores")
    ax.set_ylabel("samples")
    ax.set_title(f"{title}\n({', '.join(scorers)})")
    ax.legend(loc="best")
    ax.grid(alpha=0.3)
    _save(fig, path)


def draw_noise_scores(scores: pd.DataFrame, truth: pd.DataFrame, scorers: list, title: str, path) -> None:
    """One box plot panel per scorer: score per noise type (clean first, then by median score)."""
    plt = _pyplot()
    merged = scores.merge(truth[["uid", "noise_type"]], on="uid", how="inner")
    merged["noise_type"] = merged["noise_type"].fillna("clean").replace({"": "clean", "none": "clean"})
    medians = merged.groupby("noise_type")[scorers[0]].median().sort_values(ascending=False)
    order = ["clean"] + [t for t in medians.index if t != "clean"] if "clean" in medians.index else list(medians.index)
    fig, axes = plt.subplots(
        1, len(scorers), figsize=(5.5 * len(scorers), 0.45 * len(order) + 2.5), squeeze=False, sharey=True
    )
    for ax, scorer in zip(axes[0], scorers):
        data = [merged.loc[merged["noise_type"] == t, scorer].to_numpy() for t in order]
        ax.boxplot(data, orientation="horizontal", showfliers=False)
        ax.set_yticks(range(1, len(order) + 1), [f"{t} ({len(d)})" for t, d in zip(order, data)])
        ax.invert_yaxis()
        ax.set_xlabel("CLIP score (cosine)")
        ax.set_title(scorer)
        ax.grid(axis="x", alpha=0.3)
    fig.suptitle(title)
    _save(fig, path)


def draw_noise_kept(table: pd.DataFrame, title: str, path) -> None:
    """A heat map: per selection (rows), the share of each sample type of the pool it keeps (the
    ``kept_<type>`` columns of results/noise_kept.csv)."""
    plt = _pyplot()
    columns = [c for c in table.columns if c.startswith("kept_")]
    shares = table[columns].to_numpy(dtype=float)
    fig, ax = plt.subplots(figsize=(1.0 * len(columns) + 4, 0.42 * len(table) + 2.5))
    image = ax.imshow(shares, vmin=0, vmax=1, cmap="viridis", aspect="auto")
    ax.set_xticks(range(len(columns)), [c.removeprefix("kept_") for c in columns], rotation=45, ha="right")
    ax.set_yticks(
        range(len(table)), [f"{s} (precision {p:.2f})" for s, p in zip(table["selection"], table["precision"])]
    )
    for (i, j), value in np.ndenumerate(shares):
        ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=8, color="white" if value < 0.6 else "black")
    fig.colorbar(image, ax=ax, label="share of the pool's samples of the type kept")
    ax.set_title(title)
    _save(fig, path)


def draw_precision_vs_average(table: pd.DataFrame, title: str, path) -> None:
    """Each selection's downstream Average (mean over seeds, 95 % t-interval) against its precision,
    with Spearman's rho and its bootstrap interval (results/precision_vs_average.csv)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 5.5))
    y = 100 * table["Average"].astype(float)
    low, high = 100 * table["Average_lo95"].astype(float), 100 * table["Average_hi95"].astype(float)
    yerr = None if low.isna().all() else [y - low, high - y]
    ax.errorbar(table["precision"], y, yerr=yerr, fmt="o", capsize=4, markersize=7)
    for x, value, name in zip(table["precision"], y, table["selection"]):
        ax.annotate(name, (x, value), textcoords="offset points", xytext=(4, 4), fontsize=8)
    rho, rho_low, rho_high = (float(table[c].iloc[0]) for c in ("spearman_rho", "rho_lo95", "rho_hi95"))
    ax.set_xlabel("precision (share of the kept samples that are clean)")
    ax.set_ylabel("Average (%)")
    ax.grid(alpha=0.3)
    ax.set_title(f"{title}\nSpearman rho {rho:.2f} [{rho_low:.2f}, {rho_high:.2f}] (95 % bootstrap)")
    _save(fig, path)


def draw(plan_type: str, inputs: dict, params: dict, path) -> None:
    """Read a figure's inputs (as figure_plan lists them) and draw it."""
    if plan_type == "curve":
        records = {p: read_records(p) for p in inputs["evaluations"]}
        note = "" if params.get("scale") in (None, "paper") else f"stand-in runs at scale {params['scale']}"
        draw_curve(
            params["points"],
            records,
            params["suite"],
            params["metrics"],
            params["x_label"],
            params["title"],
            path,
            note,
        )
    elif plan_type == "repetitions":
        from curate.data.subset import load_subset

        histograms = {
            label: repetition_histogram(load_subset(p)) for label, p in zip(params["labels"], inputs["subsets"])
        }
        draw_repetitions(histograms, params["title"], path)
    elif plan_type == "disparity":
        by_scorer = split_by_scorer(inputs["scores"], params["scorers"], params["n_chunks"])
        scores = join_scores(by_scorer)
        draw_disparity(score_disparity(scores[params["scorers"]].to_numpy()), params["scorers"], params["title"], path)
    elif plan_type == "noise_scores":
        from curate.reporting.tables import load_ground_truth

        by_scorer = split_by_scorer(inputs["scores"], params["scorers"], params["n_chunks"])
        draw_noise_scores(
            join_scores(by_scorer), load_ground_truth(inputs["ground_truth"]), params["scorers"], params["title"], path
        )
    elif plan_type == "noise_kept":
        draw_noise_kept(pd.read_csv(inputs["table"][0]), params["title"], path)
    elif plan_type == "precision_vs_average":
        draw_precision_vs_average(pd.read_csv(inputs["table"][0]), params["title"], path)
    else:
        raise ValueError(f"unknown figure type {plan_type!r}")
