"""Complete registry entries for unit tests that call a method directly (the workflow completes
them from config; here each test gives only what it is about, with placeholder references)."""

from curate.scoring.components import LANGID_MODELS
from curate.scoring.kinds import SCORER_KINDS
from curate.selection.fusion import FUSIONS
from curate.selection.methods import SELECTIONS
from curate.training.trainers import TRAINERS

PLACEHOLDERS = {"langid": "lid", "embeddings": "clip", "target": "dataset", "scorer": "clip"}


#: A language detector entry as the workflow completes it: fastText, from the file a test trains.
FASTTEXT = LANGID_MODELS.complete({"source": "train", "seed": 0, "n_per_language": 1}, "langid_models.test")


def selection(method: str, score_column: str = "clip_score", langid_model: dict = FASTTEXT, **params) -> dict:
    """A complete selection entry of ``method`` as the workflow hands it to the method
    (`Workspace.selection_params`); the references it requires get placeholders, and a DataComp
    baseline gets its language detector's entry (``langid_model``, a trained fastText by default)."""
    entry = {"method": method, **params}
    required = SELECTIONS[method].all_params(entry)
    for key, name in PLACEHOLDERS.items():
        if key in required and required[key].required and key not in entry:
            entry[key] = name
    completed = SELECTIONS.complete(entry, "selections.test") | {"score_column": score_column}
    if "langid" in required:
        completed["langid_model"] = langid_model
    return completed


def fusion(method: str, scorers=("a", "b", "c"), **params) -> dict:
    return FUSIONS.complete({"method": method, "scorers": list(scorers), **params}, "fusions.test")


def recipe(**params) -> dict:
    return TRAINERS.complete(params, "recipes.test")


def scorer(library: str, **params) -> dict:
    return SCORER_KINDS.complete({"library": library, **params}, "scorers.test")
