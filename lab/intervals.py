"""Interval estimates for offline evaluation: normal, Wilson, the bootstrap, effective sizes.

- ``normal_interval``: mean +- 1.96 standard errors of per-decision terms (IPS, DR).
- ``wilson_interval``: the Wilson score interval of a proportion, k events in n trials. Unlike
  the normal interval it stays inside [0, 1] and keeps its coverage when events are few (3
  clicks in 2,000 decisions: the normal interval's low end is below 0), so every estimate that
  is a plain proportion gets it: the logging policy's own click rate, and a self-normalised
  estimate whose weights are all equal (the holdout's rate for "never personalise").
- ``Bootstrap``: percentile intervals from resampling decisions with replacement, seeded, the
  same resamples for every candidate (so their intervals are comparable). They assume nothing
  about the estimate's distribution, which matters when weights are heavy-tailed.
- ``effective_sample_size``: Kish's (sum w)^2 / sum w^2, how many equally weighted decisions
  the weighted ones are worth; far below the number of decisions means a few large weights
  carry the estimate.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from operator import itemgetter

Z95 = 1.959963984540054


@dataclass(frozen=True, slots=True)
class Estimate:
    """A value with its 95% interval; ``method`` says how the interval was made."""

    value: float
    low: float
    high: float
    method: str = "normal"  # normal, delta (SNIPS), wilson

    @property
    def defined(self) -> bool:
        """False when the log cannot support the estimate (its values are then NaN)."""
        return all(math.isfinite(v) for v in (self.value, self.low, self.high))

    def as_dict(self) -> dict[str, float | None]:
        """JSON has no NaN: an undefined estimate is null."""
        if not self.defined:
            return {"value": None, "low": None, "high": None}
        return {"value": self.value, "low": self.low, "high": self.high}


UNDEFINED = Estimate(math.nan, math.nan, math.nan)


def normal_interval(terms: Sequence[float]) -> Estimate:
    """The mean of per-decision terms with its normal 95% interval."""
    n = len(terms)
    if n == 0:
        return UNDEFINED
    mean = math.fsum(terms) / n
    variance = math.fsum((t - mean) ** 2 for t in terms) / (n - 1) if n > 1 else 0.0
    half = Z95 * math.sqrt(variance / n)
    return Estimate(mean, mean - half, mean + half)


def wilson_interval(events: float, trials: float) -> Estimate:
    """``events / trials`` with its Wilson score 95% interval."""
    if trials <= 0:
        return UNDEFINED
    p = events / trials
    z2 = Z95 * Z95
    centre = (p + z2 / (2 * trials)) / (1 + z2 / trials)
    half = Z95 * math.sqrt(p * (1 - p) / trials + z2 / (4 * trials * trials)) / (1 + z2 / trials)
    return Estimate(p, max(0.0, centre - half), min(1.0, centre + half), "wilson")


def is_binary(values: Sequence[float]) -> bool:
    """Every value is 0 or 1: a rate (clicks), so proportions get Wilson intervals."""
    return all(v == 0.0 or v == 1.0 for v in values)


def rate_or_mean(values: Sequence[float]) -> Estimate:
    """The mean of ``values``: a Wilson interval when they are 0/1, else a normal one."""
    if values and is_binary(values):
        return wilson_interval(sum(values), len(values))
    return normal_interval(values)


def effective_sample_size(weights: Sequence[float]) -> float:
    """Kish's effective sample size of importance weights (0 when every weight is 0)."""
    squares = math.fsum(w * w for w in weights)
    return math.fsum(weights) ** 2 / squares if squares > 0 else 0.0


@dataclass(frozen=True, slots=True)
class Interval:
    """A bootstrap percentile interval (NaN when some resample left the estimate undefined)."""

    low: float
    high: float

    def as_dict(self) -> dict[str, float | None]:
        if not (math.isfinite(self.low) and math.isfinite(self.high)):
            return {"low": None, "high": None}
        return {"low": self.low, "high": self.high}


@dataclass(frozen=True, slots=True)
class Bootstrap:
    """``replicates`` resamples of the decisions, drawn from ``seed``: every call with the
    same number of decisions sees the same resamples (a paired bootstrap across candidates)."""

    replicates: int
    seed: int

    def interval(
        self, columns: Sequence[Sequence[float]], statistic: Callable[[Sequence[float]], float]
    ) -> Interval:
        """The 2.5% and 97.5% percentiles of ``statistic`` over the resamples; ``columns``
        are per-decision values, and ``statistic`` gets each column's resampled sum."""
        return self.intervals(columns, [statistic])[0]

    def intervals(
        self,
        columns: Sequence[Sequence[float]],
        statistics: Sequence[Callable[[Sequence[float]], float]],
    ) -> list[Interval]:
        """``interval`` for several statistics of the same columns, from one set of resamples
        (drawing them is most of the cost)."""
        n = len(columns[0])
        undefined = Interval(math.nan, math.nan)
        if n == 0 or self.replicates < 1:
            return [undefined] * len(statistics)
        rng = random.Random(self.seed)
        population = range(n)
        values: list[list[float]] = [[] for _ in statistics]
        for _ in range(self.replicates):
            picks = rng.choices(population, k=n)
            take = itemgetter(*picks)
            sums = [math.fsum(take(c)) if n > 1 else c[picks[0]] for c in columns]
            for found, statistic in zip(values, statistics, strict=True):
                found.append(statistic(sums))
        out = []
        for found in values:
            if all(math.isfinite(v) for v in found):
                found.sort()
                out.append(Interval(_quantile(found, 0.025), _quantile(found, 0.975)))
            else:
                out.append(undefined)
        return out


def _quantile(ordered: Sequence[float], q: float) -> float:
    """Linear interpolation between order statistics (Hyndman and Fan's type 7)."""
    position = q * (len(ordered) - 1)
    below = math.floor(position)
    above = min(below + 1, len(ordered) - 1)
    return ordered[below] + (ordered[above] - ordered[below]) * (position - below)
