from __future__ import annotations

import pytest

from slotwise.proxy.decision_log import DecisionRecord, OutcomeRecord
from slotwise.proxy.learn.join import RewardJoiner, joined_from_inline
from slotwise.proxy.learn.log import RewardRecord
from slotwise.types import Goal

GOAL = Goal.of({"clicks": 1.0, "conversions": 10.0})


def _decision(id: str, ts: float) -> DecisionRecord:
    return DecisionRecord(id=id, ts=ts, campaign="spring")


def _joiner(default: float = 0.0) -> RewardJoiner:
    return RewardJoiner(lambda _: GOAL, window=60.0, default_reward=default)


def test_rewards_inside_the_window_join_and_the_reward_is_the_goal() -> None:
    joiner = _joiner()
    joiner.add_decision(_decision("a", 100.0))
    joiner.add_reward(RewardRecord("a", 110.0, "click"))
    joiner.add_reward(RewardRecord("a", 150.0, "conversion", 25.0))
    assert joiner.close_until(159.9) == []
    (joined,) = joiner.close_until(160.0)
    assert joined.rewarded and joined.reward == 11.0
    assert joined.outcome == OutcomeRecord(1.0, 1.0, 25.0, 0.0)


def test_window_close_applies_the_default_reward() -> None:
    joiner = _joiner(default=-0.5)
    joiner.add_decision(_decision("a", 0.0))
    (joined,) = joiner.close_until(61.0)
    assert not joined.rewarded and joined.reward == -0.5
    assert joiner.stats.joined == 1 and joiner.stats.rewarded == 0


def test_late_rewards_are_counted_and_dropped() -> None:
    joiner = _joiner()
    joiner.add_decision(_decision("a", 0.0))
    joiner.add_decision(_decision("b", 0.0))
    joiner.add_reward(RewardRecord("b", 61.0, "click"))  # after b's window, b still open
    (a, b) = sorted(joiner.close_until(70.0), key=lambda j: j.decision.id)
    joiner.add_reward(RewardRecord("a", 65.0, "click"))  # a already emitted
    assert a.reward == 0.0 and b.reward == 0.0
    assert joiner.stats.late == 2


def test_rewards_may_overtake_their_decision_but_not_forever() -> None:
    joiner = _joiner()
    joiner.add_reward(RewardRecord("a", 5.0, "click"))
    joiner.add_decision(_decision("a", 4.0))
    joiner.add_reward(RewardRecord("zzz", 5.0, "click"))
    joined = joiner.close_until(1000.0)
    assert [(j.decision.id, j.reward) for j in joined] == [("a", 1.0)]
    assert joiner.stats.unmatched == 1


def test_duplicate_decisions_are_ignored() -> None:
    joiner = _joiner()
    joiner.add_decision(_decision("a", 0.0))
    joiner.add_decision(_decision("a", 1.0))
    assert len(joiner.close_all()) == 1
    assert joiner.stats.duplicate_decisions == 1


def test_inline_outcomes_from_converted_logs() -> None:
    record = DecisionRecord(
        id="x", ts=0.0, campaign="spring", outcome=OutcomeRecord(clicks=1, conversions=1)
    )
    assert joined_from_inline(record, GOAL).reward == pytest.approx(11.0)
    assert not joined_from_inline(_decision("y", 0.0), GOAL).rewarded
