"""Reading decision logs for offline evaluation: strict, every problem named with its line.

``slotwise evaluate`` reads one or more JSONL logs in the documented format (several files,
e.g. ``slotwise export decisions`` and ``slotwise export events``, are merged by time) and
joins rewards to decisions (slotwise.proxy.learn.join). Beyond what every reader refuses (a
line that is not a record, a probability outside its range: slotwise.proxy.learn.log), a log
that would make an estimate silently wrong is refused here, naming the line and the field:

- ``missing_candidates``: a served slot without ``candidates``. The choice set is what another
  policy could have served; without it the slot counts as a forced choice while its
  probability still divides the propensity (such a log made IPS 80x too high).
- ``bad_log_record``: a served variant that is not among its slot's candidates (no candidate
  policy could ever match it), or a slot with one candidate logged with a probability below 1
  (a forced choice has probability 1).
- ``unknown_reward_field``: a key that no field reads in a reward record or an ``outcome``
  (``{"click": 1}`` for ``clicks``): the reward would silently be 0.

And warned about, loudly, with the lines (the first five of each kind and how many):

- a click reward with a ``value``: a click counts one toward ``clicks`` and its value is not
  read; revenue belongs in a ``revenue`` reward or a ``conversion`` with its value;
- a key no field reads elsewhere in a decision (a typo of an optional field is a default);
- a decision id seen before: the repeat is ignored (as the reward join does).
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from slotwise.proxy.bandit.errors import BanditError
from slotwise.proxy.decision_log import DecisionRecord
from slotwise.proxy.learn.join import JoinStats, join_log
from slotwise.proxy.learn.log import (
    JoinedRecord,
    LogRecord,
    RewardRecord,
    decode,
    read_lines,
    unknown_fields,
)
from slotwise.types import Goal

_SHOWN = 5  # lines named per kind of warning
_REWARD_PATHS = ("$.outcome", "$.decision.outcome")


@dataclass(slots=True)
class _Warnings:
    """Lines per kind of warning, in the order found."""

    lines: dict[str, list[str]] = field(default_factory=dict)

    def add(self, kind: str, where: str) -> None:
        self.lines.setdefault(kind, []).append(where)

    def render(self) -> list[str]:
        out = []
        for kind, lines in self.lines.items():
            shown = ", ".join(lines[:_SHOWN])
            more = f" and {len(lines) - _SHOWN} more" if len(lines) > _SHOWN else ""
            count = "1 line" if len(lines) == 1 else f"{len(lines)} lines"
            out.append(f"{kind} ({count}: {shown}{more})")
        return out


@dataclass(slots=True)
class EvaluationLog:
    """A log read for evaluation: every decision joined with its reward, and what was found."""

    joined: list[JoinedRecord]
    stats: JoinStats
    where: dict[str, str]  # decision id -> file:line
    warnings: list[str]


def read_evaluation_log(
    paths: Sequence[Path], goals: Callable[[str], Goal], window: float
) -> EvaluationLog:
    """Read, check and join ``paths`` (merged by time); raises BanditError naming the line."""
    where: dict[str, str] = {}
    warnings = _Warnings()
    streams = [_checked(path, where, warnings) for path in paths]
    merged = heapq.merge(*streams, key=_time) if len(streams) > 1 else streams[0]
    joined, stats = join_log(merged, goals, window=window)
    return EvaluationLog(joined, stats, where, warnings.render())


def _time(record: LogRecord) -> float:
    if isinstance(record, JoinedRecord):
        return record.decision.ts
    return record.ts


def _checked(path: Path, where: dict[str, str], warnings: _Warnings) -> Iterator[LogRecord]:
    for at, line in read_lines(path):
        record = decode(line, at)
        unknown = unknown_fields(line)
        if unknown:
            _unknown(record, unknown, at, warnings)
        decision = record.decision if isinstance(record, JoinedRecord) else record
        if isinstance(decision, DecisionRecord):
            _check_decision(decision, at)
            if decision.id in where:
                warnings.add(
                    "a decision id seen before: the repeat is ignored, its first record counts",
                    f"{at} repeats {where[decision.id]}",
                )
            else:
                where[decision.id] = at
        elif isinstance(record, RewardRecord) and record.event == "click" and record.value:
            warnings.add(
                "a click's value is not read (a click counts 1 toward clicks): put revenue in a"
                " revenue reward or a conversion with its value",
                at,
            )
        yield record


def _unknown(record: LogRecord, unknown: list[str], at: str, warnings: _Warnings) -> None:
    for path in unknown:
        if isinstance(record, RewardRecord) or path.startswith(_REWARD_PATHS):
            known = (
                "decision_id, ts, event, value"
                if isinstance(record, RewardRecord)
                else ("clicks, conversions, revenue, discount_cost")
            )
            raise BanditError(
                "unknown_reward_field",
                f"{at}: {path}: no such field (it would count as no reward); the fields are"
                f" {known}",
            )
    warnings.add("a field slotwise does not read, ignored", f"{at} {', '.join(unknown)}")


def _check_decision(decision: DecisionRecord, at: str) -> None:
    for i, slot in enumerate(decision.slots):
        if slot.variant is None:
            continue
        field_path = f"$.slots[{i}]"
        if not slot.candidates:
            raise BanditError(
                "missing_candidates",
                f"{at}: {field_path}.candidates: slot {slot.slot} served {slot.variant} but the"
                " record has no candidates; evaluation needs the choice set the rules left"
                " (what another policy could have served): log it, or drop the decision",
            )
        if slot.variant not in slot.candidates:
            raise BanditError(
                "bad_log_record",
                f"{at}: {field_path}.variant: slot {slot.slot} served {slot.variant}, which is"
                f" not among its candidates ({', '.join(slot.candidates)})",
            )
        if len(slot.candidates) == 1 and slot.probability != 1.0:
            raise BanditError(
                "bad_log_record",
                f"{at}: {field_path}.probability: slot {slot.slot} had one candidate, so its"
                f" probability is 1, not {slot.probability}",
            )
