"""The always-valid comparison of personalised with control: an mSPRT confidence sequence.

The mixture sequential probability ratio test (Robbins 1970; Johari, Pekelis and Walsh,
"Always valid inference", 2017) for the difference of two means, with a normal mixture of
variance ``tau2`` over the effect: with ``V`` the variance of the estimated difference
``d = mean(personalised) - mean(control)``, the likelihood ratio is

    L = sqrt(V / (V + tau2)) * exp(tau2 * d^2 / (2 * V * (V + tau2)))

and ``L >= 1/alpha`` rejects "no difference". Read as an interval, the rejection region is
``|d| >= h`` with

    h = sqrt(V * (V + tau2) / tau2 * (2 * log(1/alpha) + log((V + tau2) / V)))

so ``[d - h, d + h]`` is a confidence sequence: it covers the true difference at every
sample size at once with probability at least ``1 - alpha``, however often it is looked at,
which is what lets a guardrail check after every batch without inflating false alarms. The
variances are plug-in estimates from the arms (the usual large-sample practice), and ``tau``
is ``TAU_SHARE`` of the control mean: the mixture is centred on effects of about a tenth of
the baseline, the size a guardrail exists to catch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

ALPHA = 0.05
TAU_SHARE = 0.1


@dataclass(slots=True)
class Moments:
    """Count, sum and sum of squares of one arm's per-decision goal values."""

    n: int = 0
    total: float = 0.0
    squares: float = 0.0

    def add(self, value: float) -> None:
        self.n += 1
        self.total += value
        self.squares += value * value

    @property
    def mean(self) -> float:
        return self.total / self.n if self.n else 0.0

    @property
    def variance(self) -> float:
        if self.n < 2:
            return 0.0
        return max(0.0, (self.squares - self.total * self.total / self.n) / (self.n - 1))


@dataclass(frozen=True, slots=True)
class Sequence:
    """The difference personalised - control with its always-valid interval."""

    difference: float
    low: float
    high: float
    relative: float | None  # difference / control mean

    @property
    def harm(self) -> bool:
        """The whole interval is below zero: personalisation is worse, significantly."""
        return self.high < 0

    @property
    def benefit(self) -> bool:
        return self.low > 0


def confidence_sequence(
    personalised: Moments, control: Moments, alpha: float = ALPHA, tau_share: float = TAU_SHARE
) -> Sequence | None:
    """The always-valid interval of the difference, or None while it is undefined (an arm
    with fewer than two decisions, or no variance at all yet)."""
    if personalised.n < 2 or control.n < 2:
        return None
    d = personalised.mean - control.mean
    v = personalised.variance / personalised.n + control.variance / control.n
    if v <= 0:
        return None
    scale = abs(control.mean) if control.mean else math.sqrt(control.variance)
    tau2 = (tau_share * scale) ** 2
    if tau2 <= 0:
        return None
    h = math.sqrt(v * (v + tau2) / tau2 * (2 * math.log(1 / alpha) + math.log((v + tau2) / v)))
    relative = d / control.mean if control.mean else None
    return Sequence(d, d - h, d + h, relative)
