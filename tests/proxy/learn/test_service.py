"""The learner worker over real state stores (memory, SQLite, a real redis-server): rewards from
the events log, acknowledgement after publish, restart recovery."""

from __future__ import annotations

import json
from pathlib import Path

from slotwise.proxy.bandit import ModelStore
from slotwise.proxy.decision_log import DecisionRecord, SlotRecord
from slotwise.proxy.learn.join import RewardJoiner
from slotwise.proxy.learn.learner import Learner
from slotwise.proxy.learn.log import encode
from slotwise.proxy.learn.service import (
    DECISIONS_LOG,
    EVENTS_LOG,
    LearnerService,
    reward_from_event,
)
from slotwise.proxy.state import LogRecord, Store
from slotwise.types import DEFAULT_GOAL
from tests.proxy.bandit.campaigns import make_campaign


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _decision(n: int, ts: float) -> LogRecord:
    record = DecisionRecord(
        id=f"d{n}",
        ts=ts,
        campaign="spring",
        slots=[SlotRecord("s0", "s0v1", 0.5, ["s0v0", "s0v1"])],
        signals={"device.type": "mobile"},
    )
    return LogRecord(encode(record), id=record.id)


def _event(kind: str, n: int, ts: float, **extra: object) -> LogRecord:
    event = {"type": kind, "id": f"e{n}", "time": ts, **extra}
    return LogRecord(json.dumps({"received": ts, "consent": "personal", "event": event}).encode())


def test_only_clicks_and_conversions_with_a_decision_are_rewards() -> None:
    click = _event("click", 1, 5.0, decision_id="d1").data
    sale = _event("conversion", 2, 6.0, decision_id="d1", properties={"value": 30.0}).data
    assert reward_from_event(click) == reward_from_event(click)
    reward = reward_from_event(sale)
    assert reward is not None and (reward.event, reward.value) == ("conversion", 30.0)
    assert reward_from_event(_event("click", 3, 5.0).data) is None
    assert reward_from_event(_event("page_view", 4, 5.0, decision_id="d1").data) is None
    assert reward_from_event(b"not json") is None


async def test_the_worker_joins_learns_publishes_and_acknowledges(
    store: Store, tmp_path: Path
) -> None:
    clock = Clock()
    models = ModelStore(tmp_path / "models")
    campaign = make_campaign(slots=1, variants=2)
    await store.log_append(DECISIONS_LOG, [_decision(n, 1000.0) for n in range(20)])
    await store.log_append(
        EVENTS_LOG,
        [_event("click", n, 1001.0, decision_id=f"d{n}") for n in range(5)]
        + [_event("page_view", 99, 1001.0)],
    )
    joiner = RewardJoiner(lambda _: DEFAULT_GOAL, window=60.0)
    service = LearnerService(
        store, Learner([campaign], models), joiner, publish_every=30.0, clock=clock
    )
    assert await service.run_once() == 0  # recovery read: nothing pending yet
    assert await service.run_once() == 26
    assert joiner.pending == 20 and service.learner.stats.examples == 0
    clock.now = 1061.0
    await service.run_once()
    assert service.learner.stats.examples == 20
    assert [i.label for i in service.stats.published] == ["v1"]
    assert joiner.stats.rewarded == 5
    # decisions acknowledged once published; rewards once two windows are over
    assert await store.log_group_read(DECISIONS_LOG, "learner", "learner-1", pending=True) == []
    clock.now = 1200.0
    await service.publish()
    assert await store.log_group_read(EVENTS_LOG, "learner", "learner-1", pending=True) == []


async def test_a_restarted_worker_relearns_what_was_never_published(
    store: Store, tmp_path: Path
) -> None:
    clock = Clock()
    models = ModelStore(tmp_path / "models")
    campaign = make_campaign(slots=1, variants=2)
    await store.log_append(DECISIONS_LOG, [_decision(n, 1000.0) for n in range(10)])
    await store.log_append(EVENTS_LOG, [_event("click", 1, 1001.0, decision_id="d1")])
    first = LearnerService(
        store,
        Learner([campaign], models),
        RewardJoiner(lambda _: DEFAULT_GOAL, window=60.0),
        publish_every=1e9,
        clock=clock,
    )
    await first.run_once()
    await first.run_once()
    clock.now = 1100.0
    await first.run_once()
    assert first.learner.stats.examples == 10 and models.current("spring") is None
    # killed before publishing: a new worker gets the unacknowledged entries again
    joiner = RewardJoiner(lambda _: DEFAULT_GOAL, window=60.0)
    second = LearnerService(
        store, Learner([campaign], models), joiner, publish_every=0.0, clock=clock
    )
    assert await second.run_once() == 11
    assert second.learner.stats.examples == 10 and joiner.stats.rewarded == 1
    current = models.current("spring")
    assert current is not None and current.examples == 10
