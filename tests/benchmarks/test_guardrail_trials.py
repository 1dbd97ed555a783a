"""Guardrail acceptance in simulation (lab/guardrail_trials.py), 200 runs per scenario:

- no effect (personalised = control): reverts in at most 5% of runs over 50,000 impressions;
- 10% relative harm: reverts within 20,000 impressions in at least 90% of runs.

Both with a goal rate of 30% and a 50% holdout (the acceptance scenario); the same at a 10%
holdout and a 5% rate are measured and printed too (a small control group or a rare goal
needs far more traffic: docs/reports.md has the figures).

.venv/bin/pytest -m benchmark tests/benchmarks/test_guardrail_trials.py -s
"""

from __future__ import annotations

import pytest

from slotwise.lab.guardrail_trials import Scenario, Trials, trials

pytestmark = pytest.mark.benchmark
RUNS = 200


def _line(name: str, t: Trials) -> str:
    rate = t.rate
    s = t.scenario
    return (
        f"{name}: rate {s.base_rate:g}, harm {s.harm:.0%}, holdout {s.holdout:.0%},"
        f" {s.impressions:,} impressions: reverted {t.reverted}/{t.runs} runs ="
        f" {rate.value:.1%} (95% CI {rate.low:.1%} to {rate.high:.1%}); median revert at"
        f" {t.median_revert()} impressions"
    )


def test_no_effect_rarely_reverts_and_harm_is_caught() -> None:
    null = trials(Scenario(0.3, 0.0, 0.5, 50_000), RUNS, seed=1)
    harm = trials(Scenario(0.3, 0.1, 0.5, 20_000), RUNS, seed=2)
    print("\n" + _line("no effect", null) + "\n" + _line("10% harm", harm))
    assert null.reverted / RUNS <= 0.05
    assert harm.reverted / RUNS >= 0.90


def test_smaller_holdouts_and_rarer_goals_are_measured() -> None:
    lines = []
    for scenario in (
        Scenario(0.3, 0.1, 0.1, 20_000),
        Scenario(0.3, 0.1, 0.1, 100_000),
        Scenario(0.05, 0.1, 0.5, 20_000),
        Scenario(0.05, 0.1, 0.5, 200_000),
    ):
        lines.append(_line("10% harm", trials(scenario, 50, seed=3)))
    print("\n" + "\n".join(lines))
