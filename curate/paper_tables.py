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

import copy
import json
import math

import pandas as pd

from curate.evaluate import aggregate, read_records

#: The config section(s) where a need of each kind is looked up (any of them may hold it).
NEED_SECTIONS = {
    "scorer": ("scorers",),
    "captioner": ("captioners",),
    "encoder": ("sentence_encoders", "encoders"),
    "model": ("models", "langid_models"),
    "data": ("datasets",),
    "uids": ("published_uids",),
}

#: How a missing need of each kind reads in a status.
NEED_WORDS = {
    "scorer": "scorer not available",
    "captioner": "captioner not available",
    "encoder": "sentence encoder not available",
    "model": "model not available",
    "data": "data not available",
    "uids": "published uids not available",
}

#: Paper method names whose workflow name differs (the papers' spelling -> config's).
METHOD_ALIASES = {"standardized-sum": "standardised_sum", "in-weighted-sum": "in_weighted"}

#: How DataComp-style paper metrics read a suite that has no ``paper_metrics`` of its own (the
#: datacomp38 suite: curate.datacomp's groups and task keys).
DATACOMP_PAPER_METRICS = {
    "imagenet_acc1": {"group": "ImageNet"},
    "imagenet_dist_shifts": {"group": "ImageNet dist. shifts"},
    "vtab": {"group": "VTAB"},
    "retrieval": {"group": "Retrieval"},
    "average": {"group": "Average"},
    "flickr30k_i2t_r1": {"task": "retrieval/flickr_1k_test_image_text_retrieval", "metric": "text_retrieval_recall@1"},
    "flickr30k_t2i_r1": {"task": "retrieval/flickr_1k_test_image_text_retrieval", "metric": "image_retrieval_recall@1"},
    "mscoco_i2t_r1": {"task": "retrieval/mscoco_2014_5k_test_image_text_retrieval", "metric": "text_retrieval_recall@1"},
    "mscoco_t2i_r1": {"task": "retrieval/mscoco_2014_5k_test_image_text_retrieval", "metric": "image_retrieval_recall@1"},
    "imagenet_r_acc1": {"task": "imagenet-r", "metric": "acc1"},
    "cifar100_acc1": {"task": "vtab/cifar100", "metric": "acc1"},
    "voc2007_acc1": {"task": "voc2007", "metric": "acc1"},
}

#: Factor from our fractions to a paper unit.
UNIT_FACTORS = {"percent": 100.0, "fraction": 1.0, "cider": 100.0}

OK = "ok"

#: The keys of a selection that name a model a stand-in may replace.
STAND_IN_KEYS = ("scorer", "captioner", "langid")


# ---------------------------------------------------------------------------------------------
# Scale and stand-ins


def scale_entry(config: dict) -> dict:
    return config["scales"][config["scale"]]


def moves_rows(entry: dict, name: str = "") -> bool:
    """Whether a scale puts every paper row on its own pool/recipe/suite (tiny) or keeps the
    paper's (``keep_paper_pools``; true by default for the scale named ``paper``)."""
    return not entry.get("keep_paper_pools", name == "paper")


def row_setting(config: dict, row: dict, axis: str) -> str:
    """The recipe or suite (``axis``) a paper row runs with at the current scale.

    A scale that keeps the paper's pools keeps the row's own. A scale that moves rows uses its
    own, except that with ``use_tiny_analogues`` a row whose recipe or suite names a
    ``tiny_analogue`` uses that: MoS's LLaVA rows train the tiny LLaVA and are scored by CIDEr,
    which the scale's CLIP recipe and suite cannot give.
    """
    entry = scale_entry(config)
    if not moves_rows(entry, config["scale"]):
        return row[axis]
    if entry.get("use_tiny_analogues"):
        own = config[axis + "s"].get(row[axis])
        if own is None:
            return row[axis]  # not configured: the row is not built, and says so
        if "tiny_analogue" in own:
            return own["tiny_analogue"]
    return entry[axis]


def stand_ins(config: dict) -> dict:
    return dict(scale_entry(config).get("stand_ins", {}))


def known_paper_names(config: dict) -> set:
    """Names a selection or fusion may use without being configured: every scale's stand-in keys
    (the papers' scorers). A selection naming one that is not configured is simply not built."""
    return {name for entry in config["scales"].values() for name in entry.get("stand_ins", {})}


def _dedupe(names: list) -> list:
    return list(dict.fromkeys(names))


def apply_stand_ins(config: dict) -> dict:
    """A copy of ``config`` with the current scale's stand-ins applied (module docstring)."""
    resolved = copy.deepcopy(config)
    mapping = stand_ins(config)
    entry = scale_entry(config)
    moved = moves_rows(entry, config["scale"])
    for selection in resolved.get("selections", {}).values():
        for key in STAND_IN_KEYS:
            if key in selection:
                selection[key] = mapping.get(selection[key], selection[key])
    for fusion in resolved.get("fusions", {}).values():
        fusion["scorers"] = _dedupe([mapping.get(s, s) for s in fusion["scorers"]])
        accuracy = fusion.get("accuracy")
        if accuracy and moved and accuracy["suite"] != entry["suite"]:
            spec = paper_metric_spec(config["suites"][entry["suite"]], "imagenet_acc1")
            if spec and "task" in spec:
                fusion["accuracy"] = {"suite": entry["suite"], "task": spec["task"]}
    return resolved


# ---------------------------------------------------------------------------------------------
# Shared runs


def _canonical_fusion(config: dict, name: str):
    fusion = config["fusions"].get(name)
    if fusion is None:
        return ("fusion", name)
    params = {k: v for k, v in fusion.items() if k != "scorers"}
    return ("fusion", json.dumps(params, sort_keys=True), tuple(sorted(fusion["scorers"])))


def canonical_selection(config: dict, selection: str):
    """A hashable key of what a selection does, its fusion compared by content."""
    entry = dict(config["selections"][selection])
    fusion = entry.pop("fusion", None)
    key = json.dumps(entry, sort_keys=True)
    return (key, _canonical_fusion(config, fusion) if fusion is not None else None)


def runs_as(config: dict, selection: str) -> str:
    """The first selection of the config that does the same as ``selection`` (itself if none)."""
    key = canonical_selection(config, selection)
    for name in config["selections"]:
        if canonical_selection(config, name) == key:
            return name
    return selection


# ---------------------------------------------------------------------------------------------
# Buildability


def implemented_methods(schema: dict) -> set:
    """Selection methods, samplers, fusion methods and scorer libraries (Sieve) the workflow
    implements: the config schema's enums."""
    props = schema["properties"]
    selection = props["selections"]["additionalProperties"]["properties"]
    names = set(selection["method"]["enum"]) | set(selection["sampler"]["enum"])
    names |= set(props["fusions"]["additionalProperties"]["properties"]["method"]["enum"])
    names |= set(props["scorers"]["additionalProperties"]["properties"]["library"]["enum"])
    return names


def _method_name(need_name: str) -> str:
    return METHOD_ALIASES.get(need_name, need_name).replace("-", "_")


def _split_need(need: str) -> tuple[str, str]:
    kind, _, name = need.partition(":")
    return kind, name


def missing_needs(config: dict, needs: list, mapping: dict) -> dict:
    """{kind: [names]} of the non-method needs the config does not hold (after stand-ins)."""
    missing = {}
    for need in needs:
        kind, name = _split_need(need)
        if kind == "method":
            continue
        name = mapping.get(name, name)
        sections = NEED_SECTIONS.get(kind, (kind + "s",))
        if not any(name in config.get(section, {}) for section in sections):
            missing.setdefault(kind, []).append(name)
    return missing


def selection_references_missing(config: dict, selection: str) -> dict:
    """{kind: [names]} a configured selection names that are not configured (scorers, a fusion)."""
    entry = config["selections"][selection]
    missing = {}
    scorers = []
    if "scorer" in entry:
        scorers.append(entry["scorer"])
    if "fusion" in entry:
        fusion = config.get("fusions", {}).get(entry["fusion"])
        if fusion is None:
            missing["fusion"] = [entry["fusion"]]
        else:
            scorers += fusion["scorers"]
            accuracy = fusion.get("accuracy")
            if accuracy and accuracy["suite"] not in config["suites"]:
                missing["suite"] = [accuracy["suite"]]
    absent = [s for s in _dedupe(scorers) if s not in config["scorers"]]
    if absent:
        missing["scorer"] = absent
    if "captioner" in entry and entry["captioner"] not in config.get("captioners", {}):
        missing["captioner"] = [entry["captioner"]]
    return missing


def _missing_words(missing: dict) -> str:
    words = {**NEED_WORDS, "fusion": "fusion not configured", "suite": "suite not configured"}
    return "; ".join(f"{words.get(kind, kind + ' not available')}: {', '.join(names)}" for kind, names in missing.items())


def resolve_row(config: dict, row: dict, methods: set, data_root: str = "data") -> dict:
    """Where and whether one paper row runs at the current scale (``config`` with stand-ins applied).

    Returns the row's ``label``, ``selection`` (the paper's id), ``runs_as`` (the config
    selection whose files it uses, "" when not built), ``pool``/``recipe``/``suite`` it runs on,
    ``stand_ins`` (the paper names replaced, "a -> b; ..."), ``built``, ``comparable`` (delta
    computed: the row ran on the paper's own pool, recipe and suite with no stand-in), ``status``
    and ``evaluation`` (the jsonl path, or None).
    """
    entry = scale_entry(config)
    mapping = stand_ins(config)
    moved = moves_rows(entry, config["scale"])
    pool = entry["pool"] if moved else row["pool"]
    recipe, suite = row_setting(config, row, "recipe"), row_setting(config, row, "suite")
    used = [(name, mapping[name]) for name in _dedupe(_split_need(n)[1] for n in row.get("needs", [])) if name in mapping]
    resolved = {
        "label": row["label"], "scale": config["scale"], "selection": row["selection"], "runs_as": "",
        "pool": pool, "recipe": recipe, "suite": suite,
        "stand_ins": "; ".join(f"{a} -> {b}" for a, b in used),
        "built": False, "comparable": False, "status": "", "evaluation": None,
    }

    def unbuilt(status):
        return resolved | {"status": status}

    if not row.get("reproduce", True):
        return unbuilt("reported only: the method is not disclosed")
    selection = row["selection"]
    if selection not in config["selections"]:
        unimplemented = [name for kind, name in map(_split_need, row.get("needs", []))
                         if kind == "method" and _method_name(name) not in methods]
        if unimplemented:
            return unbuilt(f"method not built yet: {', '.join(_dedupe(unimplemented))}")
        missing = missing_needs(config, row.get("needs", []), mapping)
        if missing:
            return unbuilt(_missing_words(missing))
        return unbuilt(f"selection not in config: {selection}")
    for axis, section, name in (("pool", "pools", pool), ("recipe", "recipes", recipe), ("suite", "suites", suite)):
        if name not in config[section]:
            return unbuilt(f"{axis} not configured: {name}")
    missing = missing_needs(config, row.get("needs", []), mapping)
    if missing:
        return unbuilt(_missing_words(missing))
    missing = selection_references_missing(config, selection)
    if missing:
        return unbuilt(_missing_words(missing))
    if config["selections"][selection]["method"] == "oracle" and config["pools"][pool]["source"] != "synthetic":
        return unbuilt(f"needs ground truth, which pool {pool} has not")
    run = runs_as(config, selection)
    on_paper_pool = (pool, recipe, suite) == (row["pool"], row["recipe"], row["suite"])
    comparable = on_paper_pool and not used
    if comparable:
        status = OK
    elif not on_paper_pool:
        status = f"stand-in run on {pool} (paper: {row['pool']}): no delta"
    else:
        status = "stand-in scorers: no delta"
    return resolved | {
        "runs_as": run, "built": True, "comparable": comparable, "status": status,
        "evaluation": f"{data_root}/evals/{pool}/{run}/{recipe}/{suite}.jsonl",
    }


def resolve_table(config: dict, table: dict, methods: set, data_root: str = "data") -> list[dict]:
    return [resolve_row(config, row, methods, data_root) for row in table["rows"]]


def table_evaluations(rows: list[dict]) -> list[str]:
    """The evaluation files a table reads (each once, in row order)."""
    return _dedupe(row["evaluation"] for row in rows if row["built"])


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
    return [{"kind": "eval", "unit": table["unit"], "decimals": table["decimals"]} | column for column in table["columns"]]


def build_paper_table(table: dict, rows: list[dict], records: dict, suites: dict) -> pd.DataFrame:
    """The table: one row per paper row, per column ``<key>_reported``/``_reproduced``/``_delta``.

    ``rows`` are :func:`resolve_row` results in the paper's order, ``records`` the evaluation
    records by path, ``suites`` the config's suites (each row's ``suite`` gives its groups and
    ``paper_metrics``). ``eval`` columns read the records; ``param`` columns (a weight a method
    learned) are reported only; ``drop`` columns are the decrease of column ``of`` from the
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
            delta = _round(values[key] - reported, decimals) if (
                row["comparable"] and reported is not None and values.get(key) is not None) else None
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
            frame[name] = [("" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{column['decimals']}f}")
                           for v in frame[name]]
    frame.to_csv(path, index=False)


def make_paper_table(table: dict, rows: list[dict], suites: dict, path) -> pd.DataFrame:
    """Read the built rows' evaluations, build the table, write it; returns the frame."""
    records = {p: read_records(p) for p in table_evaluations(rows)}
    frame = build_paper_table(table, rows, records, suites)
    write_paper_table(frame, table, path)
    return frame
