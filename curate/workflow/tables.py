"""The workflow's own tables (``results/table1.csv``, ``results/table2.csv``): which selections
each has at the current scale, and the files each row reads."""

from __future__ import annotations

from curate.selection.methods import SELECTIONS

#: Tables only a synthetic pool's ground truth can give (`curate.workflow.claims`).
GROUND_TRUTH_TABLES = ("noise_kept", "precision_vs_average", "noise_harm")


def table_selections(config: dict, table: str, scale: str | None = None) -> list[str]:
    """The selections of ``table`` at ``scale`` (default: the config's): the scale's own ``tables``
    entry where it has one, else the table's ``selections``."""
    entry = config["scales"][scale or config["scale"]]
    return list((entry.get("tables") or {}).get(table, config["tables"][table]["selections"]))


def selection_labels(config: dict, selection: str) -> dict:
    """A selection's fusion, scorers and sampler as table labels (table2's columns)."""
    entry = config["selections"][selection]
    labels = SELECTIONS.of(entry).spec.get("labels")
    if labels is None:
        return {"fusion": "", "scorers": "", "sampler": entry["method"]}
    return labels(config, entry)


def table_rows(ws, table: str, labels: bool = False) -> list[dict]:
    """One row per selection of a table, all on the scale's pool, recipe and suite; with
    ``labels``, each row also names its fusion, scorers and sampler. ``evaluations`` holds one
    evaluation per seed (`curate.workflow.scales.replicates`), ``evaluation`` the first."""
    pool, recipe, suite = ws.scale["pool"], ws.scale["recipe"], ws.scale["suite"]
    rows = []
    for selection in table_selections(ws.config, table):
        evaluations = ws.replicate_paths("evaluation", pool=pool, selection=selection, recipe=recipe, suite=suite)
        rows.append(
            (selection_labels(ws.config, selection) if labels else {})
            | {
                "selection": selection,
                "pool": pool,
                "recipe": recipe,
                "suite": suite,
                "subset": ws.path("subset", pool=pool, selection=selection),
                "reshard": ws.path("reshard", pool=pool, selection=selection),
                "evaluation": evaluations[0],
                "evaluations": evaluations,
            }
        )
    return rows


def pending_rows(config: dict, table: str) -> list[dict]:
    """The table's methods not built yet: labels and status, no files."""
    pending = config["tables"][table].get("pending") or {}
    return [{"selection": name} | entry for name, entry in pending.items()]


def table_inputs(ws, table: str) -> dict:
    rows = table_rows(ws, table)
    inputs = {
        "subsets": [row["subset"] for row in rows],
        "reshards": [row["reshard"] for row in rows],
        "evaluations": [path for row in rows for path in row["evaluations"]],
    }
    pool = ws.scale["pool"]
    if ws.config["pools"][pool]["source"] == "synthetic":
        inputs["ground_truth"] = ws.per_chunk("ground_truth", pool)
    return inputs
