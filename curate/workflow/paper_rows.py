"""The papers' table rows at the current scale: which run each row is, whether the workflow can
build it, and if not, why (``status``).

**Buildable rows** are computed from config, never listed: a row is built when its selection is
an entry of ``config.selections``, its pool, recipe and suite (after the scale) are configured,
every need ``kind:name`` (after stand-ins) is an entry of the config section of its kind, and the
selection's own references (scorers, fusion) are configured. Otherwise its status says the first
reason plainly ("method not built yet: sample-weighting", "pool not configured: cc3m", "scorer
not available: hype-image-specificity", "selection not in config: drop20_clip_b32").

**Shared runs.** Rows whose selections are the same method after stand-ins share one subset and
model: :func:`runs_as` maps a selection to the first selection of the config with the same
canonical entry (fusions compared by method, parameters and the *set* of their scorers).
"""

from __future__ import annotations

import json

from curate.workflow.paths import Paths
from curate.workflow.scales import _dedupe, moves_rows, row_setting, scale_entry, stand_ins

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
METHOD_ALIASES = {
    "standardized-sum": "standardised_sum",
    "in-weighted-sum": "in_weighted",
    "sclip-loss-two-stage": "two_stage",
    # HYPE's own mixing is the plain sum of its three raw scores (FLYT Table 10)
    "hype-sum": "sum",
}


OK = "ok"


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


def implemented_methods() -> set:
    """Selection methods, samplers, fusion methods and scorer kinds the workflow implements: the
    names of their registries."""
    from curate.scoring.kinds import SCORER_KINDS
    from curate.selection.fusion import FUSIONS
    from curate.selection.methods import SELECTIONS
    from curate.selection.sampling import SAMPLERS

    return set(SELECTIONS) | set(SAMPLERS) | set(FUSIONS) | set(SCORER_KINDS)


def _method_name(need_name: str) -> str:
    return METHOD_ALIASES.get(need_name, need_name).replace("-", "_")


def _split_need(need: str) -> tuple[str, str]:
    kind, _, name = need.partition(":")
    return kind, name


def missing_needs(config: dict, needs: list, mapping: dict) -> dict:
    """{kind: [names]} of the non-method needs the config does not hold (after stand-ins).

    A scale's stand-ins are one map over every section, so a name that is both a scorer and a
    model (``openai-clip-b32``) stands in as the scorer: a need of the model is met by the stand-in
    when its section holds it, else by the paper's entry itself."""
    missing = {}
    for need in needs:
        kind, name = _split_need(need)
        if kind == "method":
            continue
        sections = NEED_SECTIONS.get(kind, (kind + "s",))
        stand_in = mapping.get(name, name)
        if not any(n in config.get(section, {}) for n in (stand_in, name) for section in sections):
            missing.setdefault(kind, []).append(stand_in)
    return missing


def selection_references_missing(config: dict, selection: str) -> dict:
    """{kind: [names]} a configured selection names that are not configured (scorers, a fusion)."""
    entry = config["selections"][selection]
    missing = {}
    scorers = []
    if entry.get("scorer") is not None:
        scorers.append(entry["scorer"])
    if entry.get("fusion") is not None:
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
    if entry.get("captioner") is not None and entry["captioner"] not in config.get("captioners", {}):
        missing["captioner"] = [entry["captioner"]]
    if entry.get("langid") is not None and entry["langid"] not in config.get("langid_models", {}):
        missing["model"] = [entry["langid"]]
    return missing


def _unavailable(config: dict, selection: str, pool: str) -> str | None:
    """Why a configured selection cannot run on a pool (its method's ``unavailable``: a published
    subset with no uids for that pool, say), None when it can."""
    from curate.selection.methods import SELECTIONS

    entry = config["selections"][selection]
    check = SELECTIONS.of(entry).spec.get("unavailable")
    return check(config, entry, pool) if check is not None else None


def _missing_words(missing: dict) -> str:
    words = {**NEED_WORDS, "fusion": "fusion not configured", "suite": "suite not configured"}
    return "; ".join(
        f"{words.get(kind, kind + ' not available')}: {', '.join(names)}" for kind, names in missing.items()
    )


def resolve_row(config: dict, row: dict, methods: set, paths: Paths) -> dict:
    """Where and whether one paper row runs at the current scale (``config`` with stand-ins applied).

    Returns the row's ``label``, ``selection`` (the paper's id), ``runs_as`` (the config
    selection whose files it uses, "" when not built; a scale's stand-in for the paper's selection
    where it names one), ``pool``/``recipe``/``suite`` it runs on, ``stand_ins`` (the paper names
    replaced, "a -> b; ..."), ``built``, ``comparable`` (delta
    computed: the row ran on the paper's own pool, recipe and suite with no stand-in), ``status``
    and ``evaluation`` (the jsonl path, or None).
    """
    entry = scale_entry(config)
    mapping = stand_ins(config)
    moved = moves_rows(entry, config["scale"])
    pool = entry["pool"] if moved else row["pool"]
    recipe, suite = row_setting(config, row, "recipe"), row_setting(config, row, "suite")
    # a paper selection whose settings do not fit the scale (DataComp's basic filter at paper
    # scale, say) may itself have a stand-in: a configured selection the scale runs instead
    selection = mapping.get(row["selection"], row["selection"])
    used = [(row["selection"], selection)] if selection != row["selection"] else []
    used += [
        (name, mapping[name]) for name in _dedupe(_split_need(n)[1] for n in row.get("needs", [])) if name in mapping
    ]
    resolved = {
        "label": row["label"],
        "scale": config["scale"],
        "selection": row["selection"],
        "runs_as": "",
        "pool": pool,
        "recipe": recipe,
        "suite": suite,
        "stand_ins": "; ".join(f"{a} -> {b}" for a, b in used),
        "built": False,
        "comparable": False,
        "status": "",
        "evaluation": None,
    }

    def unbuilt(status):
        return resolved | {"status": status}

    if not row.get("reproduce", True):
        return unbuilt("reported only: the method is not disclosed")
    if selection not in config["selections"]:
        unimplemented = [
            name
            for kind, name in map(_split_need, row.get("needs", []))
            if kind == "method" and _method_name(name) not in methods
        ]
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
    unavailable = _unavailable(config, selection, pool)
    if unavailable:
        return unbuilt(unavailable)
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
        "runs_as": run,
        "built": True,
        "comparable": comparable,
        "status": status,
        "evaluation": paths("evaluation", pool=pool, selection=run, recipe=recipe, suite=suite),
    }


#: the status of a row a run's ``paper_rows`` leaves out
NOT_REQUESTED = "not requested in this run (config paper_rows)"


def resolve_table(config: dict, table: dict, methods: set, paths: Paths, table_id: str | None = None) -> list[dict]:
    """Every row of a paper table resolved (`resolve_row`). When the config's ``paper_rows``
    names this table (``table_id``, "paper/table"), only the rows it lists by label are built;
    the others keep their place with status `NOT_REQUESTED`."""
    requested = (config.get("paper_rows") or {}).get(table_id)
    if requested is not None:
        unknown = sorted(set(requested) - {row["label"] for row in table["rows"]})
        if unknown:
            raise ValueError(f"paper_rows.{table_id}: no row labelled {unknown}")
    rows = []
    for row in table["rows"]:
        resolved = resolve_row(config, row, methods, paths)
        if requested is not None and row["label"] not in requested and resolved["built"]:
            resolved = resolved | {"built": False, "status": NOT_REQUESTED, "evaluation": None}
        rows.append(resolved)
    return rows


def table_evaluations(rows: list[dict]) -> list[str]:
    """The evaluation files a table reads (each once, in row order)."""
    return _dedupe(row["evaluation"] for row in rows if row["built"])
