"""DataComp's evaluators beyond plain zero-shot classification and retrieval (docs/algorithms.md §3).

Metrics as DataComp's ``eval_utils`` computes them through WILDS' metric classes (names are the
keys DataComp's records carry), written here from their definitions:

- iWildCam (``wilds_eval.IWildCamEvaluator``): ``acc_avg``, ``recall-macro_all`` and the main
  metric ``F1-macro_all`` = sklearn's macro F1 over the labels present in the targets (WILDS
  passes ``labels=unique(y_true)``): a class predicted but never true does not count.
- FMoW (``FMoWEvaluator``): accuracy per year (``acc_worst_year``) and per region; the main metric
  ``acc_worst_region`` is the lowest accuracy of the regions with samples. **(quirk)** DataComp's
  code means to skip the "Other" region but compares the group NAME with "Other" while its
  grouper has no metadata map (names are ``region:5``), so no region is skipped: region 5 counts
  when it has samples. ``skip_regions`` restores the intent.
- Dollar Street (``DollarStreetEvaluator``): top-5 accuracy (true class among the 5 highest
  logits) per income group ``income_ds``; main metric ``acc_top5_wg`` = the worst group's.
- GeoDE (``GeoDEEvaluator``): accuracy per ``region``; main metric ``acc_wg``.
- FairFace / UTKFace (``FairFaceEvaluator``): four zero-shot predictions per face (race, gender,
  age, toxic: classnames and templates prefixed ``"<objective>:"``); race as white / non-white
  (predicted race != class 1), gender and age accuracy per ``race_binary``, gender accuracy per
  (gender, race), and the rate of crime-related (toxic class >= 18) and non-human (14..17) labels
  per race. No main metric.
- WinoGAViL (``wino_eval``): per instance, the k candidates with the highest similarity to the cue
  (k = the number of true associations) against the true ones, Jaccard index; main metric
  ``jaccard_score_10-12`` = mean over instances with 10 or 12 candidates.

Group metrics follow WILDS: ``<metric>_<field>:<value>`` per group with ``count_<field>:<value>``,
``<metric>_avg`` over all samples, ``<metric>_wg`` the lowest over groups with samples.
The per-sample metadata of the webdataset tasks is the ``.npy`` member of each sample (fields in
the order of `METADATA_FIELDS`), read by `read_npy_metadata`.
"""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import numpy as np

#: the column order of each task's per-sample .npy metadata (DataComp's ``_metadata_fields``)
METADATA_FIELDS = {
    "iwildcam": ["location", "sequence", "year", "month", "day", "hour", "minute", "second", "y"],
    "fmow": ["region", "year", "y"],
    "dollar_street": ["income_ds", "income_meta", "region"],
    "geode": ["region", "country"],
    "fairface": ["age", "gender", "race", "race_binary"],
}
FAIRFACE_OBJECTIVES = ("race", "gender", "age", "toxic")
SPECIAL_TYPES = ("iwildcam", "fmow", "dollar_street", "geode", "fairface", "winogavil")


def _as_int(a) -> np.ndarray:
    return np.asarray(a).astype(np.int64).reshape(-1)


def macro_f1(y_pred, y_true) -> float:
    """Mean over the labels present in `y_true` of 2TP / (2TP + FP + FN)."""
    y_pred, y_true = _as_int(y_pred), _as_int(y_true)
    scores = []
    for label in np.unique(y_true):
        tp = np.sum((y_pred == label) & (y_true == label))
        fp = np.sum((y_pred == label) & (y_true != label))
        fn = np.sum((y_pred != label) & (y_true == label))
        scores.append(2 * tp / (2 * tp + fp + fn))
    return float(np.mean(scores))


def macro_recall(y_pred, y_true) -> float:
    y_pred, y_true = _as_int(y_pred), _as_int(y_true)
    return float(np.mean([np.mean(y_pred[y_true == label] == label) for label in np.unique(y_true)]))


def group_metrics(name: str, values, groups: dict[str, np.ndarray]) -> dict:
    """WILDS' group evaluation of per-sample `values` (1 = correct): ``<name>_avg``, per group
    ``<name>_<group>`` and ``count_<group>``, ``<name>_wg`` = the lowest group mean among groups
    with samples. `groups`: group name -> boolean mask."""
    values = np.asarray(values, dtype=np.float64)
    out = {f"{name}_avg": float(values.mean())}
    present = []
    for group, mask in groups.items():
        count = int(np.sum(mask))
        out[f"{name}_{group}"] = float(values[mask].mean()) if count else 0.0
        out[f"count_{group}"] = count
        if count:
            present.append(out[f"{name}_{group}"])
    out[f"{name}_wg"] = float(min(present))
    return out


def groups_by(metadata, fields: list[str], by: list[str]) -> dict[str, np.ndarray]:
    """Boolean masks of the combinations of the metadata fields `by` that occur, named
    ``field:value`` joined by ``_`` (WILDS' group names)."""
    metadata = np.asarray(metadata).astype(np.int64)
    columns = [metadata[:, fields.index(f)] for f in by]
    keys = sorted(set(zip(*(c.tolist() for c in columns))))
    return {
        "_".join(f"{f}:{v}" for f, v in zip(by, key)): np.all([c == v for c, v in zip(columns, key)], axis=0)
        for key in keys
    }


def top_k_correct(logits, y_true, k: int) -> np.ndarray:
    """1 where the true class is among the k highest logits (ties: lower index first)."""
    logits, y_true = np.asarray(logits, dtype=np.float64), _as_int(y_true)
    order = np.argsort(-logits, axis=1, kind="stable")[:, :k]
    return (order == y_true[:, None]).any(axis=1).astype(np.float64)


def iwildcam_metrics(logits, y_true) -> dict:
    pred = np.argmax(np.asarray(logits), axis=1)
    y_true = _as_int(y_true)
    return {
        "acc_avg": float(np.mean(pred == y_true)),
        "recall-macro_all": macro_recall(pred, y_true),
        "F1-macro_all": macro_f1(pred, y_true),
    }


def fmow_metrics(logits, y_true, metadata, skip_regions=()) -> dict:
    fields = METADATA_FIELDS["fmow"]
    correct = (np.argmax(np.asarray(logits), axis=1) == _as_int(y_true)).astype(np.float64)
    out = group_metrics("acc", correct, groups_by(metadata, fields, ["year"]))
    out["acc_worst_year"] = out.pop("acc_wg")
    regions = groups_by(metadata, fields, ["region"])
    by_region = group_metrics("acc", correct, regions)
    kept = [
        by_region[f"acc_{g}"]
        for g, mask in regions.items()
        if mask.any() and int(g.split(":")[1]) not in set(skip_regions)
    ]
    out.update({k: v for k, v in by_region.items() if k not in ("acc_avg", "acc_wg")})
    out["acc_worst_region"] = float(min(kept))
    return out


def dollar_street_metrics(logits, y_true, metadata) -> dict:
    correct = top_k_correct(logits, y_true, 5)
    return group_metrics("acc_top5", correct, groups_by(metadata, METADATA_FIELDS["dollar_street"], ["income_ds"]))


def geode_metrics(logits, y_true, metadata) -> dict:
    correct = (np.argmax(np.asarray(logits), axis=1) == _as_int(y_true)).astype(np.float64)
    return group_metrics("acc", correct, groups_by(metadata, METADATA_FIELDS["geode"], ["region"]))


def fairface_metrics(predictions, metadata) -> dict:
    """`predictions` [N, 4]: predicted class per objective (race, gender, age, toxic);
    `metadata` [N, 4]: age, gender, race, race_binary."""
    pred = np.asarray(predictions).astype(np.int64)
    meta = np.asarray(metadata).astype(np.int64)
    fields = METADATA_FIELDS["fairface"]
    col = {f: meta[:, i] for i, f in enumerate(fields)}
    p = {o: pred[:, i] for i, o in enumerate(FAIRFACE_OBJECTIVES)}
    by_binary = groups_by(meta, fields, ["race_binary"])
    out = {}
    out.update(group_metrics("acc_race", ((p["race"] != 1).astype(int) == col["race_binary"]), by_binary))
    out.update(group_metrics("acc_gender", p["gender"] == col["gender"], by_binary))
    out.update(group_metrics("acc_age", p["age"] == col["age"], by_binary))
    out.update(group_metrics("acc_gender_x", p["gender"] == col["gender"], groups_by(meta, fields, ["gender", "race"])))
    by_race = groups_by(meta, fields, ["race"])
    out.update(group_metrics("toxicity_crime", p["toxic"] >= 18, by_race))
    out.update(group_metrics("toxicity_nonhuman", (p["toxic"] >= 14) & (p["toxic"] < 18), by_race))
    return out


def winogavil_jaccard(similarities, associations) -> float:
    """One instance: `similarities` of the cue to each candidate, `associations` the true mask.
    The k = sum(associations) most similar candidates (ties: the later candidate first, as numpy's
    ascending argsort read from the end) are compared with the true ones."""
    sims = np.asarray(similarities, dtype=np.float64)
    truth = np.asarray(associations, dtype=bool)
    k = int(truth.sum())
    chosen = np.zeros_like(truth)
    chosen[np.argsort(sims, kind="stable")[len(sims) - k :]] = True
    union = np.sum(truth | chosen)
    return float(np.sum(truth & chosen) / union) if union else 0.0


def winogavil_prompt(cue: str) -> str:
    """DataComp's text for a cue: lower-cased, with "A" or, before a vowel, "An"."""
    cue = cue.lower()
    return f"An {cue}" if cue[0] in "aeiou" else f"A {cue}"


def winogavil_associations(candidates, associations) -> np.ndarray:
    """The true mask over an instance's candidates (DataComp: ``np.isin(candidates, associations)``)."""
    return np.isin(np.asarray(candidates), np.asarray(associations))


def winogavil_metrics(instances) -> dict:
    """`instances`: (similarities, associations) per instance. DataComp's scores by candidate
    count (5, 6, 10, 12 candidates)."""
    scores = np.array([winogavil_jaccard(s, a) for s, a in instances])
    sizes = np.array([len(s) for s, _ in instances])

    def mean(mask):
        return float(scores[mask].mean()) if mask.any() else float("nan")

    return {
        "avg_jaccard_score": float(scores.mean()),
        "jaccard_score_5": mean(sizes == 5),
        "jaccard_score_6": mean(sizes == 6),
        "jaccard_score_10": mean(sizes == 10),
        "jaccard_score_12": mean(sizes == 12),
        "jaccard_score_5-6": mean(sizes <= 6),
        "jaccard_score_10-12": mean(sizes >= 10),
    }


def special_metrics(task_type: str, logits, y_true, metadata) -> dict:
    """The metrics of a webdataset task of type `task_type` from its classification logits,
    targets and per-sample metadata rows."""
    if task_type == "iwildcam":
        return iwildcam_metrics(logits, y_true)
    if task_type == "fmow":
        return fmow_metrics(logits, y_true, metadata)
    if task_type == "dollar_street":
        return dollar_street_metrics(logits, y_true, metadata)
    if task_type == "geode":
        return geode_metrics(logits, y_true, metadata)
    raise ValueError(f"no logit-based evaluator for task type {task_type!r}")


def read_npy_metadata(task_dir, split: str = "test") -> np.ndarray:
    """The ``.npy`` member of every sample of a clip_benchmark webdataset task, in reading order
    (shards ``0.tar`` .. ``n-1.tar``, members in tar order), stacked [N, fields]."""
    folder = Path(task_dir) / split
    n_shards = int((folder / "nshards.txt").read_text().strip())
    rows = []
    for shard in range(n_shards):
        with tarfile.open(folder / f"{shard}.tar") as tar:
            for member in tar:
                if member.isfile() and member.name.endswith(".npy"):
                    rows.append(np.load(io.BytesIO(tar.extractfile(member).read())).reshape(-1))
    if not rows:
        raise ValueError(f"task {task_dir}: no .npy metadata in its {split} shards")
    return np.stack(rows)
