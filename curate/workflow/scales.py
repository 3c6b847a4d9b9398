"""Scales and stand-ins: which pool, recipe and suite the tables use, and which configured
scorers stand in for the papers' where a scale cannot run them.

**Scales.** ``config.scale`` names an entry of ``config.scales``. An entry with ``pool``,
``recipe`` and ``suite`` *moves* every paper row there (``tiny``: every row runs on
``synthetic-tiny`` with ``tiny-clip`` and the ``synthetic`` suite, so any table is rebuilt
cheaply); an entry with ``keep_paper_pools: true`` (the default of the scale named ``paper``)
keeps each row's own pool, recipe and suite. A moved row is a stand-in run: its numbers are the
analogues of the paper's on another pool, printed beside the paper's but never subtracted from
them (no delta). With ``use_tiny_analogues`` (tiny) a row whose recipe or suite names a
``tiny_analogue`` runs with that instead of the scale's (:func:`row_setting`).

**Stand-ins.** A scale may name ``stand_ins``: ``{paper name: configured name}``, e.g. at tiny
``openai-clip-l14: tiny-clip-clean``. :func:`apply_stand_ins` (pure, applied once where the
workflow prepares its config) replaces every scorer, captioner, language detector, dataset or
model a selection names, every scorer of a fusion, and a FLYT fusion's reference model and
downstream set, by its stand-in (a fusion's list is de-duplicated, keeping the first
occurrence). A scale's ``flyt_hparams`` are FLYT's base settings there: a FLYT fusion's
settings are rebased onto them (`curate.selection.fusion.move_flyt_hparams`), so FLYT Table 12's
12 500 steps (2.5 x FLYT's 5000) run 2.5 x the tiny scale's 200. When the scale moves rows it also moves what a paper's selections name
of the paper's setting: a trained fusion's head is trained on the scale's pool, not on another
paper pool (`head_pool`); an IN-weighted fusion's accuracy goes to the scale suite's ImageNet
analogue, and per-input filters that name another recipe (a paper's) are trained with the
scale's recipe, a paper's named per-input selections giving way to each input's own top
fraction; an SCS sampler that draws a named recipe's samples seen draws the scale recipe's, in
as many rounds (`curate.selection.sampling.move_scs`). A paper row's needs are looked up through
the same map, and so is its selection: a paper selection whose settings the scale cannot run
(DataComp's basic filter with its 200 px minimum on the tiny pool) runs as the configured
selection it maps to (`curate.workflow.paper_rows.resolve_row`).
"""

from __future__ import annotations

import copy

from curate.reporting.paper_tables import paper_metric_spec

#: The config sections whose names a stand-in may replace in a selection.
STAND_IN_SECTIONS = ("scorers", "captioners", "langid_models", "image_encoders", "datasets", "models")


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
        if own.get("tiny_analogue"):
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
    from curate.selection.methods import SELECTIONS
    from curate.selection.sampling import SAMPLERS

    for selection in resolved.get("selections", {}).values():
        for key, param, _ in SELECTIONS.references(selection):
            if param.ref in STAND_IN_SECTIONS and isinstance(selection[key], str):
                selection[key] = mapping.get(selection[key], selection[key])
        if moved and selection.get("sampler") is not None:
            move = SAMPLERS.of(selection).spec.get("move")  # an SCS budget of a named recipe
            if move is not None:
                move(selection, config, entry)
    # the scorers scored together: stand-ins in, paper scorers nothing stands in for left out
    if "score_group" in resolved:
        group = _dedupe([mapping.get(s, s) for s in resolved["score_group"]])
        papers = known_paper_names(config)
        resolved["score_group"] = [s for s in group if s in resolved.get("scorers", {}) or s not in papers]
    from curate.selection.fusion import FUSIONS, move_flyt_hparams

    for fusion in resolved.get("fusions", {}).values():
        fusion["scorers"] = _dedupe([mapping.get(s, s) for s in fusion["scorers"]])
        method = FUSIONS.of(fusion)
        if method.spec.get("stand_ins") is not None:  # a FLYT fusion's reference model and downstream set
            method.stand_ins(fusion, mapping)
        if method.spec.get("head") and entry.get("flyt_hparams"):
            fusion["hparams"] = move_flyt_hparams(fusion["hparams"], entry["flyt_hparams"])
        if moved and fusion.get("head_pool") is not None:
            fusion["head_pool"] = None  # a head trained on a paper pool: here, on the scale's pool
        accuracy = fusion.get("accuracy")  # an IN-weighted fusion's
        if accuracy and moved:
            recipe = accuracy.get("recipe")
            if recipe in config.get("recipes", {}) and recipe != entry["recipe"]:
                # a paper's per-input filters (its recipe, its selections) move with the rows
                accuracy.update(recipe=None, selections=None)
            spec = paper_metric_spec(config["suites"][entry["suite"]], "imagenet_acc1")
            if accuracy["suite"] != entry["suite"] and spec and "task" in spec:
                accuracy.update(suite=entry["suite"], task=spec["task"])
    return resolved


def seeds(config: dict) -> int:
    """How many seeds every table row is trained with: the config's ``seeds``, else the scale's,
    else 1."""
    return int(config.get("seeds") or scale_entry(config).get("seeds") or 1)


def replicate_recipes(config: dict) -> dict:
    """The recipes of the replicates of a run with k = :func:`seeds` seeds (complete recipes in,
    complete recipes out): for each recipe and r = 1 .. k-1, a copy whose ``seed`` is the
    recipe's plus r, named by `curate.workflow.paths.replicate_name`. None when k = 1, so a
    one-seed run's config is that of a run without replicates."""
    from curate.workflow.paths import replicate_name

    out = {}
    for name, recipe in config["recipes"].items():
        for r in range(1, seeds(config)):
            seed = int(recipe["seed"]) + r
            out[replicate_name(name, seed)] = copy.deepcopy(recipe) | {"seed": seed}
    return out


def replicates(config: dict, recipe: str) -> list[str]:
    """The recipes a table row with ``recipe`` is trained with, one per seed (replicate 0 is the
    recipe itself)."""
    from curate.workflow.paths import replicate_name

    seed = int(config["recipes"][recipe]["seed"])
    return [recipe] + [replicate_name(recipe, seed + r) for r in range(1, seeds(config))]
