"""Files for a DataComp filtering-track leaderboard submission, written locally; nothing is uploaded.

For one pool/selection/recipe/suite the submission folder holds:

- ``eval_results.jsonl``: the evaluation records, one DataComp record per task
  (``{"key", "dataset", "metrics": {..., "main_metric"}}``), as DataComp's ``evaluate.py``
  writes them;
- ``uids.npy``: the subset as DataComp reads one, a numpy array of ``u8,u8`` uids sorted
  (repeats kept: they mean "repeat this sample");
- ``info.json``: what was trained and how: pool, selection (its config entry), recipe (the
  training hyperparameters), suite, subset size and unique uids, and the scores DataComp's
  leaderboard shows (the suite's group averages and Average).

Uploading (DataComp's ``hf_upload.py`` and its form) is left to a person.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from curate.data.records import aggregate, read_records
from curate.data.subset import is_sorted, load_subset, subset_counts

FILES = ("eval_results.jsonl", "uids.npy", "info.json")


def submission_info(
    pool: str,
    selection: str,
    selection_entry: dict,
    recipe: str,
    recipe_entry: dict,
    suite: str,
    subset: np.ndarray,
    records: list[dict],
    groups: dict,
) -> dict:
    """The info file's content (pure)."""
    scores = aggregate(records, groups)
    return {
        "pool": pool,
        "selection": selection,
        "selection_config": dict(selection_entry),
        "recipe": recipe,
        "hyperparameters": dict(recipe_entry),
        "suite": suite,
        "subset_size": int(len(subset)),
        "unique_uids": int(len(subset_counts(subset)[0])),
        "scores": {name: value for name, value in scores.items()},
        "uploaded": False,
    }


def write_submission(out_dir, evaluation, subset_path, info_fields: dict, groups: dict) -> dict:
    """Write the three files into ``out_dir``; returns their paths by name.

    ``info_fields`` holds ``pool``, ``selection``, ``selection_entry``, ``recipe``,
    ``recipe_entry`` and ``suite``. The records must each have ``key`` and ``metrics`` (read
    back from the file), and the subset must be a sorted ``u8,u8`` array.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    records = read_records(evaluation)
    if not records:
        raise ValueError(f"{evaluation}: no evaluation records")
    subset = load_subset(subset_path)
    if not is_sorted(subset):
        raise ValueError(f"{subset_path}: DataComp reads sorted uids; this subset is not sorted")
    paths = {name: out_dir / name for name in FILES}
    shutil.copyfile(evaluation, paths["eval_results.jsonl"])
    np.save(paths["uids.npy"], subset)
    info = submission_info(subset=subset, records=records, groups=groups, **info_fields)
    paths["info.json"].write_text(json.dumps(info, indent=2, sort_keys=False) + "\n")
    return paths
