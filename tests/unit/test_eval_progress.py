"""Evaluation task by task (curate.evaluation.progress): records kept as tasks finish, a rerun
evaluates only what is not kept, a failing task names itself and the others still run."""

import json

import pytest

from curate.evaluation.progress import TaskFailures, clear_progress, progress_file, run_tasks

TASKS = {"a": {"type": "classification", "dir": "/t/a"}, "vtab/b": {"type": "retrieval", "dir": "/t/b"}, "c": {}}


def _model(tmp_path, content=b"weights"):
    model = tmp_path / "model"
    model.mkdir(exist_ok=True)
    (model / "open_clip_model.safetensors").write_bytes(content)
    return model


class Evaluator:
    def __init__(self, fail=()):
        self.calls, self.fail = [], set(fail)

    def __call__(self, key, task):
        self.calls.append(key)
        if key in self.fail:
            raise ValueError(f"broken task folder {task.get('dir')}")
        return {"key": key, "dataset": key, "metrics": {"main_metric": len(key) / 10}}


def test_a_failing_task_names_itself_and_the_others_still_run(tmp_path):
    model, progress = _model(tmp_path), tmp_path / "suite.tasks"
    first = Evaluator(fail={"vtab/b"})
    with pytest.raises(TaskFailures) as failed:
        run_tasks(TASKS, first, model, progress)
    assert first.calls == ["a", "vtab/b", "c"]  # c ran after b failed
    assert failed.value.failures == {"vtab/b": "ValueError: broken task folder /t/b"}
    assert "1 of 3 tasks failed" in str(failed.value) and "vtab/b: ValueError" in str(failed.value)
    assert sorted(p.name for p in progress.iterdir()) == ["a.json", "c.json"]

    second = Evaluator()  # the rerun evaluates only the failed task
    records = run_tasks(TASKS, second, model, progress)
    assert second.calls == ["vtab/b"]
    assert [r["key"] for r in records] == ["a", "vtab/b", "c"]  # the suite's order
    assert records == run_tasks(TASKS, Evaluator(), model, None)  # as one uninterrupted run
    clear_progress(progress)
    assert not progress.exists()


def test_kept_records_of_another_model_or_task_entry_are_evaluated_again(tmp_path):
    model, progress = _model(tmp_path), tmp_path / "suite.tasks"
    with pytest.raises(TaskFailures):
        run_tasks(TASKS, Evaluator(fail={"c"}), model, progress)
    _model(tmp_path, b"retrained")  # the model changed since: nothing kept is used
    again = Evaluator()
    run_tasks(TASKS, again, model, progress)
    assert again.calls == ["a", "vtab/b", "c"]

    changed = dict(TASKS, a={"type": "classification", "dir": "/t/a2"})  # one task's entry changed
    third = Evaluator()
    run_tasks(changed, third, model, progress)
    assert third.calls == ["a"]


def test_a_kept_record_cut_by_a_kill_is_evaluated_again(tmp_path):
    model, progress = _model(tmp_path), tmp_path / "suite.tasks"
    with pytest.raises(TaskFailures):
        run_tasks(TASKS, Evaluator(fail={"c"}), model, progress)
    path = progress_file(progress, "vtab/b")
    assert path.name == "vtab__b.json" and json.loads(path.read_text())["record"]["key"] == "vtab/b"
    path.write_text('{"fingerprint": "ab')  # truncated
    again = Evaluator()
    run_tasks(TASKS, again, model, progress)
    assert again.calls == ["vtab/b", "c"]


def test_without_a_progress_folder_failures_are_still_collected(tmp_path):
    evaluator = Evaluator(fail={"a", "c"})
    with pytest.raises(TaskFailures) as failed:
        run_tasks(TASKS, evaluator, _model(tmp_path), None)
    assert evaluator.calls == ["a", "vtab/b", "c"] and sorted(failed.value.failures) == ["a", "c"]
