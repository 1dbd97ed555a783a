"""``memory://``: the whole store in this process's memory, for tests and single-run tools.

Nothing survives the process. All methods run on the event loop without awaiting anything,
so each one is atomic with respect to other tasks and no lock is needed.

It is also ``slotwise serve``'s default, so a proxy left running on it must not grow without
bound: each log keeps its newest ``max_log_entries`` entries (``memory://?max_log_entries=N``,
default 200,000). Past that the oldest tenth is shed at once (amortised O(1) per append),
with the dedup ids of as many records; a warning says so once per log. Values, sets and
histories expire when read and, like Redis keys, actively: writes drive an incremental sweep
(``_SWEEP_CHUNK`` keys every ``_SWEEP_EVERY`` seconds), so the state of users who never come
back does not stay for the life of the process.
"""

from __future__ import annotations

import bisect
import builtins
import heapq
import itertools
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar

from slotwise.proxy.state.base import (
    HistoryItem,
    LogEntry,
    LogRecord,
    Store,
    StoreConfigError,
    now,
    subject_prefix,
)

_log = logging.getLogger(__name__)
DEFAULT_MAX_LOG_ENTRIES = 200_000
# The active expiry checks this many keys per step, at most one step per interval, from a
# snapshot of one table's keys (values, sets, histories in turn): about 150 us per step with
# half the keys expired, 10,000 keys a second, so a write never pays for a whole scan. The
# snapshot itself costs about 22 ms per million keys, once per pass over a table.
_SWEEP_EVERY = 0.05
_SWEEP_CHUNK = 500
_Held = TypeVar("_Held")


# A log entry is a plain tuple (position, data, subject, at), not an object: a tuple of
# numbers, bytes and strings is dropped from the garbage collector's tracking once it has
# survived one collection, so a log of 200,000 entries costs the collector nothing. As
# instances of a class they were traversed by every full collection, whose pauses grew with
# the log (a proxy's p99 went from 15 to 33 ms over 24 s of traffic; docs/benchmarks.md).
_Entry = tuple[int, bytes, str | None, float]
_POSITION: Final = 0
_DATA: Final = 1
_SUBJECT: Final = 2
_AT: Final = 3


@dataclass(slots=True)
class _Log:
    entries: list[_Entry] = field(default_factory=list)
    positions: list[int] = field(default_factory=list)  # parallel to entries, for bisect
    next_position: int = 1
    dedup: dict[str, float] = field(default_factory=dict)  # record id -> expiry
    next_prune: float = 0.0
    shed: int = 0  # entries dropped to stay within max_log_entries

    def rebuild_index(self) -> None:
        self.positions = [e[_POSITION] for e in self.entries]


@dataclass(slots=True)
class _Group:
    last_delivered: int = 0
    pending: dict[int, str] = field(default_factory=dict)  # position -> consumer


def _expired_at_front(dedup: dict[str, float], at: float) -> int:
    """How many of the oldest ids have expired, counted up to the first that has not.

    Ids go in in time order and a log's appends share one ttl, so expiry follows insertion
    order: the sweep touches what it removes and one more, not the whole dictionary (a full
    rebuild of 200,000 ids paused the event loop every ten seconds). An id with a shorter ttl
    behind a longer one waits for the next sweep; lookups check expiry anyway.
    """
    count = 0
    for expires in dedup.values():
        if expires > at:
            break
        count += 1
    return count


def _drop_oldest(dedup: dict[str, float], count: int) -> None:
    for key in list(itertools.islice(dedup, count)):  # dicts keep insertion order
        del dedup[key]


def _live(table: dict[str, tuple[_Held, float | None]], key: str, at: float) -> _Held | None:
    """What ``key`` holds at ``at``, or None; an expired key is deleted on the way."""
    found = table.get(key)
    if found is None:
        return None
    held, expires = found
    if expires is not None and expires <= at:
        del table[key]
        return None
    return held


def _ranked(scores: dict[bytes, float]) -> list[tuple[bytes, float]]:
    """Highest score first; ties: the greater member first (Redis's ZREVRANGE order)."""
    return sorted(scores.items(), key=lambda pair: (pair[1], pair[0]), reverse=True)


def _highest(scores: dict[bytes, float], count: int) -> list[tuple[bytes, float]]:
    if count <= 0:
        return []
    if count * 4 < len(scores):  # a few of many: a heap, not a sort of them all
        return heapq.nlargest(count, scores.items(), key=lambda pair: (pair[1], pair[0]))
    return _ranked(scores)[:count]


def _position(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise StoreConfigError(f"not a log position of this store: {text!r}") from None


class MemoryStore(Store):
    """Dictionaries; expiry on read and by an incremental sweep driven by writes."""

    scheme = "memory"
    durable = False
    answers_at_once = True  # no read awaits anything

    def __init__(self, *, max_log_entries: int = DEFAULT_MAX_LOG_ENTRIES) -> None:
        if max_log_entries < 1:
            raise StoreConfigError(f"max_log_entries must be 1 or more, got {max_log_entries}")
        self.max_log_entries = max_log_entries
        self._values: dict[str, tuple[bytes, float | None]] = {}
        self._sets: dict[str, tuple[builtins.set[bytes], float | None]] = {}
        self._histories: dict[str, tuple[list[HistoryItem], float | None]] = {}
        self._scores: dict[str, tuple[dict[bytes, float], float | None]] = {}
        self._logs: dict[str, _Log] = {}
        self._groups: dict[tuple[str, str], _Group] = {}
        self._next_sweep = 0.0
        self._sweep_table = 0  # 0 values, 1 sets, 2 histories, 3 scores
        self._sweep_keys: list[str] = []
        self._sweep_offset = 0

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def ping(self) -> None:
        return None

    def _written(self) -> float:
        """The time of a write; the sweep's next step first, when one is due."""
        at = now()
        if at >= self._next_sweep:
            self._sweep(at)
        return at

    def _sweep(self, at: float) -> None:
        """One step of the active expiry: the next chunk of one table's key snapshot."""
        self._next_sweep = at + _SWEEP_EVERY
        tables: tuple[dict[str, tuple[Any, float | None]], ...] = (
            self._values,
            self._sets,
            self._histories,
            self._scores,
        )
        if self._sweep_offset >= len(self._sweep_keys):
            self._sweep_table = (self._sweep_table + 1) % len(tables)
            self._sweep_keys = list(tables[self._sweep_table])
            self._sweep_offset = 0
        chunk = self._sweep_keys[self._sweep_offset : self._sweep_offset + _SWEEP_CHUNK]
        self._sweep_offset += _SWEEP_CHUNK
        table = tables[self._sweep_table]
        for key in chunk:
            _live(table, key, at)  # reading an expired key deletes it

    # -- values ---------------------------------------------------------------------------

    def _live_value(self, key: str) -> bytes | None:
        return _live(self._values, key, now())

    async def get(self, key: str) -> bytes | None:
        return self._live_value(key)

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        return self.get_many_now(keys)

    def get_many_now(self, keys: Sequence[str]) -> list[bytes | None]:
        """``get_many``, synchronously (``Store.answers_at_once``)."""
        at = now()  # one instant for every key, as one MGET reads them
        values = self._values
        return [_live(values, k, at) for k in keys]

    async def set(self, key: str, value: bytes, *, ttl: float | None = None) -> None:
        at = self._written()
        self._values[key] = (bytes(value), at + ttl if ttl is not None else None)

    async def set_if_absent(self, key: str, value: bytes, *, ttl: float | None = None) -> bool:
        if self._live_value(key) is not None:
            return False
        await self.set(key, value, ttl=ttl)
        return True

    async def delete(self, *keys: str) -> int:
        existed = 0
        for key in keys:
            found = (
                self._live_value(key) is not None
                or self._live_set(key) is not None
                or self._live_history(key) is not None
                or _live(self._scores, key, now()) is not None
            )
            self._values.pop(key, None)
            self._sets.pop(key, None)
            self._histories.pop(key, None)
            self._scores.pop(key, None)
            existed += found
        return existed

    async def incr(self, key: str, amount: int = 1, *, ttl: float | None = None) -> int:
        at = self._written()
        current = _live(self._values, key, at)
        if current is None:
            value, expires = amount, (at + ttl if ttl is not None else None)
        else:
            value, expires = int(current) + amount, self._values[key][1]
        self._values[key] = (str(value).encode(), expires)
        return value

    # -- sets -----------------------------------------------------------------------------

    def _live_set(self, key: str) -> builtins.set[bytes] | None:
        return _live(self._sets, key, now())

    async def set_add(self, key: str, *members: bytes, ttl: float | None = None) -> int:
        at = self._written()
        current = _live(self._sets, key, at)
        expires = self._sets[key][1] if current is not None else None
        if current is None:
            current = builtins.set()
        before = len(current)
        current.update(bytes(m) for m in members)
        if ttl is not None:
            expires = at + ttl
        if current:
            self._sets[key] = (current, expires)
        return len(current) - before

    async def set_remove(self, key: str, *members: bytes) -> int:
        current = self._live_set(key)
        if current is None:
            return 0
        removed = sum(1 for m in members if m in current)
        current.difference_update(members)
        if not current:
            del self._sets[key]
        return removed

    async def set_members(self, key: str) -> frozenset[bytes]:
        return frozenset(self._live_set(key) or ())

    async def set_contains(self, key: str, member: bytes) -> bool:
        return member in (self._live_set(key) or ())

    # -- histories ------------------------------------------------------------------------

    def _live_history(self, key: str) -> list[HistoryItem] | None:
        return _live(self._histories, key, now())

    async def history_append(
        self, key: str, items: Iterable[HistoryItem], *, max_len: int, ttl: float | None = None
    ) -> None:
        at = self._written()
        current = _live(self._histories, key, at)
        expires = self._histories[key][1] if current is not None else None
        merged = [*(current or ()), *items][-max_len:] if max_len > 0 else []
        if ttl is not None:
            expires = at + ttl
        if merged:
            self._histories[key] = (merged, expires)
        else:
            self._histories.pop(key, None)

    async def history(self, key: str, *, since: float = 0.0) -> list[HistoryItem]:
        return self.history_now(key, since=since)

    def history_now(self, key: str, *, since: float = 0.0) -> list[HistoryItem]:
        """``history``, synchronously (``Store.answers_at_once``)."""
        return [item for item in self._live_history(key) or () if item.at >= since]

    # -- scored sets ----------------------------------------------------------------------

    async def scores_add(
        self,
        key: str,
        increments: Mapping[bytes, float],
        *,
        max_len: int,
        ttl: float | None = None,
    ) -> None:
        at = self._written()
        current = _live(self._scores, key, at)
        expires = self._scores[key][1] if current is not None else None
        if current is None:
            current = {}
        for member, amount in increments.items():
            member = bytes(member)
            current[member] = current.get(member, 0.0) + amount
        if len(current) > max_len:
            kept = _ranked(current)[: max(max_len, 0)]
            current = dict(kept)
        if ttl is not None:
            expires = at + ttl
        if current:
            self._scores[key] = (current, expires)
        else:
            self._scores.pop(key, None)

    async def scores_top(self, keys: Sequence[str], count: int) -> list[list[tuple[bytes, float]]]:
        at = now()
        return [_highest(_live(self._scores, key, at) or {}, count) for key in keys]

    # -- logs -----------------------------------------------------------------------------

    async def log_append(
        self, log: str, records: Sequence[LogRecord], *, dedup_ttl: float | None = None
    ) -> list[str | None]:
        state = self._logs.setdefault(log, _Log())
        at = now()
        if at >= state.next_prune:  # a periodic sweep keeps appends O(1)
            _drop_oldest(state.dedup, _expired_at_front(state.dedup, at))
            state.next_prune = at + 10.0
        results: list[str | None] = []
        for record in records:
            if record.id is not None and dedup_ttl is not None:
                expires = state.dedup.get(record.id)
                if expires is not None and expires > at:
                    results.append(None)
                    continue
                state.dedup[record.id] = at + dedup_ttl
            position = state.next_position
            state.next_position += 1
            state.entries.append((position, bytes(record.data), record.subject, at))
            state.positions.append(position)
            results.append(str(position))
        if len(state.entries) > self.max_log_entries or len(state.dedup) > self.max_log_entries:
            self._shed(log, state)
        return results

    def _shed(self, log: str, state: _Log) -> None:
        """Keep the newest nine tenths of ``max_log_entries`` (entries and dedup ids)."""
        keep = max(1, self.max_log_entries * 9 // 10)
        drop = max(0, len(state.entries) - keep)
        if drop:
            if not state.shed:
                _log.warning(
                    "memory store: log %r passed %d entries; the oldest are dropped from now on"
                    " (memory:// keeps nothing durable: use sqlite:// or redis:// to keep them)",
                    log,
                    self.max_log_entries,
                )
            del state.entries[:drop]
            del state.positions[:drop]
            state.shed += drop
        excess = len(state.dedup) - keep
        if excess > 0:
            _drop_oldest(state.dedup, excess)

    async def log_read(self, log: str, *, after: str = "0", count: int = 100) -> list[LogEntry]:
        state = self._logs.get(log)
        if state is None:
            return []
        start = bisect.bisect_right(state.positions, _position(after))
        return [
            LogEntry(str(e[_POSITION]), e[_DATA], e[_SUBJECT])
            for e in state.entries[start : start + count]
        ]

    async def log_length(self, log: str) -> int:
        state = self._logs.get(log)
        return len(state.entries) if state else 0

    async def log_group_read(
        self, log: str, group: str, consumer: str, *, count: int = 100, pending: bool = False
    ) -> list[LogEntry]:
        state = self._logs.setdefault(log, _Log())
        grp = self._groups.setdefault((log, group), _Group())
        if pending:
            mine = sorted(p for p, c in grp.pending.items() if c == consumer)
            by_position = {e[_POSITION]: e for e in state.entries}
            return [
                LogEntry(str(p), by_position[p][_DATA], by_position[p][_SUBJECT])
                for p in mine[:count]
                if p in by_position
            ]
        entries = await self.log_read(log, after=str(grp.last_delivered), count=count)
        for entry in entries:
            grp.pending[int(entry.position)] = consumer
        if entries:
            grp.last_delivered = int(entries[-1].position)
        return entries

    async def log_ack(self, log: str, group: str, positions: Sequence[str]) -> int:
        grp = self._groups.get((log, group))
        if grp is None:
            return 0
        return sum(grp.pending.pop(_position(p), None) is not None for p in positions)

    async def log_trim(self, log: str, *, before: float) -> int:
        state = self._logs.get(log)
        if state is None:
            return 0
        kept = [e for e in state.entries if e[_AT] >= before]
        dropped = len(state.entries) - len(kept)
        state.entries = kept
        state.rebuild_index()
        return dropped

    async def log_erase(self, log: str, subject: str) -> int:
        state = self._logs.get(log)
        if state is None:
            return 0
        kept = [e for e in state.entries if e[_SUBJECT] != subject]
        erased = len(state.entries) - len(kept)
        state.entries = kept
        state.rebuild_index()
        return erased

    async def erase_subject(self, subject: str) -> int:
        prefix = subject_prefix(subject)
        tables = (self._values, self._sets, self._histories, self._scores)
        keys = {k for table in tables for k in table}
        return await self.delete(*(k for k in keys if k.startswith(prefix)))
