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

import heapq
from collections.abc import Iterator, Sequence
from pathlib import Path

import msgspec

from slotwise.proxy.decision_log import DecisionRecord
from slotwise.proxy.learn.log import JoinedRecord, RewardRecord, decode, read_lines
from slotwise.proxy.report.store_reader import (
    Cursor,
    Selection,
    feed_decision,
    read_store,
    read_store_from,
)
from slotwise.proxy.report.tally import ReportTally

__all__ = ["Cursor", "Selection", "read_files", "read_store", "read_store_from"]


def _feed_log_record(tally: ReportTally, record: object, selection: Selection) -> None:
    if isinstance(record, DecisionRecord):
        feed_decision(tally, record, selection)
    elif isinstance(record, RewardRecord):
        tally.add_event(record.decision_id, record.ts, record.event, record.value)
    elif isinstance(record, JoinedRecord):
        outcome = record.outcome
        feed_decision(tally, msgspec.structs.replace(record.decision, outcome=outcome), selection)


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
