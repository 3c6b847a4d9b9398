"""Checks of config.yaml that a JSON schema cannot express: names that must refer to entries."""

from __future__ import annotations

from curate.workflow import table_selections


#: The model libraries a pretrained scorer of each library loads (default: its own).
SCORER_MODEL_LIBRARIES = {"blip_itm": ("huggingface", "url")}


class ConfigError(ValueError):
    """A config key refers to something that is not there; the message names the key."""


def _require(config: dict, section: str, name: str, where: str) -> None:
    if name not in config.get(section, {}):
        known = ", ".join(sorted(config.get(section, {}))) or "none"
        raise ConfigError(f"{where}: {name!r} is not an entry of `{section}` (known: {known})")


def _paper_names(config: dict) -> set:
    """The papers' scorer names every scale's `stand_ins` knows (curate.paper_tables): a selection
    or fusion may name one that is not configured; it is then not built, and says so."""
    return {name for entry in config["scales"].values() for name in entry.get("stand_ins", {})}


def _require_or_paper_name(config: dict, section: str, name: str, where: str) -> bool:
    """Whether an entry of ``section``; a known paper name that is not configured is allowed (False)."""
    if name in config.get(section, {}):
        return True
    if name in _paper_names(config):
        return False
    _require(config, section, name, where)


def _require_scorer(config: dict, name: str, where: str) -> bool:
    return _require_or_paper_name(config, "scorers", name, where)


def check_references(config: dict) -> None:
    """Raise ConfigError naming the first key whose reference is dangling."""
    for model, entry in config.get("models", {}).items():
        if "processor" in entry:
            _require(config, "models", entry["processor"], f"models.{model}.processor")
            if config["models"][entry["processor"]]["library"] != "huggingface":
                raise ConfigError(f"models.{model}.processor: {entry['processor']!r} is not a huggingface model")
    _require(config, "scales", config["scale"], "scale")
    for scale, entry in config["scales"].items():
        _require(config, "pools", entry["pool"], f"scales.{scale}.pool")
        _require(config, "recipes", entry["recipe"], f"scales.{scale}.recipe")
        _require(config, "suites", entry["suite"], f"scales.{scale}.suite")
    for scorer, entry in config["scorers"].items():
        library = entry.get("library", "open_clip")
        if entry.get("source") == "pretrained":
            _require(config, "models", entry["model"], f"scorers.{scorer}.model")
            model = config["models"][entry["model"]]
            if model["library"] not in SCORER_MODEL_LIBRARIES.get(library, (library,)):
                raise ConfigError(f"scorers.{scorer}.library: {library!r}, but models.{entry['model']} is a "
                                  f"{model['library']!r} model")
            if library == "blip_itm" and model["library"] == "url" and model.get("convert") != "blip_itm":
                raise ConfigError(f"scorers.{scorer}.model: models.{entry['model']} is an original checkpoint "
                                  "without `convert: blip_itm`, which the ITM scorer cannot load")
        if entry.get("source") == "train" and library == "open_clip":
            _require(config, "curated_sets", entry["curated_set"], f"scorers.{scorer}.curated_set")
            _require(config, "recipes", entry["recipe"], f"scorers.{scorer}.recipe")
        if library == "sieve":
            _require(config, "captioners", entry["captioner"], f"scorers.{scorer}.captioner")
            _require(config, "sentence_encoders", entry["sentence_encoder"], f"scorers.{scorer}.sentence_encoder")
        if library == "embedding":
            _require(config, "scorers", entry["embeddings"], f"scorers.{scorer}.embeddings")
            if config["scorers"][entry["embeddings"]].get("library", "open_clip") != "open_clip":
                raise ConfigError(f"scorers.{scorer}.embeddings: {entry['embeddings']!r} is not a CLIP scorer")
            if "target" in entry:
                _require(config, "suites", entry["target"], f"scorers.{scorer}.target")
            if "positives" in entry:
                _require(config, "curated_sets", entry["positives"], f"scorers.{scorer}.positives")
    for captioner, entry in config.get("captioners", {}).items():
        if entry["source"] == "train":
            _require(config, "curated_sets", entry["curated_set"], f"captioners.{captioner}.curated_set")
    for fusion, entry in config.get("fusions", {}).items():
        configured = [_require_scorer(config, scorer, f"fusions.{fusion}.scorers") for scorer in entry["scorers"]]
        if entry["method"] == "eflyt" and configured[0] and config["scorers"][entry["scorers"][0]].get("library", "open_clip") != "open_clip":
            raise ConfigError(f"fusions.{fusion}.scorers: E-FLYT reads a CLIP scorer's embeddings")
        if entry["method"] == "none" and len(entry["scorers"]) != 1:
            raise ConfigError(f"fusions.{fusion}.scorers: method 'none' takes exactly one scorer")
        if entry["method"] in ("mflyt", "eflyt"):
            reference = entry["reference"]
            if "scorer" in reference:
                _require(config, "scorers", reference["scorer"], f"fusions.{fusion}.reference.scorer")
            else:
                _require(config, "selections", reference["selection"], f"fusions.{fusion}.reference.selection")
                _require(config, "recipes", reference["recipe"], f"fusions.{fusion}.reference.recipe")
            suite, task = entry["downstream"]["suite"], entry["downstream"]["task"]
            _require(config, "suites", suite, f"fusions.{fusion}.downstream.suite")
            if task not in config["suites"][suite]["tasks"]:
                raise ConfigError(f"fusions.{fusion}.downstream.task: {task!r} is not in suites.{suite}.tasks")
        if entry["method"] == "in_weighted" and all(configured):
            suite, task = entry["accuracy"]["suite"], entry["accuracy"]["task"]
            _require(config, "suites", suite, f"fusions.{fusion}.accuracy.suite")
            if task not in config["suites"][suite]["tasks"]:
                raise ConfigError(f"fusions.{fusion}.accuracy.task: {task!r} is not in suites.{suite}.tasks")
    for selection, entry in config["selections"].items():
        if "scorer" in entry:
            _require_scorer(config, entry["scorer"], f"selections.{selection}.scorer")
        if "langid" in entry:
            _require(config, "langid_models", entry["langid"], f"selections.{selection}.langid")
        if "embeddings" in entry:
            _require(config, "scorers", entry["embeddings"], f"selections.{selection}.embeddings")
        if "target" in entry:
            _require(config, "suites", entry["target"], f"selections.{selection}.target")
        if "fusion" in entry:
            _require(config, "fusions", entry["fusion"], f"selections.{selection}.fusion")
        if "captioner" in entry:
            _require_or_paper_name(config, "captioners", entry["captioner"], f"selections.{selection}.captioner")
    for recipe, entry in config["recipes"].items():
        base = entry.get("base", {})
        if base.get("source") == "models":
            for part in ("vision_tower", "language_model"):
                _require(config, "models", base[part], f"recipes.{recipe}.base.{part}")
    for section in ("recipes", "suites"):
        for name, entry in config[section].items():
            if "tiny_analogue" in entry:
                _require(config, section, entry["tiny_analogue"], f"{section}.{name}.tiny_analogue")
    for name, entry in config["recipes"].items():
        if "tokenizer" in entry:
            _require(config, "curated_sets", entry["tokenizer"]["curated_set"], f"recipes.{name}.tokenizer.curated_set")
    for suite, entry in config["suites"].items():
        for group, tasks in entry["groups"].items():
            for task in tasks:
                if task not in entry["tasks"]:
                    raise ConfigError(f"suites.{suite}.groups.{group}: task {task!r} is not in suites.{suite}.tasks")
    for scale, entry in config["scales"].items():
        for table, selections in entry.get("tables", {}).items():
            _require(config, "tables", table, f"scales.{scale}.tables")
            for selection in selections:
                _require(config, "selections", selection, f"scales.{scale}.tables.{table}")
    for table, entry in config["tables"].items():
        for selection in entry["selections"]:
            _require(config, "selections", selection, f"tables.{table}.selections")
        for name in entry.get("pending", {}):
            if name in config["selections"]:
                raise ConfigError(f"tables.{table}.pending: {name!r} is a selection that is built; list it under selections")
    for figure, entry in config.get("figures", {}).items():
        for selection in list(entry.get("selections", {}).values()) + [s for series in entry.get("series", {}).values() for s in series]:
            _require(config, "selections", selection, f"figures.{figure}")
        if "fusion" in entry:
            _require(config, "fusions", entry["fusion"], f"figures.{figure}.fusion")
        for scorer in entry.get("scorers", []):
            _require(config, "scorers", scorer, f"figures.{figure}.scorers")
    pool = config["pools"][config["scales"][config["scale"]]["pool"]]
    for table in config["tables"]:
        for selection in table_selections(config, table):
            if config["selections"][selection]["method"] == "oracle" and pool["source"] != "synthetic":
                raise ConfigError(f"tables.{table}.selections: {selection!r} needs ground truth, which only synthetic pools have")
