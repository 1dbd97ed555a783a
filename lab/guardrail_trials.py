"""Guardrail trials: how often the production guardrail reverts a harmless campaign, and how
soon it reverts a harmful one, over many simulated runs.

Each run draws decisions one by one: control with the holdout's chance, else personalised;
each decision's goal value is 1 with its arm's rate (personalised: ``base_rate * (1 -
harm)``), else 0. They go through the production ``Monitor`` (the learner's, with its
minimum samples and always-valid test), checked every ``check_every`` decisions as the
learner checks after each batch. A run ends at its first revert or after ``impressions``.
``slotwise`` has no verb for this: tests/benchmarks/test_guardrail_trials.py runs it and
docs/reports.md records the figures.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from slotwise.lab.intervals import Estimate, wilson_interval
from slotwise.proxy.guardrail.monitor import MIN_DECISIONS, Monitor, Rule


@dataclass(frozen=True, slots=True)
class Scenario:
    base_rate: float  # the control arm's goal rate (a click rate, say)
    harm: float  # relative: 0.1 = personalisation's rate is 10% lower
    holdout: float  # the control group's share
    impressions: int  # the run's length
    check_every: int = 100
    min_decisions: int = MIN_DECISIONS


@dataclass(frozen=True, slots=True)
class Trials:
    scenario: Scenario
    runs: int
    reverted: int
    revert_at: tuple[int, ...]  # the impression of each revert, sorted

    @property
    def rate(self) -> Estimate:
        """The share of runs reverted, with its Wilson 95% interval."""
        return wilson_interval(self.reverted, self.runs)

    def median_revert(self) -> int | None:
        if not self.revert_at:
            return None
        return self.revert_at[len(self.revert_at) // 2]


def run_once(scenario: Scenario, rng: random.Random) -> int | None:
    """The impression at which the guardrail reverted, or None."""
    monitor = Monitor({"c": Rule(True, scenario.min_decisions)})
    observe = monitor.observe
    control_rate = scenario.base_rate
    treated_rate = scenario.base_rate * (1 - scenario.harm)
    draw = rng.random
    for i in range(1, scenario.impressions + 1):
        held = draw() < scenario.holdout
        value = 1.0 if draw() < (control_rate if held else treated_rate) else 0.0
        observe("c", 0.0, held, None, value)
        if i % scenario.check_every == 0 and monitor.check():
            return i
    return None


def trials(scenario: Scenario, runs: int, seed: int = 0) -> Trials:
    reverts = []
    for run in range(runs):
        at = run_once(scenario, random.Random(seed * 1_000_003 + run))
        if at is not None:
            reverts.append(at)
    return Trials(scenario, runs, len(reverts), tuple(sorted(reverts)))
