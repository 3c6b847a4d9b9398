"""Complete registry entries for unit tests that call a method directly (the workflow completes
them from config; here each test gives only what it is about, with placeholder references)."""

from curate.scoring.kinds import SCORER_KINDS
from curate.selection.fusion import FUSIONS
from curate.selection.methods import SELECTIONS
from curate.training.trainers import TRAINERS

PLACEHOLDERS = {"langid": "lid", "embeddings": "clip", "target": "suite", "scorer": "clip"}


def selection(method: str, score_column: str = "clip_score", **params) -> dict:
    """A complete selection entry of ``method``; the references it requires get placeholders."""
    entry = {"method": method, **params}
    required = SELECTIONS[method].all_params(entry)
    for key, name in PLACEHOLDERS.items():
        if key in required and required[key].required and key not in entry:
            entry[key] = name
    return SELECTIONS.complete(entry, "selections.test") | {"score_column": score_column}


def fusion(method: str, scorers=("a", "b", "c"), **params) -> dict:
    return FUSIONS.complete({"method": method, "scorers": list(scorers), **params}, "fusions.test")


def recipe(**params) -> dict:
    return TRAINERS.complete(params, "recipes.test")


def scorer(library: str, **params) -> dict:
    return SCORER_KINDS.complete({"library": library, **params}, "scorers.test")
