"""The workflow's config: what a user edits for a run, the catalogues beside it, and the checks.

``config.yaml`` holds the run's settings (scale, data_root, threads, batch sizes, the tables to
build). The catalogues of everything a run can name - pools, models, scorers, fusions,
selections, recipes, suites, scales, figures - live in ``config/*.yaml``; the entries that have
one source elsewhere are generated here: DataComp's recipes and its 38-task suite from
`curate.training.datacomp` and `curate.evaluation.datacomp`, MoS's paper selections from the
grids of ``selection_grids``. A user's config (``config.yaml``, ``--configfile``, ``--config``)
is merged over the catalogues, so it can change or add any entry.

:func:`prepare_config` then checks everything and fills every default: the structure against
``schemas/config.schema.yaml`` (defaults for run settings), each method-based entry through its
registry (parameters and defaults: `curate.registry`), the scale's stand-ins, and every name that
refers to another entry. Every error names its key.
"""

from __future__ import annotations

import copy
from pathlib import Path

import yaml

from curate.registry import ConfigError, Registry, defaults_validator, load_plugins, require_entry

REPO = Path(__file__).resolve().parents[2]
SCHEMA = "schemas/config.schema.yaml"
CATALOGUE_DIR = "config"


def merge(base: dict, override: dict) -> dict:
    """``override`` merged into a copy of ``base``, mappings recursively (other values replaced)."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def read_catalogues(root: Path = REPO) -> dict:
    """Every ``config/*.yaml`` file of the repository, merged (in file-name order)."""
    merged: dict = {}
    for path in sorted((Path(root) / CATALOGUE_DIR).glob("*.yaml")):
        content = yaml.safe_load(path.read_text()) or {}
        if not isinstance(content, dict):
            raise ConfigError(f"{path}: expected a mapping of config sections")
        merged = merge(merged, content)
    return merged


def short_scorer_name(scorer: str) -> str:
    """A paper scorer's short name in MoS's selection ids: ``openai-clip-b32`` -> ``clip_b32``,
    ``blip2-itm-g14-pt`` -> ``blip2_g14_pt``."""
    return scorer.removeprefix("openai-").replace("-itm-", "-").replace("-", "_")


def expand_selection_grids(grids: list) -> dict:
    """The selections of ``selection_grids``: per grid, ``<prefix>_<short scorer name>`` for each
    scorer and the named ``fusions`` entries, all with the grid's ``method`` and ``params``."""
    selections = {}
    for grid in grids or ():
        for scorer in grid.get("scorers", []):
            selections[f"{grid['prefix']}_{short_scorer_name(scorer)}"] = {
                "method": grid["method"],
                "scorer": scorer,
                **grid.get("params", {}),
            }
        for name, fusion in grid.get("fusions", {}).items():
            selections[name] = {"method": grid["method"], "fusion": fusion, **grid.get("params", {})}
    return selections


def generated_entries(config: dict) -> dict:
    """Entries with one source in code or in a compact spec: DataComp's recipes and suite, MoS's
    paper selections."""
    from curate.evaluation.datacomp import datacomp38_suite
    from curate.training.datacomp import DATACOMP_RECIPES

    return {
        "recipes": {f"datacomp-{scale}": dict(recipe) for scale, recipe in DATACOMP_RECIPES.items()},
        "suites": {"datacomp38": datacomp38_suite()},
        "selections": expand_selection_grids(config.get("selection_grids")),
    }


def check_structure(config: dict, root: Path = REPO) -> None:
    """Validate ``config`` against the schema (filling its defaults), raising ConfigError at the
    first error's key path."""
    schema = yaml.safe_load((Path(root) / SCHEMA).read_text())
    errors = sorted(defaults_validator(schema).iter_errors(config), key=lambda e: list(e.absolute_path))
    if errors:
        error = errors[0]
        where = ".".join(str(p) for p in error.absolute_path) or "config"
        raise ConfigError(f"{where}: {error.message}")


def registries() -> dict[str, Registry]:
    """The config sections whose entries are completed by a registry, with that registry."""
    from curate.data.datasets import DATASETS
    from curate.scoring.components import CAPTIONERS, IMAGE_ENCODERS, LANGID_MODELS, SENTENCE_ENCODERS
    from curate.scoring.kinds import SCORER_KINDS
    from curate.selection.fusion import FUSIONS
    from curate.selection.methods import SELECTIONS
    from curate.training.trainers import TRAINERS

    return {
        "datasets": DATASETS,
        "captioners": CAPTIONERS,
        "sentence_encoders": SENTENCE_ENCODERS,
        "langid_models": LANGID_MODELS,
        "image_encoders": IMAGE_ENCODERS,
        "scorers": SCORER_KINDS,
        "fusions": FUSIONS,
        "selections": SELECTIONS,
        "recipes": TRAINERS,
    }


def complete_entries(config: dict) -> None:
    """Every registry-based entry checked and completed in place (suites' tasks too)."""
    from curate.evaluation.task_types import TASK_TYPES

    for section, registry in registries().items():
        config[section] = {
            name: registry.complete(entry, f"{section}.{name}") for name, entry in config.get(section, {}).items()
        }
    for suite, entry in config["suites"].items():
        entry["tasks"] = {
            key: TASK_TYPES.complete(task, f"suites.{suite}.tasks.{key}") for key, task in entry["tasks"].items()
        }


def check_scale(config: dict) -> None:
    if config["scale"] not in config["scales"]:
        raise ConfigError(f"scale: {config['scale']!r} is not a scale (scales: {', '.join(config['scales'])})")


#: Scorer kinds whose scorers `score_group` can score together (rules/score.smk).
GROUPED_KINDS = ("open_clip", "blip_itm")


def check_references(config: dict) -> None:
    """Every name that refers to another entry names one (a paper name known to a scale's
    stand-ins is allowed where the parameter says so: that entry is then not built)."""
    from curate.workflow.scales import known_paper_names
    from curate.workflow.tables import GROUND_TRUTH_TABLES, table_selections

    paper_names = known_paper_names(config)
    for model, entry in config.get("models", {}).items():
        if entry["library"] == "trained":  # a run of this workflow
            for section, key in (("pools", "pool"), ("selections", "selection"), ("recipes", "recipe")):
                require_entry(config, section, entry[key], f"models.{model}.{key}")
        if "processor" in entry:
            require_entry(config, "models", entry["processor"], f"models.{model}.processor")
            if config["models"][entry["processor"]]["library"] != "huggingface":
                raise ConfigError(f"models.{model}.processor: {entry['processor']!r} is not a huggingface model")
    for scale, entry in config["scales"].items():
        for axis in ("pool", "recipe", "suite"):
            require_entry(config, axis + "s", entry[axis], f"scales.{scale}.{axis}")
        for table, selections in (entry.get("tables") or {}).items():
            require_entry(config, "tables", table, f"scales.{scale}.tables")
            for selection in selections:
                require_entry(config, "selections", selection, f"scales.{scale}.tables.{table}")
    for section, registry in registries().items():
        for name, entry in config[section].items():
            where = f"{section}.{name}"
            if section == "fusions" and any(s not in config["scorers"] for s in entry["scorers"]):
                for scorer in entry["scorers"]:
                    if scorer not in config["scorers"] and scorer not in paper_names:
                        require_entry(config, "scorers", scorer, f"{where}.scorers")
                continue  # a fusion of a paper scorer nothing stands in for is not built
            registry.check_references(config, entry, where, paper_names)
    for suite, entry in config["suites"].items():
        for group, tasks in entry["groups"].items():
            for task in tasks:
                if task not in entry["tasks"]:
                    raise ConfigError(f"suites.{suite}.groups.{group}: task {task!r} is not in suites.{suite}.tasks")
        if entry.get("tiny_analogue"):
            require_entry(config, "suites", entry["tiny_analogue"], f"suites.{suite}.tiny_analogue")
    for table, entry in config["tables"].items():
        for selection in entry["selections"]:
            require_entry(config, "selections", selection, f"tables.{table}.selections")
        for name in entry.get("pending") or {}:
            if name in config["selections"]:
                raise ConfigError(
                    f"tables.{table}.pending: {name!r} is a selection that is built; list it under selections"
                )
        pool = config["pools"][config["scales"][config["scale"]]["pool"]]
        if table in GROUND_TRUTH_TABLES:
            continue  # built from a synthetic pool's ground truth only; elsewhere not asked for
        for selection in table_selections(config, table):
            entry = config["selections"][selection]
            if registries()["selections"].of(entry).spec.get("needs_ground_truth") and pool["source"] != "synthetic":
                raise ConfigError(
                    f"tables.{table}.selections: {selection!r} needs ground truth, which only synthetic pools have"
                )
    for scorer in config.get("score_group", []):
        require_entry(config, "scorers", scorer, "score_group")
        kind = config["scorers"][scorer]["library"]
        if kind not in GROUPED_KINDS:
            raise ConfigError(
                f"score_group: {scorer!r} is a {kind!r} scorer; only {' and '.join(GROUPED_KINDS)} scorers are "
                "scored in groups (one pass over the pool's images)"
            )
    for name, entry in config.get("published_uids", {}).items():
        if (entry.get("url") is None) == (entry.get("path") is None):
            raise ConfigError(f"published_uids.{name}: give exactly one of url or path")
    check_pools(config)
    for claim, entry in config.get("claims", {}).items():
        if entry is None:
            continue
        names = [entry.get("selection"), entry.get("baseline"), *(entry.get("baselines") or [])]
        for name in [n for pair in entry.get("pairs") or [] for n in pair] + [n for n in names if n]:
            require_entry(config, "selections", name, f"claims.{claim}")
        if entry.get("table"):
            require_entry(config, "tables", entry["table"], f"claims.{claim}.table")
        if entry["kind"] == "at_least_each_input" and config["selections"][entry["selection"]].get("fusion") is None:
            raise ConfigError(f"claims.{claim}.selection: {entry['selection']!r} fuses no scorers")
        if entry["kind"] == "drops_noise":
            from curate.data.synthetic.pool import NOISE_TYPES

            if entry["noise_type"] not in NOISE_TYPES:
                raise ConfigError(
                    f"claims.{claim}.noise_type: {entry['noise_type']!r} is not one of {list(NOISE_TYPES)}"
                )
    for figure, entry in config.get("figures", {}).items():
        selections = list((entry.get("selections") or {}).values())
        selections += [s for series in (entry.get("series") or {}).values() for s in series]
        for selection in selections:
            require_entry(config, "selections", selection, f"figures.{figure}")
        if entry.get("fusion"):
            require_entry(config, "fusions", entry["fusion"], f"figures.{figure}.fusion")
        for scorer in entry.get("scorers") or []:
            require_entry(config, "scorers", scorer, f"figures.{figure}.scorers")


def check_pools(config: dict) -> None:
    """A pool read in place names its ``layout`` and ``root`` together; a pool's ``precomputed``
    maps scorers to ``library: metadata`` scorers whose files keep the replaced scorer's contract
    (so every reader of its scores reads them alike)."""
    from curate.scoring.kinds import score_contract

    for pool, entry in config["pools"].items():
        where = f"pools.{pool}"
        if entry["source"] == "synthetic":
            if entry.get("layout") or entry.get("root"):
                raise ConfigError(f"{where}.root: a synthetic pool is generated, not read from a folder")
            continue
        if (entry.get("layout") is None) != (entry.get("root") is None):
            raise ConfigError(f"{where}: an existing download is read with both `layout` and `root`")
        if entry.get("retry_failed") and entry.get("root") is None:
            raise ConfigError(
                f"{where}.retry_failed: only for a pool read in place (`root`); the workflow's own download "
                "retries with download.retry_failed"
            )
        for scorer, reader in (entry.get("precomputed") or {}).items():
            key = f"{where}.precomputed.{scorer}"
            require_entry(config, "scorers", reader, key)
            if config["scorers"][reader]["library"] != "metadata":
                raise ConfigError(f"{key}: {reader!r} is not a `library: metadata` scorer")
            if scorer not in config["scorers"]:
                continue  # a paper's scorer nothing configures: nothing reads it on this pool
            ours, theirs = score_contract(config["scorers"][reader]), score_contract(config["scorers"][scorer])
            if ours != theirs:
                raise ConfigError(
                    f"{key}: {reader!r} writes the columns {list(ours)}, but {scorer!r}'s readers expect "
                    f"{list(theirs)}: set its `score_column`"
                )


def assemble_config(config: dict, root: Path = REPO) -> dict:
    """A user's ``config`` merged over the catalogues, the generated entries and its scale's own
    ``config`` (its plugins imported first): the whole config, not yet checked."""
    load_plugins(config.get("plugins"))
    catalogues = read_catalogues(root)
    full = merge(catalogues, generated_entries(merge(catalogues, config)))
    scale = (full.get("scales") or {}).get(merge(full, config).get("scale")) or {}
    return merge(merge(full, scale.get("config") or {}), config)


def check_config(config: dict, root: Path = REPO) -> dict:
    """The whole config checked and completed: structure and run defaults, every registry entry
    with its defaults, the recipes of the seeds' replicates added (`curate.workflow.scales.seeds`),
    the scale's stand-ins applied, every reference checked."""
    from curate.workflow.scales import apply_stand_ins, replicate_recipes

    config = copy.deepcopy(config)
    check_structure(config, root)
    check_scale(config)
    complete_entries(config)
    config["recipes"].update(replicate_recipes(config))
    config = apply_stand_ins(config)
    check_references(config)
    return config


def prepare_config(config: dict, root: Path = REPO) -> dict:
    """The complete, checked config of a run from the user's ``config`` (config.yaml with any
    overrides): :func:`check_config` of :func:`assemble_config`."""
    return check_config(assemble_config(config, root), root)


def load_config(root: Path = REPO, overrides: dict | None = None, configfile: str = "config.yaml") -> dict:
    """``prepare_config`` of the repository's config.yaml with ``overrides`` merged over it (what
    ``snakemake --config`` does), for tests and scripts outside a workflow run."""
    config = yaml.safe_load((Path(root) / configfile).read_text()) or {}
    return prepare_config(merge(config, overrides or {}), root)
