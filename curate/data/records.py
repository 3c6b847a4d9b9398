"""Evaluation records, DataComp's format: one JSON line per task,
``{"key": task key, "dataset": name, "metrics": {..., "main_metric": x or null}}``; and the group
averages DataComp's tables print."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np


def write_records(records: list[dict], path) -> Path:
    """Write records as JSON lines (atomically)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r, sort_keys=False) + "\n")
    os.replace(tmp, path)
    return path


def read_records(path) -> list[dict]:
    """Read JSON-lines records; a line without key/metrics raises naming the file and line."""
    path = Path(path)
    records = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            r = json.loads(line)
            if not isinstance(r, dict) or "key" not in r or "metrics" not in r:
                raise ValueError(f"{path}:{n}: not an evaluation record (needs 'key' and 'metrics')")
            records.append(r)
    return records


def _main_metric(record: dict):
    value = record["metrics"].get("main_metric")
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return float(value)


def aggregate(records: list[dict], groups: dict) -> dict:
    """Mean main metric per group (``{group: [task keys]}``) plus ``Average``: the plain mean of
    the main metric of every record that has one (a null main metric is left out, as DataComp
    leaves out FairFace and UTKFace). Within a group, tasks with a null main metric are left out
    too; a group with none left is None. A group naming a task without a record raises."""
    by_key = {}
    for r in records:
        if r["key"] in by_key:
            raise ValueError(f"two records for task {r['key']!r}")
        by_key[r["key"]] = r
    out = {}
    for group, keys in groups.items():
        missing = [k for k in keys if k not in by_key]
        if missing:
            raise ValueError(f"group {group!r}: no record for tasks {missing}")
        values = [v for v in (_main_metric(by_key[k]) for k in keys) if v is not None]
        out[group] = float(np.mean(values)) if values else None
    values = [v for v in (_main_metric(r) for r in records) if v is not None]
    out["Average"] = float(np.mean(values)) if values else None
    return out


def main_metric_of(records: list[dict], task: str) -> float:
    """The main metric of ``task`` in one model's records (a scorer's ImageNet-analogue accuracy, say)."""
    for record in records:
        if record["key"] == task:
            value = record["metrics"].get("main_metric")
            if value is None:
                raise ValueError(f"task {task!r} has no main metric")
            return float(value)
    raise ValueError(f"no evaluation record for task {task!r} (tasks: {[r['key'] for r in records]})")
