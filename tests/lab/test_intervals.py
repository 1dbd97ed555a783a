"""Interval estimates against closed forms: Wilson's, Kish's effective sample size, the seeded
bootstrap, and per-slot results on a log whose slots' values are known."""

from __future__ import annotations

import math
import random

import pytest

from slotwise.lab.evaluation import FixedCandidate, UniformCandidate, evaluate, logged_value
from slotwise.lab.intervals import (
    Bootstrap,
    effective_sample_size,
    normal_interval,
    wilson_interval,
)
from slotwise.proxy.decision_log import DecisionRecord, OutcomeRecord, SlotRecord
from slotwise.proxy.learn.log import JoinedRecord


def test_wilson_interval_matches_its_closed_form() -> None:
    none = wilson_interval(0, 10)  # no event: the upper end is z^2 / (n + z^2)
    assert none.value == 0 and none.low == 0
    assert none.high == pytest.approx(1.959963984540054**2 / (10 + 1.959963984540054**2))
    # a textbook case: 81 of 263 (Newcombe 1998, table I: 0.2553 to 0.3662)
    case = wilson_interval(81, 263)
    assert (round(case.low, 4), round(case.high, 4)) == (0.2553, 0.3662)
    few = wilson_interval(3, 2000)  # 3 clicks: the normal interval would reach below 0
    assert 0 < few.low < few.value < few.high and few.method == "wilson"
    assert normal_interval([1.0] * 3 + [0.0] * 1997).low < 0


def test_effective_sample_size_is_kish() -> None:
    assert effective_sample_size([2.0] * 50) == pytest.approx(50)
    assert effective_sample_size([100.0] + [0.01] * 99) == pytest.approx(1.0, abs=0.02)
    assert effective_sample_size([0.0, 0.0]) == 0.0


def test_the_bootstrap_is_seeded_and_agrees_with_the_normal_interval_on_a_mean() -> None:
    rng = random.Random(4)
    values = [rng.gauss(1.0, 2.0) for _ in range(2000)]
    normal = normal_interval(values)
    first = Bootstrap(400, seed=9).interval([values], lambda s: s[0] / len(values))
    again = Bootstrap(400, seed=9).interval([values], lambda s: s[0] / len(values))
    other = Bootstrap(400, seed=10).interval([values], lambda s: s[0] / len(values))
    assert first == again and first != other
    width = normal.high - normal.low
    assert abs(first.low - normal.low) < 0.1 * width
    assert abs(first.high - normal.high) < 0.1 * width


def _two_slot_log(n: int, seed: int) -> list[JoinedRecord]:
    """Two independent uniform slots; the click rate depends on slot a only."""
    rng = random.Random(seed)
    ctr = {"a1": 0.05, "a2": 0.15}
    records = []
    for i in range(n):
        a, b = rng.choice(["a1", "a2"]), rng.choice(["b1", "b2", "b3"])
        decision = DecisionRecord(
            id=f"d{i}",
            ts=i,
            campaign="c",
            slots=[
                SlotRecord("a", a, 0.5, ("a1", "a2")),
                SlotRecord("b", b, 1 / 3, ("b1", "b2", "b3")),
            ],
        )
        reward = float(rng.random() < ctr[a])
        records.append(JoinedRecord(decision, OutcomeRecord(clicks=reward), reward, bool(reward)))
    return records


def test_per_slot_results_isolate_the_slot_that_matters() -> None:
    records = _two_slot_log(20_000, seed=2)
    result = evaluate(FixedCandidate({"a": "a2", "b": "b1"}), records, Bootstrap(50, seed=1))
    slots = {s.slot: s for s in result.slots}
    assert set(slots) == {"a", "b"} and slots["a"].decisions == slots["b"].decisions == 20_000
    # choosing a2 in slot a alone earns slot a's best rate; choosing b1 changes nothing
    assert slots["a"].snips.low <= 0.15 <= slots["a"].snips.high
    overall = logged_value(records)
    assert slots["b"].snips.low <= overall.value <= slots["b"].snips.high
    assert slots["a"].support == pytest.approx(0.5, abs=0.02)
    assert slots["a"].ess == pytest.approx(slots["a"].support * 20_000, rel=1e-9)
    assert result.snips.low <= 0.15 <= result.snips.high
    # the whole policy's weights are 6 where it is supported: a sixth of the decisions
    assert result.ess == pytest.approx(result.support * 20_000, rel=1e-9)
    assert result.bootstrap is not None
    for name in ("ips", "snips", "dr"):
        interval = result.bootstrap[name]
        assert interval.low < getattr(result, name).value < interval.high


def test_a_plain_proportion_gets_wilson_and_a_weighted_mean_the_delta_method() -> None:
    records = _two_slot_log(3000, seed=5)
    assert evaluate(FixedCandidate({"a": "a2", "b": "b1"}), records).snips.method == "wilson"
    assert evaluate(UniformCandidate(), records).snips.method == "wilson"
    assert logged_value(records).method == "wilson"
    revenue = [JoinedRecord(j.decision, j.outcome, j.reward * 12.5, j.rewarded) for j in records]
    assert logged_value(revenue).method == "normal"
    assert evaluate(FixedCandidate({"a": "a2"}), revenue).snips.method == "delta"
    assert math.isfinite(evaluate(FixedCandidate({"a": "a2"}), revenue).snips.high)
