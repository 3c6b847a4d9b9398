"""Ground-truth tables and the claims' measurements, on fabricated subsets, truths and seeds."""

import math

import numpy as np
import pandas as pd
import pytest

from curate.data.subset import uids_to_u8u8
from curate.reporting.claims import (
    claims_table,
    measure_at_least,
    measure_drops_noise,
    measure_rank_correlation,
)
from curate.reporting.noise import kept_shares, noise_harm_table, noise_kept_table, noise_types, precision_vs_average
from curate.reporting.stats import t_quantile
from curate.selection.methods import noise_mix_uids
from tests.unit.pool_fixtures import uid


@pytest.fixture
def truth():
    # 0..5 clean, 6..8 text_in_image, 9..10 mismatched_caption
    types = ["clean"] * 6 + ["text_in_image"] * 3 + ["mismatched_caption"] * 2
    return pd.DataFrame(
        {"uid": [uid(i) for i in range(11)], "noise_type": types, "is_clean": [t == "clean" for t in types]}
    )


def test_noise_types_put_clean_first_then_the_generators_order(truth):
    assert noise_types(truth) == ["clean", "mismatched_caption", "text_in_image"]


def test_kept_shares_count_each_uid_once(truth):
    # kept: clean 0, 1, 2 (2 twice: SCS repeats count once), text-in-image 6, mismatched 9, 10
    subset = uids_to_u8u8([uid(i) for i in (0, 1, 2, 2, 6, 9, 10)])
    assert kept_shares(subset, truth) == {
        "clean": 0.5,
        "mismatched_caption": 1.0,
        "text_in_image": pytest.approx(1 / 3),
    }


def test_noise_kept_table(truth):
    subsets = {"a": uids_to_u8u8([uid(0), uid(6)]), "b": uids_to_u8u8([uid(i) for i in range(11)])}
    table = noise_kept_table([{"selection": "a"}, {"selection": "b"}], subsets, truth).set_index("selection")
    assert list(table.columns) == [
        "unique_uids",
        "precision",
        "kept_clean",
        "kept_mismatched_caption",
        "kept_text_in_image",
    ]
    assert table.loc["a", "precision"] == 0.5 and table.loc["a", "kept_clean"] == pytest.approx(1 / 6)
    assert table.loc["b", "kept_text_in_image"] == 1.0 and table.loc["b", "unique_uids"] == 11


def test_precision_vs_average_ranks_and_intervals():
    rows = [
        {"selection": "s1", "unique_uids": 10, "precision": 0.6, "averages": [0.30, 0.32]},
        {"selection": "s2", "unique_uids": 10, "precision": 0.8, "averages": [0.35, 0.37]},
        {"selection": "s3", "unique_uids": 10, "precision": 0.9, "averages": [0.40, 0.38]},
    ]
    table, (rho, low, high) = precision_vs_average(rows, n_boot=300)
    assert rho == pytest.approx(1.0) and -1 <= low <= high <= 1
    half = t_quantile(0.95, 1) * math.sqrt(0.0002) / math.sqrt(2)
    assert table.loc[0, "Average"] == pytest.approx(0.31) and table.loc[0, "Average_lo95"] == pytest.approx(0.31 - half)


def test_noise_harm_is_the_paired_difference_to_the_clean_control():
    per_seed = {
        "clean": [{"Average": 0.5, "typographic": 0.1}, {"Average": 0.6, "typographic": 0.2}],
        "mix_text": [{"Average": 0.45, "typographic": 0.3}, {"Average": 0.55, "typographic": 0.4}],
    }
    labels = {"clean": {"noise_type": "none", "share": 0.0}, "mix_text": {"noise_type": "text_in_image", "share": 0.25}}
    table = noise_harm_table(per_seed, labels, control="clean").set_index(["selection", "metric"])
    harm = table.loc[("mix_text", "Average")]
    assert harm["vs_clean"] == pytest.approx(-0.05) and harm["vs_clean_lo95"] == pytest.approx(-0.05)
    assert table.loc[("mix_text", "typographic"), "vs_clean"] == pytest.approx(0.2)
    assert table.loc[("clean", "Average"), "vs_clean"] == 0.0 and harm["noise_type"] == "text_in_image"


def test_noise_mix_swaps_noise_into_the_same_clean_samples():
    types = ["clean"] * 60 + ["text_in_image"] * 20 + ["gibberish"] * 20
    truth = pd.DataFrame(
        {"uid": [uid(i) for i in range(100)], "noise_type": types, "is_clean": [t == "clean" for t in types]}
    )
    control = noise_mix_uids(truth, size=0.4, noise_type=None, share=0.0, seed=0)
    mixed = noise_mix_uids(truth, size=0.4, noise_type="text_in_image", share=0.25, seed=0)
    assert len(control) == len(mixed) == 40
    kinds = truth.set_index("uid")["noise_type"]
    assert (kinds[mixed] == "text_in_image").sum() == 10 and (kinds[control] == "clean").all()
    assert set(mixed[:30]) == set(control[:30])  # the clean part is the control's first 30
    assert mixed == noise_mix_uids(truth, size=0.4, noise_type="text_in_image", share=0.25, seed=0)
    with pytest.raises(ValueError, match="fewer than"):
        noise_mix_uids(truth, size=0.9, noise_type="gibberish", share=0.5, seed=0)


def test_measure_at_least_by_hand():
    # differences 0.02, 0.04, 0.06: mean 0.04, sd 0.02
    result = measure_at_least([0.52, 0.54, 0.56], [0.50, 0.50, 0.50])
    half = t_quantile(0.95, 2) * 0.02 / math.sqrt(3)
    assert result["measurement"] == pytest.approx(0.04)
    # 4.30 * 0.02 / sqrt(3) = 0.0497 > 0.04: three seeds cannot tell this from no difference
    assert result["low95"] == pytest.approx(0.04 - half) and result["verdict"] == "unresolved (interval spans 0)"
    assert measure_at_least([0.54, 0.55, 0.56], [0.5, 0.5, 0.5])["verdict"] == "holds"
    assert measure_at_least([0.4, 0.41, 0.39], [0.5, 0.52, 0.5])["verdict"] == "does not hold"
    one = measure_at_least([0.4], [0.5])
    assert one["verdict"] == "does not hold (one seed, no interval)" and one["interval"] == "none (one seed)"


def test_measure_drops_noise_by_hand():
    # the baseline keeps 3 of 4 text-in-image samples, the selection 1 of 4: it drops 0.5 more
    result = measure_drops_noise(np.array([1, 0, 0, 0]), np.array([1, 1, 1, 0]), n_boot=300)
    assert result["measurement"] == pytest.approx(0.5) and result["low95"] >= 0
    assert measure_drops_noise(np.array([]), np.array([]))["verdict"] == "not measured"


def test_measure_rank_correlation():
    result = measure_rank_correlation([0.5, 0.7, 0.9], [[0.3, 0.31], [0.34, 0.35], [0.4, 0.41]], n_boot=200)
    assert result["measurement"] == pytest.approx(1.0) and "3 selections" in result["interval"]


def test_claims_table_keeps_unmeasured_comparisons_with_their_status():
    comparisons = [
        {"claim": "c", "source": "s", "comparison": "a - b", "metric": "Average", "status": "ok"},
        {"claim": "c", "source": "s", "comparison": "a - x", "metric": "Average", "status": "not available: x"},
    ]
    table = claims_table(comparisons, [measure_at_least([0.6, 0.7], [0.5, 0.6]), None])
    assert list(table["status"]) == ["ok", "not available: x"]
    assert table.loc[0, "measurement"] == pytest.approx(0.1) and math.isnan(table.loc[1, "measurement"])
