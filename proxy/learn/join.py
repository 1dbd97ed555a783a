"""The reward join: rewards meet their decision inside a window, then the example is final.

A decision opens a window of ``window`` seconds. Reward events carrying its id add to its
outcome while the window is open. When the window closes (``close_until(now)`` with
``now >= decision.ts + window``) the decision is emitted as a ``JoinedRecord``: its reward is the
goal over the outcome, or ``default_reward`` if nothing came back. A reward that arrives after
its decision's window (by its own timestamp, or after the decision was emitted) is late:
counted and dropped, never applied to an example the learner may already have used.

Rewards can overtake their decision (several proxies, one log): a reward for an unknown id waits
up to one window for its decision before it is counted as unmatched.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field

import msgspec

from slotwise.proxy.bandit.errors import BanditError
from slotwise.proxy.decision_log import DecisionRecord, OutcomeRecord
from slotwise.proxy.learn.log import JoinedRecord, LogRecord, RewardRecord
from slotwise.types import DEFAULT_GOAL, Goal

DEFAULT_WINDOW = 3600.0
_MAX_REMEMBERED = 1_000_000  # ids of emitted decisions kept to recognise late rewards


@dataclass(slots=True)
class JoinStats:
    decisions: int = 0
    rewards: int = 0
    joined: int = 0
    rewarded: int = 0
    late: int = 0
    unmatched: int = 0
    duplicate_decisions: int = 0


def add_reward(outcome: OutcomeRecord, event: str, value: float) -> OutcomeRecord:
    """The outcome plus one reward event (click, conversion, revenue, discount_cost, margin)."""
    clicks, conversions = outcome.clicks, outcome.conversions
    revenue, discount_cost, margin = outcome.revenue, outcome.discount_cost, outcome.margin
    if event == "click":
        clicks += 1
    elif event == "conversion":
        conversions += 1
        revenue += value
    elif event == "revenue":
        revenue += value
    elif event == "discount_cost":
        discount_cost += value
    elif event == "margin":
        margin += value
    else:
        raise BanditError(
            "unknown_reward_event",
            f"unknown reward event {event!r}; use click, conversion, revenue, discount_cost"
            " or margin",
        )
    return OutcomeRecord(clicks, conversions, revenue, discount_cost, margin)


def reward_of(goal: Goal, outcome: OutcomeRecord) -> float:
    """The goal's value for a decision's outcome."""
    return goal.reward(msgspec.structs.asdict(outcome))


@dataclass(slots=True)
class _Open:
    decision: DecisionRecord
    outcome: OutcomeRecord
    events: int = 0


@dataclass(slots=True)
class RewardJoiner:
    """Streams decisions and rewards in, joined examples out (one writer, not thread-safe)."""

    goals: Callable[[str], Goal]
    window: float = DEFAULT_WINDOW
    default_reward: float = 0.0
    stats: JoinStats = field(default_factory=JoinStats)
    _open: dict[str, _Open] = field(default_factory=dict)
    _deadlines: list[tuple[float, str]] = field(default_factory=list)
    _orphans: dict[str, list[RewardRecord]] = field(default_factory=dict)
    _closed: dict[str, None] = field(default_factory=dict)

    def add_decision(self, decision: DecisionRecord) -> None:
        if decision.id in self._open or decision.id in self._closed:
            self.stats.duplicate_decisions += 1
            return
        self.stats.decisions += 1
        self._open[decision.id] = _Open(decision, OutcomeRecord())
        heapq.heappush(self._deadlines, (decision.ts + self.window, decision.id))
        for reward in self._orphans.pop(decision.id, ()):
            self._apply(reward)

    def add_reward(self, reward: RewardRecord) -> None:
        self.stats.rewards += 1
        if reward.decision_id in self._closed:
            self.stats.late += 1
            return
        if reward.decision_id not in self._open:
            self._orphans.setdefault(reward.decision_id, []).append(reward)
            heapq.heappush(self._deadlines, (reward.ts + self.window, reward.decision_id))
            return
        self._apply(reward)

    def _apply(self, reward: RewardRecord) -> None:
        entry = self._open[reward.decision_id]
        if reward.ts > entry.decision.ts + self.window or reward.ts < entry.decision.ts:
            self.stats.late += 1
            return
        entry.outcome = add_reward(entry.outcome, reward.event, reward.value)
        entry.events += 1

    def close_until(self, now: float) -> list[JoinedRecord]:
        """Emit every decision whose window closed at ``now``; expire unmatched rewards."""
        joined: list[JoinedRecord] = []
        while self._deadlines and self._deadlines[0][0] <= now:
            _, key = heapq.heappop(self._deadlines)
            entry = self._open.get(key)
            if entry is not None and entry.decision.ts + self.window <= now:
                del self._open[key]
                joined.append(self._finish(entry))
                self._remember(key)
            elif entry is None and key in self._orphans:
                self.stats.unmatched += len(self._orphans.pop(key))
        return joined

    def close_all(self) -> list[JoinedRecord]:
        """Emit everything still open (end of a finite log)."""
        return self.close_until(float("inf"))

    def _finish(self, entry: _Open) -> JoinedRecord:
        decision = entry.decision
        rewarded = entry.events > 0
        reward = (
            reward_of(self.goals(decision.campaign), entry.outcome)
            if rewarded
            else self.default_reward
        )
        self.stats.joined += 1
        self.stats.rewarded += int(rewarded)
        return JoinedRecord(decision, entry.outcome, reward, rewarded)

    def _remember(self, key: str) -> None:
        self._closed[key] = None
        if len(self._closed) > _MAX_REMEMBERED:
            # forget the oldest half; a reward that late is counted as unmatched instead
            for old in list(self._closed)[: _MAX_REMEMBERED // 2]:
                del self._closed[old]

    @property
    def pending(self) -> int:
        return len(self._open)


def joined_from_inline(record: DecisionRecord, goals: Mapping[str, Goal] | Goal) -> JoinedRecord:
    """A decision that carries its own outcome (converted logs) as a joined example."""
    outcome = record.outcome or OutcomeRecord()
    goal = goals if isinstance(goals, Goal) else goals.get(record.campaign, DEFAULT_GOAL)
    return JoinedRecord(record, outcome, reward_of(goal, outcome), record.outcome is not None)


def join_log(
    records: Iterable[LogRecord],
    goals: Callable[[str], Goal],
    window: float = DEFAULT_WINDOW,
    default_reward: float = 0.0,
) -> tuple[list[JoinedRecord], JoinStats]:
    """Every decision of a finite log with its reward, in log order (:func:`iter_join`)."""
    joiner = RewardJoiner(goals, window=window, default_reward=default_reward)
    return list(iter_join(records, joiner)), joiner.stats


def iter_join(records: Iterable[LogRecord], joiner: RewardJoiner) -> Iterator[JoinedRecord]:
    """``join_log`` as a stream: each joined decision as soon as its window closed, so a
    reader that learns as it goes holds only the open windows (and the rewards waiting for
    their decision), not the whole log; ``joiner.stats`` counts what it joined.

    Joined records pass through; decisions that carry an inline outcome are joined by it;
    the others meet their reward records through ``joiner``: a decision's window closes at
    the first decision a window later, so a reward must come before that one (a log whose
    rewards all follow its decisions finds them late).
    """
    window = joiner.window
    for record in records:
        if isinstance(record, JoinedRecord):
            yield record
        elif isinstance(record, RewardRecord):
            joiner.add_reward(record)
        elif record.outcome is not None:
            yield joined_from_inline(record, joiner.goals(record.campaign))
        else:
            joiner.add_decision(record)
            yield from joiner.close_until(record.ts - window)
    yield from joiner.close_all()
