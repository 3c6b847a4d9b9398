"""What the ground-truth tables and the claims table read at the current scale (the computing is
`curate.reporting.noise` and `curate.reporting.claims`).

Every row runs on the scale's pool with its recipe (each seed's replicate) and suite, as the
workflow's own tables do; a selection the scale cannot build makes its comparison a row with a
status instead of a number.
"""

from __future__ import annotations

from curate.workflow.figure_plans import selection_available
from curate.workflow.paper_rows import runs_as
from curate.workflow.tables import table_selections

#: Claim kinds that read the pool's ground truth.
GROUND_TRUTH_KINDS = ("drops_noise", "rank_correlation")


def synthetic_pool(ws) -> bool:
    return ws.config["pools"][ws.scale["pool"]]["source"] == "synthetic"


def evaluations(ws, selection: str) -> list[str]:
    """Each seed's evaluation of ``selection`` (the run it shares: `runs_as`) at the scale."""
    pool, recipe, suite = ws.scale["pool"], ws.scale["recipe"], ws.scale["suite"]
    run = runs_as(ws.config, selection)
    return ws.replicate_paths("evaluation", pool=pool, selection=run, recipe=recipe, suite=suite)


def subset(ws, selection: str) -> str:
    return ws.path("subset", pool=ws.scale["pool"], selection=runs_as(ws.config, selection))


def single_scorer_selection(config: dict, scorer: str, fraction: float) -> str | None:
    """The first configured selection keeping the top ``fraction`` of ``scorer`` (DataComp's rule)."""
    for name, entry in config["selections"].items():
        if (
            entry.get("method") == "clip_score"
            and entry.get("scorer") == scorer
            and entry.get("threshold") is None
            and entry.get("fraction") == fraction
        ):
            return name
    return None


def _each_input(config: dict, selection: str) -> list[str | None]:
    entry = config["selections"][selection]
    fusion = config["fusions"][entry["fusion"]]
    return [single_scorer_selection(config, scorer, entry.get("fraction")) for scorer in fusion["scorers"]]


def claim_comparisons(ws) -> list[dict]:
    """Every comparison of every claim (config ``claims``), with what it reads: ``selections``
    (the selections compared), ``evaluations`` {selection: [one path per seed]}, ``subsets``
    {selection: path} and ``status`` ("ok", or why it is not measured at this scale)."""
    config = ws.config
    out = []
    for name, claim in config.get("claims", {}).items():
        if claim is None:  # left out by the run's config
            continue
        kind = claim["kind"]
        base = {"name": name, "kind": kind, "claim": claim["claim"], "source": claim["source"]}
        base["metric"] = claim.get("metric", "Average") if kind != "drops_noise" else f"kept {claim['noise_type']}"
        if kind == "rank_correlation":
            selections = table_selections(config, claim["table"])
            groups = [(selections, f"precision against Average over tables.{claim['table']}")]
        elif kind == "at_least_each_input":
            if not selection_available(config, claim["selection"]):
                groups = [([claim["selection"]], claim["selection"])]
            else:
                groups = [
                    ([claim["selection"], other], f"{claim['selection']} - {other}")
                    for other in _each_input(config, claim["selection"])
                ]
        else:
            pairs = claim.get("pairs") or [
                [claim["selection"], b] for b in claim.get("baselines") or [claim["baseline"]]
            ]
            groups = [(list(pair), f"{pair[0]} - {pair[1]}") for pair in pairs]
            if kind == "drops_noise":
                groups = [(s, f"kept share: {s[1]} - {s[0]}") for s, _ in groups]
        for selections, comparison in groups:
            row = base | {"comparison": comparison, "selections": selections, "evaluations": {}, "subsets": {}}
            unavailable = [s for s in selections if s is None or not selection_available(config, s)]
            if unavailable:
                row["status"] = "not available at this scale: " + ", ".join(str(s) for s in unavailable)
            elif kind in GROUND_TRUTH_KINDS and not synthetic_pool(ws):
                row["status"] = "needs ground truth (synthetic pools only)"
            else:
                row["status"] = "ok"
                if kind != "drops_noise":
                    row["evaluations"] = {s: evaluations(ws, s) for s in selections}
                if kind in GROUND_TRUTH_KINDS:
                    row["subsets"] = {s: subset(ws, s) for s in selections}
            out.append(row)
    return out


def claims_inputs(ws) -> dict:
    """Every file the claims table reads, by role."""
    comparisons = claim_comparisons(ws)
    inputs = {
        "evaluations": list(
            dict.fromkeys(p for c in comparisons for paths in c["evaluations"].values() for p in paths)
        ),
        "subsets": list(dict.fromkeys(p for c in comparisons for p in c["subsets"].values())),
    }
    if synthetic_pool(ws) and any(c["kind"] in GROUND_TRUTH_KINDS and c["status"] == "ok" for c in comparisons):
        inputs["ground_truth"] = ws.per_chunk("ground_truth", ws.scale["pool"])
    return {role: paths for role, paths in inputs.items() if paths}


def ground_truth_rows(ws, table: str, with_evaluations: bool = False) -> list[dict]:
    """The rows of a ground-truth table (``noise_kept``, ``precision``): each selection of the
    table at the scale that the scale can build, its subset and (``with_evaluations``) each seed's
    evaluation."""
    rows = []
    for selection in table_selections(ws.config, table):
        if not selection_available(ws.config, selection):
            continue
        row = {"selection": selection, "subset": subset(ws, selection)}
        if with_evaluations:
            row["evaluations"] = evaluations(ws, selection)
        rows.append(row)
    return rows


def ground_truth_inputs(ws, table: str, with_evaluations: bool = False) -> dict:
    rows = ground_truth_rows(ws, table, with_evaluations)
    inputs = {"subsets": [r["subset"] for r in rows], "ground_truth": ws.per_chunk("ground_truth", ws.scale["pool"])}
    if with_evaluations:
        inputs["evaluations"] = [p for r in rows for p in r["evaluations"]]
    return inputs


def probe_suite(config: dict) -> str | None:
    """The suite of probe tasks the noise-harm rows are also evaluated on (none if not configured)."""
    suite = (config["tables"].get("noise_harm") or {}).get("probe_suite")
    return suite if suite in config["suites"] else None


def noise_harm_rows(ws) -> list[dict]:
    """The noise-harm table's rows: each selection (the first is the clean control) with its
    ``noise_type`` and ``share`` and each seed's evaluations on the scale's suite and, where one is
    configured, on the probe suite (``probes``)."""
    rows = []
    probe = probe_suite(ws.config)
    pool, recipe = ws.scale["pool"], ws.scale["recipe"]
    for row in ground_truth_rows(ws, "noise_harm", with_evaluations=True):
        entry = ws.config["selections"][row["selection"]]
        row["noise_type"], row["share"] = entry.get("noise_type") or "none", entry.get("share", 0.0)
        if probe is not None:
            run = runs_as(ws.config, row["selection"])
            row["probes"] = ws.replicate_paths("evaluation", pool=pool, selection=run, recipe=recipe, suite=probe)
        rows.append(row)
    return rows


def noise_harm_inputs(ws) -> dict:
    rows = noise_harm_rows(ws)
    return {
        "evaluations": [p for r in rows for p in r["evaluations"]],
        "probes": [p for r in rows for p in r.get("probes", [])],
    }
