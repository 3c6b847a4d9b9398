"""DataComp leaderboard files, written locally: records as evaluated, sorted uids, an info file."""

import json

import numpy as np
import pytest

from curate.data.subset import load_subset, save_subset
from curate.reporting.submission import FILES, write_submission

INFO = {
    "pool": "synthetic-tiny",
    "selection": "clip_score_clean_30",
    "selection_entry": {"method": "clip_score", "scorer": "tiny-clip-clean", "fraction": 0.3},
    "recipe": "tiny-clip",
    "recipe_entry": {"model": "tiny-vit", "samples_seen": 16000, "lr": 0.002},
    "suite": "synthetic",
}


def records_file(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


RECORDS = [
    {"key": "objects", "dataset": "Objects", "metrics": {"acc1": 0.2, "main_metric": 0.2}},
    {"key": "shape", "dataset": "Shape", "metrics": {"acc1": 0.4, "main_metric": 0.4}},
    {"key": "retrieval", "dataset": "Retrieval", "metrics": {"mean_recall@1": 0.3, "main_metric": 0.3}},
]


def test_writes_records_sorted_uids_and_info(tmp_path):
    evaluation = records_file(tmp_path / "e.jsonl", RECORDS)
    uids = ["f" * 32, "0" * 31 + "1", "f" * 32, "a" * 32]
    save_subset(tmp_path / "s.npy", uids)
    paths = write_submission(tmp_path / "out", evaluation, tmp_path / "s.npy", INFO, {"Objects": ["objects"]})
    assert sorted(p.name for p in paths.values()) == sorted(FILES)
    assert (tmp_path / "out" / "eval_results.jsonl").read_text() == evaluation.read_text()
    written = load_subset(tmp_path / "out" / "uids.npy", require_sorted=True)
    assert written.dtype == np.dtype("u8,u8") and len(written) == 4  # the repeat is kept
    assert written[0]["f1"] == 1 and written[-1]["f0"] == 2**64 - 1
    info = json.loads((tmp_path / "out" / "info.json").read_text())
    assert info["subset_size"] == 4 and info["unique_uids"] == 3
    assert info["hyperparameters"] == INFO["recipe_entry"] and info["selection_config"] == INFO["selection_entry"]
    assert info["scores"]["Objects"] == pytest.approx(0.2)
    assert info["scores"]["Average"] == pytest.approx(0.3)
    assert info["uploaded"] is False


def test_refuses_an_unsorted_subset_and_empty_records(tmp_path):
    evaluation = records_file(tmp_path / "e.jsonl", RECORDS)
    np.save(tmp_path / "unsorted.npy", np.array([(2, 0), (1, 0)], dtype="u8,u8"))
    with pytest.raises(ValueError, match="not sorted"):
        write_submission(tmp_path / "out", evaluation, tmp_path / "unsorted.npy", INFO, {})
    save_subset(tmp_path / "s.npy", ["a" * 32])
    with pytest.raises(ValueError, match="no evaluation records"):
        write_submission(tmp_path / "out", records_file(tmp_path / "empty.jsonl", []), tmp_path / "s.npy", INFO, {})
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"key": "x"}\n')
    with pytest.raises(ValueError, match="not an evaluation record"):
        write_submission(tmp_path / "out", bad, tmp_path / "s.npy", INFO, {})
