"""Which figures the current scale can draw, and the files each reads (the drawing is
`curate.reporting.figures`)."""

from __future__ import annotations

from curate.workflow.paper_rows import runs_as, selection_references_missing
from curate.workflow.scales import scale_entry


def selection_available(config: dict, selection: str) -> bool:
    """Whether the workflow can build a selection on the scale's pool (config with stand-ins applied)."""
    if selection not in config["selections"] or selection_references_missing(config, selection):
        return False
    from curate.selection.methods import SELECTIONS

    pool = scale_entry(config).get("pool")
    if SELECTIONS.of(config["selections"][selection]).spec.get("needs_ground_truth"):  # the oracle's kind
        return pool is not None and config["pools"][pool]["source"] == "synthetic"
    return True


def figure_plan(ws, name: str) -> dict | None:
    """``{"type", "inputs": {role: [paths]}, "params": {...}}`` of one figure, or None if the
    current scale's pool cannot give it."""
    config = ws.config
    figure = config["figures"][name]
    entry = scale_entry(config)
    pool = entry.get("pool")
    if pool is None or pool not in config["pools"]:
        return None
    kind = figure["type"]
    params = {"title": figure["title"]}
    if kind == "curve":
        recipe, suite = entry["recipe"], entry["suite"]
        points = []
        for series, members in figure["series"].items():
            for selection, x in members.items():
                if selection_available(config, selection):
                    run = runs_as(config, selection)
                    evaluations = ws.replicate_paths("evaluation", pool=pool, selection=run, recipe=recipe, suite=suite)
                    points.append(
                        {
                            "series": series,
                            "x": x,
                            "selection": selection,
                            "evaluation": evaluations[0],
                            "evaluations": evaluations,
                        }
                    )
        if not points:
            return None
        return {
            "type": kind,
            "inputs": {"evaluations": list(dict.fromkeys(e for p in points for e in p["evaluations"]))},
            "params": params
            | {
                "points": points,
                "metrics": figure["metrics"],
                "x_label": figure["x_label"],
                "suite": config["suites"][suite],
                "scale": config["scale"],
            },
        }
    if kind == "repetitions":
        subsets = {
            label: ws.path("subset", pool=pool, selection=runs_as(config, s))
            for label, s in figure["selections"].items()
            if selection_available(config, s)
        }
        if not subsets:
            return None
        return {
            "type": kind,
            "inputs": {"subsets": list(subsets.values())},
            "params": params | {"labels": list(subsets)},
        }
    if kind == "disparity":
        fusion = config["fusions"].get(figure["fusion"])
        if fusion is None or any(s not in config["scorers"] for s in fusion["scorers"]) or len(fusion["scorers"]) < 2:
            return None
        scores = [f for s in fusion["scorers"] for f in ws.score_files(pool, s)]
        return {
            "type": kind,
            "inputs": {"scores": scores},
            "params": params | {"scorers": fusion["scorers"], "n_chunks": len(scores) // len(fusion["scorers"])},
        }
    if kind == "noise_scores":
        if config["pools"][pool]["source"] != "synthetic" or any(s not in config["scorers"] for s in figure["scorers"]):
            return None
        scores = [f for s in figure["scorers"] for f in ws.score_files(pool, s)]
        truth = ws.per_chunk("ground_truth", pool)
        return {
            "type": kind,
            "inputs": {"scores": scores, "ground_truth": truth},
            "params": params | {"scorers": figure["scorers"], "n_chunks": len(truth)},
        }
    if kind in ("noise_kept", "precision_vs_average"):  # drawn from the ground-truth table of that name
        if config["pools"][pool]["source"] != "synthetic":
            return None
        return {"type": kind, "inputs": {"table": [ws.path("table", table=kind)]}, "params": params}
    raise ValueError(f"figures.{name}: unknown type {kind!r}")


def figure_plans(ws) -> dict:
    """Every figure the current scale can draw, by name."""
    plans = {name: figure_plan(ws, name) for name in ws.config.get("figures", {})}
    return {name: plan for name, plan in plans.items() if plan is not None}
