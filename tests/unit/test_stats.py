"""Intervals over seeds, paired differences, rank correlation and verdicts, on hand-computed cases."""

import math

import pytest

from curate.reporting.stats import (
    bootstrap_spearman,
    paired_bootstrap_mean,
    paired_difference,
    ranks,
    spearman,
    t_interval,
    t_quantile,
    verdict,
)

T_975_2 = 4.302652729911275  # Student's t, 97.5 % quantile, 2 degrees of freedom (tables)


def test_t_quantile_matches_the_tables():
    assert t_quantile(0.95, 2) == pytest.approx(T_975_2)
    assert t_quantile(0.95, 1) == pytest.approx(12.706204736174698)
    assert t_quantile(0.95, 1000) == pytest.approx(1.962, abs=1e-3)


def test_t_interval_by_hand():
    # mean 2, sd 1 (ddof 1), half-width t * 1 / sqrt(3)
    mean, low, high = t_interval([1.0, 2.0, 3.0])
    half = T_975_2 / math.sqrt(3)
    assert mean == 2.0 and low == pytest.approx(2 - half) and high == pytest.approx(2 + half)


def test_one_seed_has_no_interval():
    mean, low, high = t_interval([0.4])
    assert mean == 0.4 and math.isnan(low) and math.isnan(high)


def test_equal_seeds_give_a_zero_width_interval():
    assert t_interval([0.5, 0.5, 0.5]) == (0.5, 0.5, 0.5)


def test_a_missing_seed_value_raises():
    with pytest.raises(ValueError, match="missing"):
        t_interval([0.1, None])


def test_paired_difference_by_hand():
    # differences 2, 3, 4: mean 3, sd 1
    mean, low, high = paired_difference([3.0, 5.0, 7.0], [1.0, 2.0, 3.0])
    half = T_975_2 / math.sqrt(3)
    assert mean == 3.0 and low == pytest.approx(3 - half) and high == pytest.approx(3 + half)


def test_pairing_removes_what_a_seed_does_to_both_rows():
    # the seeds move both rows by the same amount: the paired interval has zero width
    assert paired_difference([0.3, 0.5, 0.7], [0.2, 0.4, 0.6]) == pytest.approx((0.1, 0.1, 0.1))


def test_paired_difference_needs_the_same_seeds():
    with pytest.raises(ValueError, match="same seeds"):
        paired_difference([1.0, 2.0], [1.0])


def test_ranks_average_ties():
    assert list(ranks([10, 20, 20, 30])) == [1.0, 2.5, 2.5, 4.0]
    assert list(ranks([3, 1, 2])) == [3.0, 1.0, 2.0]


def test_spearman_by_hand():
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    # d = 0, 1, -1, 0: 1 - 6 * 2 / (4 * 15) = 0.8
    assert spearman([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(0.8)


def test_spearman_undefined_for_a_constant_side():
    assert math.isnan(spearman([1, 1, 1], [1, 2, 3]))
    assert math.isnan(spearman([1], [2]))


def test_bootstrap_spearman_of_a_perfect_order_is_one():
    rho, low, high = bootstrap_spearman([0.1, 0.2, 0.3, 0.4], [[1, 1], [2, 2], [3, 3], [4, 4]], n_boot=200)
    assert (rho, low, high) == (pytest.approx(1.0), pytest.approx(1.0), pytest.approx(1.0))


def test_bootstrap_spearman_is_seeded_and_brackets_rho():
    x = [0.5, 0.6, 0.7, 0.8, 0.9]
    y = [[0.30, 0.34], [0.33, 0.29], [0.35, 0.37], [0.36, 0.31], [0.40, 0.38]]
    first = bootstrap_spearman(x, y, n_boot=500, seed=3)
    assert first == bootstrap_spearman(x, y, n_boot=500, seed=3)
    rho, low, high = first
    # mean y: 0.32, 0.31, 0.36, 0.335, 0.39 -> ranks 2, 1, 4, 3, 5 against 1..5: 1 - 6 * 4 / 120
    assert rho == pytest.approx(0.8)
    assert -1 <= low <= rho <= high <= 1


def test_paired_bootstrap_mean():
    assert paired_bootstrap_mean([1, 1, 1, 1]) == (1.0, 1.0, 1.0)
    mean, low, high = paired_bootstrap_mean([0, 1] * 50, n_boot=500)
    assert mean == 0.5 and 0.35 < low < 0.5 < high < 0.65
    mean, low, high = paired_bootstrap_mean([-1.0])
    assert mean == -1.0 and math.isnan(low) and math.isnan(high)


@pytest.mark.parametrize(
    "low, high, mean, expected",
    [
        (0.01, 0.05, 0.03, "holds"),
        (-0.05, -0.01, -0.03, "does not hold"),
        (-0.01, 0.05, 0.02, "unresolved (interval spans 0)"),
        (math.nan, math.nan, 0.02, "holds (one seed, no interval)"),
        (math.nan, math.nan, -0.02, "does not hold (one seed, no interval)"),
        (math.nan, math.nan, math.nan, "not measured"),
    ],
)
def test_verdict(low, high, mean, expected):
    assert verdict(low, high, mean) == expected
