"""The papers' tables rebuilt: which rows the workflow can run at a scale, and the reported,
reproduced and delta numbers side by side (``results/<paper>/<table>.csv``).

**Scales.** ``config.scale`` names an entry of ``config.scales``. An entry with ``pool``,
``recipe`` and ``suite`` *moves* every paper row there (``tiny``: every row runs on
``synthetic-tiny`` with ``tiny-clip`` and the ``synthetic`` suite, so any table is rebuilt
cheaply); an entry with ``keep_paper_pools: true`` (the default of the scale named ``paper``)
keeps each row's own pool, recipe and suite. A moved row is a stand-in run: its numbers are the analogues of the paper's on
another pool, printed beside the paper's but never subtracted from them (no delta). With
``use_tiny_analogues`` (tiny) a row whose recipe or suite names a ``tiny_analogue`` runs with
that instead of the scale's (:func:`row_setting`): MoS's LLaVA, BLIP and weighted-CLIP rows.

**Stand-ins.** A scale may name ``stand_ins``: ``{paper name: configured name}``, e.g. at tiny
``openai-clip-l14: tiny-clip-clean``. :func:`apply_stand_ins` (pure, applied once where the
workflow reads its config, rules/common.smk) replaces every scorer a selection or fusion names by
its stand-in, and likewise a selection's captioner and language detector (a fusion's list is de-duplicated, keeping the first occurrence), and moves an
IN-weighted fusion's accuracy to the scale suite's ImageNet analogue when the scale moves rows.
A row's needs are looked up through the same map.

**Buildable rows** are computed from config, never listed: a row is built when its selection is
an entry of ``config.selections``, its pool, recipe and suite (after the scale) are configured,
every need ``kind:name`` (after stand-ins) is an entry of the config section of its kind, and
the selection's own references (scorers, fusion) are configured. Otherwise its status says the
first reason plainly ("method not built yet: sample-weighting", "pool not configured: cc3m",
"scorer not available: hype-image-specificity", "selection not in config: drop20_clip_b32").

**Shared runs.** Rows whose selections are the same method after stand-ins share one subset and
model: :func:`runs_as` maps a selection to the first selection of the config with the same
canonical entry (fusions compared by method, parameters and the *set* of their scorers).

**Metrics.** A paper column's ``metric`` is read from a suite's evaluation records through the
suite's ``paper_metrics`` map (``{metric: {group: G} | {task: key, metric: name}}``; the
synthetic suite's config documents its analogues) or, for a suite without one, DataComp's groups
(:data:`DATACOMP_PAPER_METRICS`). Our numbers are fractions; they are converted to the column's
unit (percent and CIDEr x 100) and rounded to the paper's printed decimals; delta = reproduced -
reported, rounded the same way.
"""

from __future__ import annotations

import math

import pandas as pd

from curate.data.records import aggregate, read_records

#: How DataComp-style paper metrics read a suite that has no ``paper_metrics`` of its own (the
#: datacomp38 suite: curate.evaluation.datacomp's groups and task keys).
DATACOMP_PAPER_METRICS = {
    "imagenet_acc1": {"group": "ImageNet"},
    "imagenet_dist_shifts": {"group": "ImageNet dist. shifts"},
    "vtab": {"group": "VTAB"},
    "retrieval": {"group": "Retrieval"},
    "average": {"group": "Average"},
    "flickr30k_i2t_r1": {"task": "retrieval/flickr_1k_test_image_text_retrieval", "metric": "text_retrieval_recall@1"},
    "flickr30k_t2i_r1": {"task": "retrieval/flickr_1k_test_image_text_retrieval", "metric": "image_retrieval_recall@1"},
    "mscoco_i2t_r1": {
        "task": "retrieval/mscoco_2014_5k_test_image_text_retrieval",
        "metric": "text_retrieval_recall@1",
    },
    "mscoco_t2i_r1": {
        "task": "retrieval/mscoco_2014_5k_test_image_text_retrieval",
        "metric": "image_retrieval_recall@1",
    },
    "flickr30k_retrieval": {"task": "retrieval/flickr_1k_test_image_text_retrieval"},
    "imagenet_r_acc1": {"task": "imagenet-r", "metric": "acc1"},
    "cifar100_acc1": {"task": "vtab/cifar100", "metric": "acc1"},
    "voc2007_acc1": {"task": "voc2007", "metric": "acc1"},
}

#: Factor from our fractions to a paper unit.
UNIT_FACTORS = {"percent": 100.0, "fraction": 1.0, "cider": 100.0}


# ---------------------------------------------------------------------------------------------
# Scale and stand-ins


# ---------------------------------------------------------------------------------------------
# Shared runs


# ---------------------------------------------------------------------------------------------
# Buildability


# ---------------------------------------------------------------------------------------------
# Metrics and units


def paper_metric_spec(suite: dict, metric: str) -> dict | None:
    """How ``metric`` reads this suite's records: its ``paper_metrics`` entry, else DataComp's; None if unmapped."""
    if "paper_metrics" in suite:
        return suite["paper_metrics"].get(metric)
    return DATACOMP_PAPER_METRICS.get(metric)


def metric_value(records: list[dict], groups: dict, spec: dict | None) -> float | None:
    """A fraction from one model's records: a group average (``Average`` included) or a task metric."""
    if spec is None:
        return None
    if "group" in spec:
        group = spec["group"]
        if group != "Average" and group not in groups:
            raise ValueError(f"paper metric reads group {group!r}, which the suite does not define ({sorted(groups)})")
        return aggregate(records, groups)[group]
    for record in records:
        if record["key"] == spec["task"]:
            value = record["metrics"].get(spec.get("metric", "main_metric"))
            return None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)
    raise ValueError(f"paper metric reads task {spec['task']!r}, which has no evaluation record")


def to_unit(value: float | None, unit: str) -> float | None:
    """Our fraction in a paper's unit (percent x 100, CIDEr x 100, fraction as is)."""
    if value is None:
        return None
    if unit not in UNIT_FACTORS:
        raise ValueError(f"no conversion of an evaluation to unit {unit!r}")
    return value * UNIT_FACTORS[unit]


def _round(value: float | None, decimals: int) -> float | None:
    return None if value is None else round(value, decimals)


def column_formats(table: dict) -> list[dict]:
    """Each column with its unit, decimals and kind filled from the table."""
    return [
        {"kind": "eval", "unit": table["unit"], "decimals": table["decimals"]} | column for column in table["columns"]
    ]


def build_paper_table(table: dict, rows: list[dict], records: dict, suites: dict) -> pd.DataFrame:
    """The table: one row per paper row, per column ``<key>_reported``/``_reproduced``/``_delta``.

    ``rows`` are :func:`resolve_row` results in the paper's order, ``records`` the evaluation
    records by path, ``suites`` the config's suites (each row's ``suite`` gives its groups and
    ``paper_metrics``). ``eval`` columns read the records; ``param`` columns (a weight a method
    learned) and ``property`` columns (what a paper measured of a method's output, a captioner's
    CIDEr say) are reported only; ``drop`` columns are the decrease of column ``of`` from the
    table's first row, computed from our numbers as the paper does from its own.
    """
    columns = column_formats(table)
    reproduced = []
    for row in rows:
        values = {}
        if row["built"]:
            row_records = records[row["evaluation"]]
            suite = suites[row["suite"]]
            groups = suite.get("groups", {})
            for column in columns:
                if column["kind"] == "eval":
                    spec = paper_metric_spec(suite, column["metric"])
                    values[column["key"]] = to_unit(metric_value(row_records, groups, spec), column["unit"])
        reproduced.append(values)
    for column in columns:
        if column["kind"] == "drop":
            reference = reproduced[0].get(column["of"]) if reproduced else None
            for values, row in zip(reproduced, rows):
                own = values.get(column["of"])
                values[column["key"]] = None if own is None or reference is None or row is rows[0] else reference - own
    table_rows = []
    for paper_row, row, values in zip(table["rows"], rows, reproduced):
        out = {k: row[k] for k in ("label", "scale", "selection", "runs_as", "pool", "recipe", "suite")}
        for column in columns:
            key, decimals = column["key"], column["decimals"]
            reported = paper_row["reported"].get(key)
            ours = _round(values.get(key), decimals)
            delta = (
                _round(values[key] - reported, decimals)
                if (row["comparable"] and reported is not None and values.get(key) is not None)
                else None
            )
            out |= {f"{key}_reported": reported, f"{key}_reproduced": ours, f"{key}_delta": delta}
        out["stand_ins"] = row["stand_ins"]
        out["status"] = row["status"]
        table_rows.append(out)
    return pd.DataFrame(table_rows)


def write_paper_table(frame: pd.DataFrame, table: dict, path) -> None:
    """CSV with every number printed at its column's decimals (blank when there is none)."""
    frame = frame.copy()
    for column in column_formats(table):
        for suffix in ("reported", "reproduced", "delta"):
            name = f"{column['key']}_{suffix}"
            frame[name] = [
                ("" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{column['decimals']}f}")
                for v in frame[name]
            ]
    frame.to_csv(path, index=False)


def make_paper_table(table: dict, rows: list[dict], suites: dict, path) -> pd.DataFrame:
    """Read the built rows' evaluations, build the table, write it; returns the frame."""
    records = {p: read_records(p) for p in dict.fromkeys(row["evaluation"] for row in rows if row["built"])}
    frame = build_paper_table(table, rows, records, suites)
    write_paper_table(frame, table, path)
    return frame
