import math

import numpy as np
import pandas as pd
import pytest

from curate.data.records import write_records
from curate.data.subset import save_subset, uids_to_u8u8
from curate.reporting.tables import leaderboard, selection_quality
from tests.unit.pool_fixtures import uid


@pytest.fixture
def truth():
    # uids 0..9; 0..5 clean (6 clean), 6..9 noisy
    return pd.DataFrame(
        {
            "uid": [uid(i) for i in range(10)],
            "is_clean": [i < 6 for i in range(10)],
            "noise_type": ["clean"] * 6 + ["gibberish"] * 4,
        }
    )


def test_precision_and_recall_by_hand(truth):
    # kept unique {0, 1, 2, 7}: 3 clean of 4 kept -> precision 0.75; 3 of 6 clean -> recall 0.5
    subset = uids_to_u8u8([uid(0), uid(1), uid(1), uid(2), uid(7)])
    quality = selection_quality(subset, truth)
    assert quality == {"subset_size": 5, "unique_uids": 4, "precision": 0.75, "recall": 0.5}


def test_no_ground_truth_gives_nan(truth):
    quality = selection_quality(uids_to_u8u8([uid(0)]), None)
    assert math.isnan(quality["precision"]) and math.isnan(quality["recall"])


def test_leaderboard_rows(tmp_path, truth):
    truth_path = tmp_path / "truth.parquet"
    truth.to_parquet(truth_path)
    rows = []
    for name, kept, accs in [("all", range(10), (0.5, 0.25)), ("clean", range(6), (0.75, None))]:
        subset_path = tmp_path / f"{name}.npy"
        save_subset(subset_path, uids_to_u8u8([uid(i) for i in kept]))
        records = [
            {"key": "shape", "dataset": "Shape", "metrics": {"acc1": accs[0], "main_metric": accs[0]}},
            {"key": "digits", "dataset": "Digits", "metrics": {"main_metric": accs[1]}},
        ]
        eval_path = tmp_path / f"{name}.jsonl"
        write_records(records, eval_path)
        rows.append(
            {
                "selection": name,
                "pool": "p",
                "recipe": "r",
                "suite": "s",
                "subset": subset_path,
                "evaluation": eval_path,
            }
        )
    table = leaderboard(rows, [truth_path], {"Attributes": ["shape"], "OCR": ["digits"]})
    assert list(table.columns[:8]) == [
        "selection",
        "pool",
        "recipe",
        "suite",
        "subset_size",
        "unique_uids",
        "precision",
        "recall",
    ]
    first, second = table.iloc[0], table.iloc[1]
    assert first["precision"] == pytest.approx(0.6) and first["recall"] == 1.0
    assert second["precision"] == 1.0 and second["recall"] == 1.0
    assert first["Average"] == pytest.approx(0.375) and first["shape"] == 0.5
    # a task without a main metric is left out of the average (docs/algorithms.md §3)
    assert second["Average"] == pytest.approx(0.75) and np.isnan(second["digits"])
