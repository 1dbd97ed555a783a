"""Where a report's records come from: the state store's logs, or exported JSONL files.

Both feed a ReportTally in time order, page by page (the store) or line by line (files), so a
report holds one join window of decisions at most (slotwise.proxy.report.tally):

- the store: the ``decisions`` and ``events`` logs (the proxies' and the event collector's),
  read in pages of ``PAGE`` and merged by time; impressions, clicks and conversions that carry
  a decision id are its events;
- files: the log format of ``slotwise export`` (decision, reward and joined lines), each file
  in its own time order, merged by time.
"""

from __future__ import annotations

import asyncio
import heapq
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import msgspec

from slotwise.proxy.decision_log import DecisionRecord
from slotwise.proxy.learn.log import JoinedRecord, RewardRecord, decode, read_lines
from slotwise.proxy.learn.service import DECISIONS_LOG, EVENTS_LOG
from slotwise.proxy.report.tally import ReportTally
from slotwise.proxy.state import LogEntry, Store

PAGE = 2000


@dataclass(frozen=True, slots=True)
class Selection:
    """Which decisions a report reads: ``since <= ts < until``, some campaigns (all: empty)."""

    since: float | None = None
    until: float | None = None
    campaigns: frozenset[str] = frozenset()

    def keeps(self, record: DecisionRecord) -> bool:
        ts = record.ts
        if (self.since is not None and ts < self.since) or (
            self.until is not None and ts >= self.until
        ):
            return False
        return not self.campaigns or record.campaign in self.campaigns


class _Props(msgspec.Struct):
    value: float | int | None = None


class _Event(msgspec.Struct):
    type: str = ""
    decision_id: str | None = None
    time: float | None = None
    properties: _Props | None = None


class _Envelope(msgspec.Struct):
    event: _Event
    received: float = 0.0


_ENVELOPE = msgspec.json.Decoder(_Envelope)
# the report divides by no propensity: the decision's own decoder, without the log's checks
_DECISION = msgspec.json.Decoder(DecisionRecord)


def _feed_decision(tally: ReportTally, record: DecisionRecord, selection: Selection) -> None:
    if selection.keeps(record):
        tally.add_decision(record)
    else:
        tally.stats.outside += 1


def _feed_log_record(tally: ReportTally, record: object, selection: Selection) -> None:
    if isinstance(record, DecisionRecord):
        _feed_decision(tally, record, selection)
    elif isinstance(record, RewardRecord):
        tally.add_event(record.decision_id, record.ts, record.event, record.value)
    elif isinstance(record, JoinedRecord):
        outcome = record.outcome
        _feed_decision(tally, msgspec.structs.replace(record.decision, outcome=outcome), selection)


def _timed(path: Path) -> Iterator[tuple[float, int, object]]:
    for index, (where, line) in enumerate(read_lines(path)):
        record = decode(line, where)
        if isinstance(record, JoinedRecord):
            ts = record.decision.ts
        else:
            ts = record.ts
        yield ts, index, record


def read_files(tally: ReportTally, paths: Sequence[Path], selection: Selection) -> None:
    """Feed every record of the JSONL files, merged by time; a bad line stops with its place."""
    streams = [_timed(path) for path in paths]
    for _, _, record in heapq.merge(*streams, key=lambda item: item[0]):
        _feed_log_record(tally, record, selection)
    tally.finish()


async def _pages(store: Store, log: str) -> AsyncIterator[list[LogEntry]]:
    """The log's pages, the next one read while the caller works on this one."""
    page = await store.log_read(log, after="0", count=PAGE)
    while page:
        following = asyncio.ensure_future(store.log_read(log, after=page[-1].position, count=PAGE))
        try:
            yield page
        except BaseException:
            following.cancel()
            raise
        page = await following


async def _decisions(store: Store, tally: ReportTally) -> AsyncIterator[tuple[float, object]]:
    async for entries in _pages(store, DECISIONS_LOG):
        for entry in entries:
            try:
                record = _DECISION.decode(entry.data)
            except msgspec.MsgspecError:
                tally.stats.unreadable += 1
                continue
            yield record.ts, record


async def _events(store: Store, tally: ReportTally) -> AsyncIterator[tuple[float, object]]:
    async for entries in _pages(store, EVENTS_LOG):
        for entry in entries:
            try:
                envelope = _ENVELOPE.decode(entry.data)
            except msgspec.MsgspecError:
                tally.stats.unreadable += 1
                continue
            event = envelope.event
            ts = event.time if event.time is not None else envelope.received
            yield ts, event


async def read_store(store: Store, tally: ReportTally, selection: Selection) -> None:
    """Feed the store's decisions and events logs, merged by time."""
    decisions = _decisions(store, tally)
    events = _events(store, tally)
    d = await anext(decisions, None)
    e = await anext(events, None)
    while d is not None or e is not None:
        if e is None or (d is not None and d[0] <= e[0]):
            assert d is not None
            record = d[1]
            assert isinstance(record, DecisionRecord)
            _feed_decision(tally, record, selection)
            d = await anext(decisions, None)
        else:
            event = e[1]
            assert isinstance(event, _Event)
            _feed_event(tally, e[0], event)
            e = await anext(events, None)
    tally.finish()


def _feed_event(tally: ReportTally, ts: float, event: _Event) -> None:
    if event.decision_id is None:
        tally.stats.events += 1
        tally.stats.ignored_events += 1
        return
    value = 0.0
    if event.type == "conversion" and event.properties is not None:
        raw = event.properties.value
        value = float(raw) if isinstance(raw, int | float) else 0.0
    tally.add_event(event.decision_id, ts, event.type, value)
