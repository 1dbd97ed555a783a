"""The report's intervals against hand computations, and the split test."""

from __future__ import annotations

import math

import pytest

from slotwise.proxy.report import stats

Z = 1.959963984540054


def _wilson(x: float, n: float) -> tuple[float, float]:
    # Wilson (1927), written out from the textbook formula
    p = x / n
    denominator = 1 + Z**2 / n
    centre = p + Z**2 / (2 * n)
    spread = Z * math.sqrt(p * (1 - p) / n + Z**2 / (4 * n**2))
    return (centre - spread) / denominator, (centre + spread) / denominator


def test_wilson_matches_the_formula_and_a_published_value() -> None:
    got = stats.wilson(81, 263)
    low, high = _wilson(81, 263)
    assert (got.low, got.high) == pytest.approx((low, high))
    # Newcombe (1998), table I, 81/263: 0.2553 to 0.3662
    assert (got.low, got.high) == pytest.approx((0.2553, 0.3662), abs=1e-4)


def test_newcombe_difference_matches_the_hand_computation_and_the_paper() -> None:
    # Newcombe (1998b), example (a): 56/70 - 48/80, method 10: 0.0524 to 0.3339
    got = stats.rate_difference(56, 70, 48, 80)
    l1, u1 = _wilson(56, 70)
    l2, u2 = _wilson(48, 80)
    d = 56 / 70 - 48 / 80
    assert got.value == pytest.approx(d)
    assert got.low == pytest.approx(d - math.sqrt((56 / 70 - l1) ** 2 + (u2 - 48 / 80) ** 2))
    assert got.high == pytest.approx(d + math.sqrt((u1 - 56 / 70) ** 2 + (48 / 80 - l2) ** 2))
    assert (got.low, got.high) == pytest.approx((0.0524, 0.3339), abs=1e-4)


def test_relative_lift_is_the_log_ratio_interval() -> None:
    got = stats.rate_ratio_lift(60, 1000, 40, 1000)
    se = math.sqrt(1 / 60 - 1 / 1000 + 1 / 40 - 1 / 1000)
    assert got.value == pytest.approx(0.5)
    assert got.low == pytest.approx(1.5 * math.exp(-Z * se) - 1)
    assert got.high == pytest.approx(1.5 * math.exp(Z * se) - 1)
    assert stats.rate_ratio_lift(0, 1000, 40, 1000) == stats.NONE  # no event: no ratio


def test_means_and_welch_difference() -> None:
    a = stats.Moments(4, 10.0, 30.0)  # values 1, 2, 3, 4
    got = stats.mean(a)
    assert got.value == pytest.approx(2.5)
    assert got.high - got.value == pytest.approx(Z * math.sqrt((5 / 3) / 4))  # type: ignore[operator]
    b = stats.Moments(2, 2.0, 2.0)  # 1, 1
    diff = stats.mean_difference(a, b)
    assert diff.value == pytest.approx(1.5)
    assert diff.high - diff.value == pytest.approx(Z * math.sqrt((5 / 3) / 4))  # type: ignore[operator]


def test_sample_ratio_mismatch() -> None:
    fine = stats.sample_ratio(1010, 10_000, 1000.0)
    assert fine is not None and not fine.mismatch
    chi2 = 10**2 / 1000 + 10**2 / 9000
    assert fine.chi2 == pytest.approx(chi2)
    assert fine.p_value == pytest.approx(math.erfc(math.sqrt(chi2 / 2)))
    broken = stats.sample_ratio(1200, 10_000, 1000.0)
    assert broken is not None and broken.mismatch
    assert stats.sample_ratio(0, 1000, 0.0) is None  # no holdout: nothing to test


def test_small_samples_are_not_enough_data() -> None:
    assert not stats.enough_rate(3, 1000)  # three clicks
    assert not stats.enough_rate(20, 60)  # sixty decisions
    assert stats.enough_rate(20, 1000)
