"""Evaluating a suite task by task: each task's record is kept as it finishes, a rerun evaluates
only what is not kept, and a failing task names itself while the others still run.

`run_tasks` drives any family's evaluator (`curate.evaluation.evaluate`, `.blip`, `.llava`):

- **kept as it finishes**: each task's record goes to ``<progress>/<task>.json`` (written
  atomically) with the **fingerprint** of what produced it: the model's files (size and sha256 of
  each, `model_fingerprint`), the task's entry and folder. The progress folder lies beside the
  evaluation's output (``evals/.../<suite>.tasks/``), outside what Snakemake declares, so a failed
  or killed job leaves it in place (Snakemake deletes only declared outputs).
- **a rerun skips finished tasks**: a kept record whose fingerprint matches is taken as it is; one
  that does not (the model was retrained, the task changed) is evaluated again. The model is
  loaded only when a task is left to evaluate.
- **a failing task names itself**: its error is logged with its key and the next task runs; at the
  end the job fails with `TaskFailures`, listing every failed task and why. The kept records
  stay, so the rerun evaluates only the failed tasks.
- When every task has a record, the suite's records are returned in the suite's order; once the
  job has written its jsonl it removes the progress folder (`clear_progress`): the finished jsonl
  is then the only record, and a forced rerun evaluates everything again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from pathlib import Path
from typing import Callable

from curate.data.integrity import read_json, write_json

log = logging.getLogger(__name__)

__all__ = ["TaskFailures", "model_fingerprint", "task_fingerprint", "progress_file", "run_tasks", "clear_progress"]


class TaskFailures(RuntimeError):
    """Some tasks of a suite failed; the others' records are kept for the rerun."""

    def __init__(self, failures: dict, total: int, progress):
        self.failures = dict(failures)
        lines = "\n".join(f"  {key}: {why}" for key, why in self.failures.items())
        where = f" (kept in {progress})" if progress is not None else ""
        super().__init__(
            f"{len(self.failures)} of {total} tasks failed:\n{lines}\nthe other tasks' records are kept{where}; "
            "a rerun evaluates only the failed ones"
        )


def model_fingerprint(model) -> dict:
    """Size and sha256 of each file of a model folder (or of one model file), by relative path;
    a ``local-dir:`` prefix is dropped. What a kept task record was computed from."""
    path = Path(str(model).removeprefix("local-dir:"))
    if not path.exists():  # a model named, not a folder (a pretrained tag): its name
        return {"source": str(model)}
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    out = {}
    for f in files:
        digest = hashlib.sha256()
        with open(f, "rb") as stream:
            while block := stream.read(1 << 20):
                digest.update(block)
        out[f.relative_to(path).as_posix() if path.is_dir() else f.name] = [f.stat().st_size, digest.hexdigest()]
    return out


def task_fingerprint(model_print: dict, key: str, task: dict) -> str:
    """The sha256 of a task's record's provenance: the model's fingerprint, the task's key, entry
    and folder."""
    content = {"model": model_print, "key": key, "task": {k: v for k, v in task.items()}}
    return hashlib.sha256(json.dumps(content, sort_keys=True, default=str).encode()).hexdigest()


def progress_file(progress, key: str) -> Path:
    """Where one task's record is kept (a task key like ``vtab/cifar100`` becomes ``vtab__cifar100``)."""
    return Path(progress) / (str(key).replace("/", "__") + ".json")


def run_tasks(
    tasks: dict,
    evaluate: Callable[[str, dict], dict],
    model,
    progress=None,
) -> list[dict]:
    """The records of ``tasks`` (``{key: entry}``, in order): each kept in ``progress`` as it
    finishes, kept ones reused, failures collected (module doc). ``evaluate(key, entry)`` returns a
    task's record (``{"key", "dataset", "metrics"}``); ``model`` is the model folder the records
    come from (fingerprinted). Without ``progress`` nothing is kept, but failures are still
    collected and raised together."""
    model_print = model_fingerprint(model) if progress is not None else {}
    records: dict[str, dict] = {}
    failures: dict[str, str] = {}
    kept = 0
    if progress is not None:
        Path(progress).mkdir(parents=True, exist_ok=True)
    for key, task in tasks.items():
        path = progress_file(progress, key) if progress is not None else None
        fingerprint = task_fingerprint(model_print, key, task) if progress is not None else None
        if path is not None and path.is_file():
            try:
                saved = read_json(path, "kept task record")
            except (OSError, ValueError) as err:  # a record cut by a kill: evaluated again
                log.warning("task %s: its kept record %s is unreadable (%s): evaluating it again", key, path, err)
                saved = None
            if isinstance(saved, dict) and saved.get("fingerprint") == fingerprint and "record" in saved:
                records[key] = saved["record"]
                kept += 1
                log.info("task %s: kept from an earlier attempt (%s)", key, path)
                continue
            if saved is not None:
                log.info("task %s: its kept record is of another model or task entry: evaluating it again", key)
        try:
            record = evaluate(key, task)
        except Exception as err:  # noqa: BLE001 - every task runs; the failures are raised together
            log.exception("task %s failed", key)
            failures[key] = f"{type(err).__name__}: {err}"
            continue
        records[key] = record
        if path is not None:
            write_json(path, {"fingerprint": fingerprint, "record": record}, "kept task record")
    if failures:
        raise TaskFailures(failures, len(tasks), progress)
    if kept:
        log.info("%d of %d tasks were kept from an earlier attempt, %d evaluated", kept, len(tasks), len(tasks) - kept)
    return [records[key] for key in tasks]


def clear_progress(progress) -> None:
    """Remove a suite's kept task records, once its jsonl is written."""
    if progress is not None:
        shutil.rmtree(progress, ignore_errors=True)
