"""The statistics of a report: 95% intervals of rates, means, their differences and ratios,
the sample ratio mismatch test, and when a figure has too little data behind it.

- a rate (decisions with a click / decisions) gets the Wilson score interval: it stays inside
  [0, 1] and keeps its coverage with few events;
- the difference of two rates gets Newcombe's hybrid score interval (his method 10, built from
  the two Wilson intervals), which keeps its coverage where the plain normal one does not;
- the ratio of two rates (relative lift = ratio - 1) gets the log (Katz) interval;
- a mean of per-decision values (the goal, revenue) gets the normal interval, the difference of
  two means Welch's normal interval and their ratio the delta-method log interval;
- sample ratio mismatch: the chi-square goodness-of-fit test (1 degree of freedom) of the
  control count against the count the logged holdout shares expect.

Every function returns ``None`` bounds where the data cannot support the interval (no
decisions, no events in an arm for a ratio); the report shows them as "not enough data".
"""

from __future__ import annotations

import math
from dataclasses import dataclass

Z95 = 1.959963984540054
#: An arm below this many decisions, or with fewer than MIN_EVENTS events (or non-events) of a
#: rate, is "not enough data": its figures are shown with their intervals, never as a finding.
MIN_DECISIONS = 100
MIN_EVENTS = 5
#: A sample ratio mismatch is flagged below this p-value (a strict one: the test runs on every
#: report, and a false alarm costs an investigation).
SRM_ALPHA = 0.001


@dataclass(frozen=True, slots=True)
class Interval:
    """A value with its 95% interval; any of them None when undefined."""

    value: float | None
    low: float | None
    high: float | None


NONE = Interval(None, None, None)


def wilson(events: float, trials: float) -> Interval:
    """``events / trials`` with its Wilson score 95% interval."""
    if trials <= 0:
        return NONE
    p = events / trials
    z2 = Z95 * Z95
    centre = (p + z2 / (2 * trials)) / (1 + z2 / trials)
    half = Z95 * math.sqrt(p * (1 - p) / trials + z2 / (4 * trials * trials)) / (1 + z2 / trials)
    return Interval(p, max(0.0, centre - half), min(1.0, centre + half))


def rate_difference(x1: float, n1: float, x2: float, n2: float) -> Interval:
    """p1 - p2 with Newcombe's hybrid score interval (method 10)."""
    a, b = wilson(x1, n1), wilson(x2, n2)
    if a.value is None or b.value is None:
        return NONE
    assert a.low is not None and a.high is not None and b.low is not None and b.high is not None
    d = a.value - b.value
    low = d - math.sqrt((a.value - a.low) ** 2 + (b.high - b.value) ** 2)
    high = d + math.sqrt((a.high - a.value) ** 2 + (b.value - b.low) ** 2)
    return Interval(d, low, high)


def rate_ratio_lift(x1: float, n1: float, x2: float, n2: float) -> Interval:
    """p1 / p2 - 1 with the log (Katz) interval; undefined when an arm has no event."""
    if n1 <= 0 or n2 <= 0 or x1 <= 0 or x2 <= 0:
        return NONE
    ratio = (x1 / n1) / (x2 / n2)
    se = math.sqrt(max(0.0, 1 / x1 - 1 / n1 + 1 / x2 - 1 / n2))
    return Interval(ratio - 1, ratio * math.exp(-Z95 * se) - 1, ratio * math.exp(Z95 * se) - 1)


@dataclass(frozen=True, slots=True)
class Moments:
    """Count, sum and sum of squares of per-decision values: enough for a mean's interval."""

    n: float
    total: float
    squares: float

    @property
    def mean(self) -> float:
        return self.total / self.n if self.n > 0 else math.nan

    @property
    def variance(self) -> float:
        """The sample variance (n - 1), 0 for a single value."""
        if self.n < 2:
            return 0.0
        return max(0.0, (self.squares - self.total * self.total / self.n) / (self.n - 1))


def mean(m: Moments) -> Interval:
    if m.n <= 0:
        return NONE
    half = Z95 * math.sqrt(m.variance / m.n)
    return Interval(m.mean, m.mean - half, m.mean + half)


def mean_difference(a: Moments, b: Moments) -> Interval:
    """mean(a) - mean(b) with Welch's normal interval."""
    if a.n <= 0 or b.n <= 0:
        return NONE
    d = a.mean - b.mean
    half = Z95 * math.sqrt(a.variance / a.n + b.variance / b.n)
    return Interval(d, d - half, d + half)


def mean_ratio_lift(a: Moments, b: Moments) -> Interval:
    """mean(a) / mean(b) - 1 with the delta-method interval of the log ratio."""
    if a.n <= 0 or b.n <= 0 or a.total <= 0 or b.total <= 0:
        return NONE
    ratio = a.mean / b.mean
    se = math.sqrt(a.variance / (a.n * a.mean**2) + b.variance / (b.n * b.mean**2))
    return Interval(ratio - 1, ratio * math.exp(-Z95 * se) - 1, ratio * math.exp(Z95 * se) - 1)


def enough_rate(events: float, trials: float) -> bool:
    """Enough decisions, events and non-events for a rate to be read as a finding."""
    return trials >= MIN_DECISIONS and events >= MIN_EVENTS and trials - events >= MIN_EVENTS


def enough_mean(nonzero: float, trials: float) -> bool:
    return trials >= MIN_DECISIONS and nonzero >= MIN_EVENTS


@dataclass(frozen=True, slots=True)
class Srm:
    """The sample ratio mismatch test of one campaign's split."""

    expected_control_share: float
    observed_control_share: float
    chi2: float
    p_value: float
    mismatch: bool


def sample_ratio(control: float, total: float, expected_control: float) -> Srm | None:
    """Chi-square goodness of fit (1 df) of ``control`` of ``total`` decisions against the
    ``expected_control`` count (the sum of the decisions' holdout shares); None without a split
    to test (no decisions, or a share of 0 or 1)."""
    if total <= 0 or expected_control <= 0 or expected_control >= total:
        return None
    expected_treated = total - expected_control
    chi2 = (control - expected_control) ** 2 / expected_control + (
        (total - control) - expected_treated
    ) ** 2 / expected_treated
    p = math.erfc(math.sqrt(chi2 / 2))  # the chi-square(1) survival function
    return Srm(expected_control / total, control / total, chi2, p, p < SRM_ALPHA)
