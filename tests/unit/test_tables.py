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


def _seed_rows(tmp_path, values: dict) -> list[dict]:
    """Rows whose seeds score ``values[selection]`` on one task (objects, group Objects)."""
    rows = []
    for name, seed_values in values.items():
        subset_path = tmp_path / f"{name}.npy"
        save_subset(subset_path, uids_to_u8u8([uid(0)]))
        evaluations = []
        for seed, value in enumerate(seed_values):
            path = tmp_path / f"{name}.seed{seed}.jsonl"
            write_records([{"key": "objects", "dataset": "Objects", "metrics": {"main_metric": value}}], path)
            evaluations.append(path)
        rows.append(
            {"selection": name, "pool": "p", "recipe": "r", "suite": "s", "subset": subset_path}
            | {"evaluation": evaluations[0], "evaluations": evaluations}
        )
    return rows


def test_leaderboard_reports_the_mean_over_seeds_its_interval_and_the_paired_difference(tmp_path):
    from curate.reporting.stats import t_quantile

    rows = _seed_rows(tmp_path, {"no_filter": [0.2, 0.3, 0.4], "oracle": [0.4, 0.5, 0.9]})
    table = leaderboard(rows, None, {"Objects": ["objects"]}).set_index("selection")
    half = t_quantile(0.95, 2) / math.sqrt(3)
    assert table.loc["no_filter", "Average"] == pytest.approx(0.3)
    assert table.loc["no_filter", "Average_lo95"] == pytest.approx(0.3 - 0.1 * half)
    assert table.loc["no_filter", "Objects_hi95"] == pytest.approx(0.3 + 0.1 * half)
    assert table.loc["oracle", "seeds"] == 3 and table.loc["oracle", "objects"] == pytest.approx(0.6)
    # per-seed differences 0.2, 0.2, 0.5: mean 0.3, sd sqrt(0.03)
    assert table.loc["oracle", "Average_vs_no_filter"] == pytest.approx(0.3)
    assert table.loc["oracle", "Average_vs_no_filter_lo95"] == pytest.approx(0.3 - math.sqrt(0.03) * half)
    assert table.loc["no_filter", "Average_vs_no_filter"] == 0.0


def test_one_seed_leaves_the_intervals_blank(tmp_path):
    rows = _seed_rows(tmp_path, {"no_filter": [0.2], "oracle": [0.5]})
    table = leaderboard(rows, None, {"Objects": ["objects"]})
    path = tmp_path / "table.csv"
    from curate.reporting.tables import write_table

    write_table(table, path)
    text = path.read_text().splitlines()
    assert text[0].endswith(
        "Average,Objects,objects,seeds,Average_lo95,Average_hi95,Objects_lo95,Objects_hi95,"
        "Average_vs_no_filter,Average_vs_no_filter_lo95,Average_vs_no_filter_hi95"
    )
    # the oracle's one-seed difference is a number; its interval is blank, never 0
    assert text[2].endswith(",0.5000,0.5000,0.5000,1,,,,,0.3000,,")


def test_seed_means_match_a_one_seed_table_exactly(tmp_path):
    """With one seed the evaluation columns are the seed's values, bit for bit (k = 1 tables keep
    their numbers)."""
    value = 0.1 + 0.2  # not exactly representable: a mean that changed it would show
    rows = _seed_rows(tmp_path, {"oracle": [value]})
    assert leaderboard(rows, None, {"Objects": ["objects"]}).loc[0, "objects"] == value
