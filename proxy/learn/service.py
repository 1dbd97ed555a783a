"""The learner as a worker: the shared store's logs in, model versions out.

Reads two logs of the state store (``slotwise.proxy.state``) as consumer group ``learner``:

- ``decisions``: the proxies' decision records (slotwise.proxy.learn.log format);
- ``events``: the event collector's records (``{"received", "consent", "event": {...}}``);
  clicks and conversions that carry a ``decision_id`` are rewards, and purchases that join an
  offer decision (slotwise.proxy.learn.purchases); everything else is skipped.

Decisions and rewards go through the ``RewardJoiner`` (wall-clock windows); joined examples
go to the ``Learner`` (and to the guardrails, when given: slotwise.proxy.guardrail.alert);
every ``publish_every`` seconds the learner publishes new versions.
Entries are acknowledged only after the model that learned from them was published (rewards:
once their decision's window is long closed), so a learner killed between publishes re-reads
them on restart (``pending=True``): a restart loses nothing beyond the last snapshot, and
decisions learned but never published are learned again from the same data.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import msgspec

from slotwise.proxy.bandit.errors import BanditError
from slotwise.proxy.bandit.store import ModelInfo
from slotwise.proxy.decision_log import DecisionRecord
from slotwise.proxy.guardrail.alert import Guardrails
from slotwise.proxy.learn.join import RewardJoiner
from slotwise.proxy.learn.learner import Learner
from slotwise.proxy.learn.log import RewardRecord, decode
from slotwise.proxy.learn.purchases import purchase_rewards
from slotwise.proxy.offers_config import OffersConfig
from slotwise.proxy.state import LogEntry, Store

DECISIONS_LOG = "decisions"
EVENTS_LOG = "events"
GROUP = "learner"
_RECOVERY_LIMIT = 10_000_000


class _EventEnvelope(msgspec.Struct):
    event: dict[str, object]
    received: float = 0.0


_EVENT_DECODER = msgspec.json.Decoder(_EventEnvelope)


def reward_from_event(data: bytes) -> RewardRecord | None:
    """The reward an events-log record carries, or None (not a reward, or no decision id)."""
    try:
        event = _EVENT_DECODER.decode(data).event
    except msgspec.MsgspecError:
        return None
    decision_id = event.get("decision_id")
    kind = event.get("type")
    if not isinstance(decision_id, str) or kind not in ("click", "conversion"):
        return None
    at = event.get("time")
    ts = float(at) if isinstance(at, int | float) else time.time()
    value = 0.0
    properties = event.get("properties")
    if kind == "conversion" and isinstance(properties, dict):
        raw = properties.get("value", 0.0)
        value = float(raw) if isinstance(raw, int | float) else 0.0
    return RewardRecord(decision_id, ts, "click" if kind == "click" else "conversion", value)


def rewards_from_event(data: bytes, offers: OffersConfig | None = None) -> list[RewardRecord]:
    """Every reward an events-log record carries: a click's or conversion's, or a purchase's
    revenue, discount cost and margin when it joins an offer decision
    (slotwise.proxy.learn.purchases)."""
    single = reward_from_event(data)
    if single is not None:
        return [single]
    if b'"purchase"' not in data:
        return []
    try:
        event = _EVENT_DECODER.decode(data).event
    except msgspec.MsgspecError:
        return []
    if event.get("type") != "purchase":
        return []
    return purchase_rewards(event, offers or OffersConfig())


@dataclass(slots=True)
class ServiceStats:
    read_decisions: int = 0
    read_events: int = 0
    bad_records: int = 0
    published: list[ModelInfo] = field(default_factory=list)


class LearnerService:
    """One learner worker; ``run_once`` does one read-join-learn step, ``run`` loops."""

    def __init__(
        self,
        store: Store,
        learner: Learner,
        joiner: RewardJoiner,
        *,
        consumer: str = "learner-1",
        batch: int = 1000,
        publish_every: float = 60.0,
        clock: Callable[[], float] = time.time,
        offers: OffersConfig | None = None,
        guardrails: Guardrails | None = None,
    ) -> None:
        self.offers = offers or OffersConfig()
        self.store = store
        self.guardrails = guardrails
        self.learner = learner
        self.joiner = joiner
        self.consumer = consumer
        self.batch = batch
        self.publish_every = publish_every
        self.clock = clock
        self.stats = ServiceStats()
        self._decision_positions: dict[str, str] = {}
        self._ack_decisions: list[str] = []
        self._reward_positions: list[tuple[float, str]] = []
        self._ack_now: list[str] = []  # events that are not rewards
        self._recovered = False
        self._last_publish = clock()

    async def run_once(self) -> int:
        """Read what is there, learn from what closed, publish when due; entries read."""
        if self.guardrails is not None:
            await self.guardrails.start()  # before anything is observed: a restart resumes
        if not self._recovered:
            # after a restart: everything delivered to this consumer but never acknowledged,
            # in one read (pending reads do not advance, and the backlog is bounded by one
            # reward window plus one publish interval of traffic)
            self._recovered = True
            count = _RECOVERY_LIMIT
            pending = True
        else:
            count, pending = self.batch, False
        decisions = await self.store.log_group_read(
            DECISIONS_LOG, GROUP, self.consumer, count=count, pending=pending
        )
        events = await self.store.log_group_read(
            EVENTS_LOG, GROUP, self.consumer, count=count, pending=pending
        )
        self._take_decisions(decisions)
        self._take_events(events)
        guardrails = self.guardrails
        for joined in self.joiner.close_until(self.clock()):
            self.learner.learn(joined)
            if guardrails is not None:
                d = joined.decision
                guardrails.observe(d.campaign, d.ts, d.holdout, d.fail_open, joined.reward)
            position = self._decision_positions.pop(joined.decision.id, None)
            if position is not None:
                self._ack_decisions.append(position)
        if guardrails is not None:
            await guardrails.check()
        if self.clock() - self._last_publish >= self.publish_every:
            await self.publish()
        return len(decisions) + len(events)

    async def publish(self) -> list[ModelInfo]:
        """Publish new versions, then acknowledge what they were learned from."""
        published = self.learner.publish()
        self.stats.published += published
        self._last_publish = self.clock()
        if self._ack_decisions:
            await self.store.log_ack(DECISIONS_LOG, GROUP, self._ack_decisions)
            self._ack_decisions = []
        horizon = self.clock() - 2 * self.joiner.window
        done = [p for ts, p in self._reward_positions if ts < horizon]
        self._reward_positions = [(ts, p) for ts, p in self._reward_positions if ts >= horizon]
        if done or self._ack_now:
            await self.store.log_ack(EVENTS_LOG, GROUP, done + self._ack_now)
            self._ack_now = []
        if self.guardrails is not None:  # what the saved statistics count is acknowledged
            await self.guardrails.save()
        return published

    async def run(self, stop: asyncio.Event, idle: float = 0.5) -> None:
        """Loop until ``stop`` is set; publish once more on the way out."""
        while not stop.is_set():
            if await self.run_once() == 0:
                try:
                    await asyncio.wait_for(stop.wait(), idle)
                except TimeoutError:
                    pass
        await self.publish()

    def _take_decisions(self, entries: list[LogEntry]) -> None:
        for entry in entries:
            self.stats.read_decisions += 1
            try:
                record = decode(entry.data, f"{DECISIONS_LOG}@{entry.position}")
            except BanditError:
                self.stats.bad_records += 1
                self._ack_decisions.append(entry.position)
                continue
            if not isinstance(record, DecisionRecord):
                self._ack_decisions.append(entry.position)
                continue
            self._decision_positions[record.id] = entry.position
            self.joiner.add_decision(record)

    def _take_events(self, entries: list[LogEntry]) -> None:
        for entry in entries:
            self.stats.read_events += 1
            rewards = rewards_from_event(entry.data, self.offers)
            if not rewards:
                self._ack_now.append(entry.position)
                continue
            self._reward_positions.append((rewards[0].ts, entry.position))
            for reward in rewards:
                self.joiner.add_reward(reward)
