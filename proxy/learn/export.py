"""Export the store's decisions and events as the decision log ``slotwise evaluate`` reads.

``slotwise export decisions|events`` reads one log of the state store (``decisions``: the
proxies' decision records; ``events``: the event collector's records) in pages of
``PAGE`` entries through ``Store.log_read`` and writes each page before reading the next, so
memory stays bounded whatever the log's size. Records are read exactly as the learner reads
them (slotwise.proxy.learn.service: ``decode`` for decisions, ``rewards_from_event`` for
events), so an export holds what the learner would learn from:

- ``decisions``: every decision record, as a ``{"type": "decision", ...}`` line
  (slotwise.proxy.learn.log), holdout and fail-open ones included (evaluation reads the
  holdouts and skips the fail-opens); a stored record that does not decode is skipped and
  counted, with the position of the first;
- ``events``: the events that are rewards, clicks and conversions carrying a decision id, as
  ``{"type": "reward", "decision_id", "ts", "event", "value"}`` lines (a conversion's value is
  its ``properties.value``), and purchases joining an offer decision, as three lines each
  (conversion, discount_cost, margin: slotwise.proxy.learn.purchases); other events (page
  views, purchases of no offer, events without a decision id) are skipped and counted.

Filters: ``since <= ts < until`` (a decision's ``ts``, an event's ``time``), and for decisions
a campaign. Formats: ``jsonl`` (the log format) and ``csv`` (``CSV_COLUMNS``: one row per
record, nested values JSON-encoded in their column, for spreadsheets and data frames;
``evaluate`` reads JSONL).
"""

from __future__ import annotations

import contextlib
import csv
import io
import math
import os
import re
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import msgspec

from slotwise.proxy.bandit.errors import BanditError
from slotwise.proxy.decision_log import DecisionRecord
from slotwise.proxy.learn.log import RewardRecord, decode, encode
from slotwise.proxy.learn.service import DECISIONS_LOG, EVENTS_LOG, rewards_from_event
from slotwise.proxy.offers_config import OffersConfig
from slotwise.proxy.state import LogEntry, Store, StoreConfigError, StoreError, open_store, redact

PAGE = 1000  # entries per read: the most the export holds at once
KINDS = {"decisions": DECISIONS_LOG, "events": EVENTS_LOG}
FORMATS = ("jsonl", "csv")
_DECISION_FIELDS = [f.encode_name for f in msgspec.structs.fields(DecisionRecord)]
_REWARD_FIELDS = [f.encode_name for f in msgspec.structs.fields(RewardRecord)]
#: The CSV header of each kind: the record's fields in order (nested ones JSON-encoded, absent
#: ones empty), ``type`` first; decisions add their ``propensity`` (the logging policy's
#: probability of what was served, holdout included).
CSV_COLUMNS = {
    "decisions": ["type", *_DECISION_FIELDS, "propensity"],
    "events": ["type", *_REWARD_FIELDS],
}
_json = msgspec.json.Encoder()


@dataclass(frozen=True, slots=True)
class ExportFilter:
    """Which records to export: ``since <= ts < until`` (None: unbounded), one campaign."""

    since: float | None = None
    until: float | None = None
    campaign: str | None = None

    def keeps(self, ts: float) -> bool:
        return (self.since is None or ts >= self.since) and (self.until is None or ts < self.until)


@dataclass(slots=True)
class ExportStats:
    """What the export read, wrote and skipped, and why."""

    read: int = 0
    written: int = 0
    outside: int = 0  # outside since/until
    other_campaigns: int = 0
    not_rewards: int = 0  # events that are not rewards
    unreadable: int = 0  # decision records that do not decode
    first_unreadable: str | None = None


async def export_log(
    store: Store,
    kind: str,
    out: IO[bytes],
    selection: ExportFilter = ExportFilter(),
    fmt: str = "jsonl",
    *,
    page: int = PAGE,
    offers: OffersConfig | None = None,
) -> ExportStats:
    """Write the ``kind`` log of ``store`` to ``out`` page by page; returns what it did.

    ``offers`` converts purchases' amounts as the learner does (``[offers]``)."""
    if kind not in KINDS:
        raise ValueError(f"unknown log kind {kind!r}; use {', '.join(KINDS)}")
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; use {', '.join(FORMATS)}")
    stats = ExportStats()
    write = _csv_writer(out, kind) if fmt == "csv" else _jsonl_writer(out)
    config = offers or OffersConfig()
    after = "0"
    while True:
        entries = await store.log_read(KINDS[kind], after=after, count=page)
        if not entries:
            break
        for entry in entries:
            stats.read += 1
            if kind == "decisions":
                decision = _decision(entry, selection, stats)
                records: list[Record] = [] if decision is None else [decision]
            else:
                records = list(_rewards(entry, selection, stats, config))
            for one in records:
                write(one)
                stats.written += 1
        after = entries[-1].position
    out.flush()
    return stats


def _decision(
    entry: LogEntry, selection: ExportFilter, stats: ExportStats
) -> DecisionRecord | None:
    try:
        record = decode(entry.data, f"{DECISIONS_LOG}@{entry.position}")
    except BanditError:
        record = None
    if not isinstance(record, DecisionRecord):
        stats.unreadable += 1
        stats.first_unreadable = stats.first_unreadable or entry.position
        return None
    if not selection.keeps(record.ts):
        stats.outside += 1
        return None
    if selection.campaign is not None and record.campaign != selection.campaign:
        stats.other_campaigns += 1
        return None
    return record


def _rewards(
    entry: LogEntry, selection: ExportFilter, stats: ExportStats, offers: OffersConfig
) -> list[RewardRecord]:
    rewards = rewards_from_event(entry.data, offers)
    if not rewards:
        stats.not_rewards += 1
        return []
    if not selection.keeps(rewards[0].ts):
        stats.outside += 1
        return []
    return rewards


Record = DecisionRecord | RewardRecord


def _jsonl_writer(out: IO[bytes]) -> Callable[[Record], None]:
    def write(record: Record) -> None:
        out.write(encode(record) + b"\n")

    return write


def _csv_writer(out: IO[bytes], kind: str) -> Callable[[Record], None]:
    columns = CSV_COLUMNS[kind]
    buffer = io.StringIO()
    rows = csv.writer(buffer, lineterminator="\n")

    def emit(values: list[str]) -> None:
        rows.writerow(values)
        out.write(buffer.getvalue().encode())
        buffer.seek(0)
        buffer.truncate()

    emit(columns)

    def write(record: Record) -> None:
        data = msgspec.to_builtins(record)
        if isinstance(record, DecisionRecord):
            data["propensity"] = record.propensity
        emit([_cell(data.get(column)) for column in columns])

    return write


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return repr(value)
    return _json.encode(value).decode()


# -- what the command needs around the export: time bounds, the store, the output file ------

_SECONDS = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?")
_TIME_HINT = (
    "write seconds since the epoch (1764547200) or an ISO 8601 date or time"
    " (2026-12-01, 2026-12-01T10:00:00Z; without a zone it is UTC)"
)


def parse_time(text: str, flag: str) -> float:
    """``--since`` / ``--until``: seconds since the epoch, or ISO 8601 (UTC unless zoned)."""
    value: float | None = None
    if _SECONDS.fullmatch(text.strip()):
        value = float(text)
    else:
        try:
            moment = datetime.fromisoformat(text.strip())
        except ValueError:
            moment = None
        if moment is not None:
            value = (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()
    if value is None or not math.isfinite(value):
        raise BanditError("bad_time_bound", f"{flag} {text!r} is not a time; {_TIME_HINT}")
    return value


def selection_of(since: str | None, until: str | None, campaign: str | None) -> ExportFilter:
    """The filter of the command's flags; an empty or inverted time range is an error."""
    start = parse_time(since, "--since") if since is not None else None
    end = parse_time(until, "--until") if until is not None else None
    if start is not None and end is not None and start >= end:
        raise BanditError(
            "bad_time_bound",
            f"--since {since} is not before --until {until}: the range holds no time"
            " (since is inclusive, until exclusive)",
        )
    return ExportFilter(start, end, campaign)


class StoreNotFound(StoreError):
    """A store URL naming a database that is not there (reading it would create it)."""

    code = "store_not_found"


def reading_store(url: str) -> Store:
    """The not-yet-started store of ``url``, refusing one an export cannot read the proxies'
    logs from: memory:// (private to a process), an unknown scheme, a missing sqlite file."""
    from slotwise.proxy.state.sqlite import SQLiteStore

    if url.split("://", 1)[0].lower() == "memory":
        raise StoreConfigError(
            "--store memory:// is private to one process: an export would read an empty log;"
            " pass the sqlite:/// or redis:// URL the proxies write (`slotwise serve --store`)"
        )
    store = open_store(url)  # parses only: nothing is opened or created yet
    if isinstance(store, SQLiteStore) and not store.path.exists():
        raise StoreNotFound(
            f"--store {redact(url)}: no state database at {store.path}; name the database the"
            " proxies write (`slotwise serve --store URL`): nothing was created"
        )
    return store


def check_output(path: Path) -> None:
    """Refuse an output path the export could not write, before the store is read."""
    if path.is_dir():
        raise BanditError("unwritable_output", f"--output {path} is a directory; name a file")
    parent = path.parent
    if not parent.is_dir():
        raise BanditError(
            "unwritable_output",
            f"--output {path}: the directory {parent} does not exist; create it first",
        )
    if not os.access(parent, os.W_OK | os.X_OK):
        raise BanditError(
            "unwritable_output", f"--output {path}: cannot write in {parent} (permission denied)"
        )


@contextlib.contextmanager
def output(path: Path | None) -> Iterator[IO[bytes]]:
    """Standard output, or ``path`` written whole or not at all: a temporary file beside it
    renamed over it once the export succeeded, removed if it failed."""
    if path is None:
        sys.stdout.flush()
        yield sys.stdout.buffer
        sys.stdout.buffer.flush()
        return
    check_output(path)
    try:
        handle, temporary = tempfile.mkstemp(
            dir=path.parent, prefix=f".{path.name}.", suffix=".partial"
        )
    except OSError as exc:
        raise BanditError("unwritable_output", f"--output {path}: {exc.strerror}") from exc
    try:
        with os.fdopen(handle, "wb") as stream:
            yield stream
        os.replace(temporary, path)
    except OSError as exc:
        raise BanditError("unwritable_output", f"--output {path}: {exc.strerror}") from exc
    finally:
        Path(temporary).unlink(missing_ok=True)
