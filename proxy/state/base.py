"""The Store contract every backend implements, and the small value types it speaks in.

Keys are strings; values are bytes. Per-user keys are built with :func:`subject_key` so that
erasure (:meth:`Store.erase_subject`) finds all of them and, on Redis Cluster, they share one
hash slot. Times are seconds since the epoch; TTLs are seconds (``None`` = keep forever).
"""

from __future__ import annotations

import abc
import asyncio
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType

import msgspec

from slotwise.errors import STORE, SlotwiseError
from slotwise.plugins.profile_source import Event

# Characters that would change the meaning of a key on some backend: Redis hash tags ({}),
# glob patterns used by SCAN MATCH and SQL LIKE (*?[]\%_), and our own separator (:).
_KEY_ESCAPES = {c: f"%{ord(c):02X}" for c in "%{}*?[]\\:_"}
# str.translate's table: the escaping at C speed. Every ASCII character has an entry (most
# map to themselves): a character a table lacks costs a LookupError raised and caught in
# translate, once per distinct character and call (str.maketrans' dict lacks all but these)
_KEY_TABLE = tuple(_KEY_ESCAPES.get(chr(code), chr(code)) for code in range(128))


class StoreError(SlotwiseError):
    """A store failure; ``code`` is stable and safe to show to operators."""

    area = STORE
    code = "store_error"


class StoreUnavailable(StoreError):
    """The store did not answer in time or cannot be reached: callers answer 503, retry later."""

    code = "store_unavailable"


class StoreWriteUncertain(StoreUnavailable):
    """A write was not confirmed in time but was handed to the backend: it may still complete.

    Callers must not report it as "not stored". Resending a log append is safe (record ids
    deduplicate); resending an ``incr`` is not.
    """


class StoreConfigError(StoreError):
    """The store URL or its options are wrong (unknown scheme, bad option): fix the config."""

    code = "store_config"


class LogRecord(msgspec.Struct, frozen=True):
    """One record to append to a log.

    ``subject`` is the user id the record is about (``None`` for anonymous or unconsented
    records); :meth:`Store.log_erase` removes every record of a subject. ``id`` deduplicates:
    a record whose id was appended to the same log within ``dedup_ttl`` is not stored again.

    A frozen Struct, not a frozen dataclass: one is built per decision on the request path, and
    the dataclass's generated ``__init__`` cost ~5,000 instructions there; the Struct's is C.
    """

    data: bytes
    subject: str | None = None
    id: str | None = None


@dataclass(frozen=True, slots=True)
class LogEntry:
    """A record as read back: its opaque, increasing ``position`` within the log."""

    position: str
    data: bytes
    subject: str | None


# One behavioural event in a user's bounded history (event, at, data): the profile
# provider's Event itself, so that reading a history for a request copies no item
HistoryItem = Event


def subject_key(subject: str, name: str) -> str:
    """The key of per-user state ``name`` for user ``subject`` (erased with the user)."""
    return f"user:{{{subject.translate(_KEY_TABLE)}}}:{name}"


def subject_prefix(subject: str) -> str:
    """The prefix every :func:`subject_key` of ``subject`` starts with."""
    return subject_key(subject, "")


def escape_key_part(part: str) -> str:
    """``part`` made safe to embed in a key (used for log names and dedup ids)."""
    return part.translate(_KEY_TABLE)


class Store(abc.ABC):
    """The async state store. Every method may raise :class:`StoreUnavailable`.

    Use as ``async with open_store(url) as store:`` or call :meth:`start` / :meth:`close`.
    Reads on the request path are bounded by the backend's short timeout (tens of ms, at most
    one retry); log appends wait for durability (see each backend).
    """

    #: The URL scheme this backend serves (``memory``, ``sqlite``, ``redis``, ``redis+cluster``).
    scheme: str = ""
    #: True when a completed write survives the process being killed (``kill -9``).
    durable: bool = False
    #: True when reads complete without waiting for anything (``memory://``): a caller on the
    #: request path may run them in its own task rather than start one per read. Such a store
    #: may also offer ``get_many_now`` and ``history_now``: ``get_many`` and ``history``
    #: without a coroutine (the profile provider's reads then run without one).
    answers_at_once: bool = False

    async def __aenter__(self) -> Store:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @abc.abstractmethod
    async def start(self) -> None:
        """Open connections/files; raises StoreUnavailable or StoreConfigError."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Flush pending writes and release everything. Idempotent."""

    @abc.abstractmethod
    async def ping(self) -> None:
        """Return when the store answers; raise StoreUnavailable otherwise."""

    def patient(self) -> Store:
        """This store with its reads bounded like its writes, not by the request path's short
        read timeout: for work off the request path that must not fail for a slow moment
        (erasure and its checks, admin reads). Shares the connections; already started.
        Backends whose reads have no shorter bound than their writes return themselves."""
        return self

    # -- values with TTL ------------------------------------------------------------------

    @abc.abstractmethod
    async def get(self, key: str) -> bytes | None:
        """The value of ``key``, or None when missing or expired."""

    @abc.abstractmethod
    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        """The values of ``keys`` in order (None where missing)."""

    @abc.abstractmethod
    async def set(self, key: str, value: bytes, *, ttl: float | None = None) -> None:
        """Set ``key`` to ``value``; it expires after ``ttl`` seconds when given."""

    async def set_many(
        self, values: Sequence[tuple[str, bytes]], *, ttl: float | None = None
    ) -> None:
        """:meth:`set` of each (key, value); one round trip where the backend allows."""
        for key, value in values:
            await self.set(key, value, ttl=ttl)

    @abc.abstractmethod
    async def set_if_absent(self, key: str, value: bytes, *, ttl: float | None = None) -> bool:
        """Set ``key`` only if it is missing or expired; True when it was set."""

    @abc.abstractmethod
    async def delete(self, *keys: str) -> int:
        """Delete keys of any kind (value, counter, set, history); how many existed."""

    # -- counters -------------------------------------------------------------------------

    @abc.abstractmethod
    async def incr(self, key: str, amount: int = 1, *, ttl: float | None = None) -> int:
        """Add ``amount`` to the counter (missing = 0) and return the new value.

        ``ttl`` is applied when the counter is created (a fixed window), not on every bump.
        """

    async def counter(self, key: str) -> int:
        """The counter's value (0 when missing)."""
        raw = await self.get(key)
        return int(raw) if raw is not None else 0

    # -- sets -----------------------------------------------------------------------------

    @abc.abstractmethod
    async def set_add(self, key: str, *members: bytes, ttl: float | None = None) -> int:
        """Add members; how many were new. ``ttl`` (re)sets the whole set's expiry."""

    @abc.abstractmethod
    async def set_remove(self, key: str, *members: bytes) -> int:
        """Remove members; how many were present."""

    @abc.abstractmethod
    async def set_members(self, key: str) -> frozenset[bytes]:
        """All members (empty when missing or expired)."""

    @abc.abstractmethod
    async def set_contains(self, key: str, member: bytes) -> bool:
        """Whether ``member`` is in the set."""

    # -- bounded histories ----------------------------------------------------------------

    @abc.abstractmethod
    async def history_append(
        self, key: str, items: Iterable[HistoryItem], *, max_len: int, ttl: float | None = None
    ) -> None:
        """Append items, keep only the newest ``max_len``; ``ttl`` renews the whole history."""

    @abc.abstractmethod
    async def history(self, key: str, *, since: float = 0.0) -> list[HistoryItem]:
        """Items with ``at >= since``, oldest first (in append order)."""

    async def history_append_many(
        self,
        appends: Sequence[tuple[str, Sequence[HistoryItem]]],
        *,
        max_len: int,
        ttl: float | None = None,
    ) -> None:
        """:meth:`history_append` for several keys, in one round trip where the backend allows
        (one batch of events touches many users' histories)."""
        for key, items in appends:
            await self.history_append(key, items, max_len=max_len, ttl=ttl)

    async def histories(
        self, keys: Sequence[str], *, since: float = 0.0
    ) -> list[list[HistoryItem]]:
        """:meth:`history` of each key, in order; one round trip where the backend allows."""
        return [await self.history(key, since=since) for key in keys]

    async def histories_and_values(
        self, history_keys: Sequence[str], keys: Sequence[str], *, since: float = 0.0
    ) -> tuple[list[list[HistoryItem]], list[bytes | None]]:
        """:meth:`histories` and :meth:`get_many` together (the trigger engine reads both for
        its users): concurrently here, in one read where the backend can."""
        reading = asyncio.ensure_future(self.histories(history_keys, since=since))
        try:
            values = await self.get_many(keys)
        except BaseException:
            reading.cancel()
            raise
        return await reading, values

    # -- scored sets (bounded leaderboards) -----------------------------------------------

    @abc.abstractmethod
    async def scores_add(
        self,
        key: str,
        increments: Mapping[bytes, float],
        *,
        max_len: int,
        ttl: float | None = None,
    ) -> None:
        """Add each increment to its member's score (a missing member starts at 0), then keep
        only the ``max_len`` highest members; ``ttl`` renews the whole set's expiry.

        Atomic per call: concurrent adds from several processes are never lost (except what
        the bound drops). Ties at the bound are broken by member, the greater kept.
        """

    @abc.abstractmethod
    async def scores_top(self, keys: Sequence[str], count: int) -> list[list[tuple[bytes, float]]]:
        """For each key, its ``count`` highest (member, score), highest first (ties: the
        greater member first); one round trip for all the keys where the backend allows."""

    # -- append-only logs -----------------------------------------------------------------

    @abc.abstractmethod
    async def log_append(
        self, log: str, records: Sequence[LogRecord], *, dedup_ttl: float | None = None
    ) -> list[str | None]:
        """Durably append records in order; one atomic step for the whole sequence.

        Returns each record's position, or None for a record whose ``id`` was already
        appended to this log within ``dedup_ttl`` seconds (it is not stored again; repeated
        ids inside ``records`` are stored once). When this returns, the records survive a
        crash of this process (and, on Redis with ``appendfsync always``, of the server).
        """

    async def log_append_with_history(
        self,
        log: str,
        records: Sequence[LogRecord],
        history: Sequence[tuple[str, HistoryItem] | None],
        *,
        dedup_ttl: float | None = None,
        max_len: int,
        ttl: float | None = None,
    ) -> list[str | None]:
        """:meth:`log_append`, then for each record stored (not a duplicate) its ``history``
        entry (history key, item; None: none) appended as :meth:`history_append_many` does.

        One atomic step where the backend allows (SQLite: one transaction; Redis: one script),
        so an event is in its user's history exactly when it is in the log: one commit where
        there were two. Elsewhere (Redis Cluster: the keys live on different slots) the two
        calls in that order.
        """
        if len(history) != len(records):
            raise ValueError("one history entry (or None) per record")
        positions = await self.log_append(log, records, dedup_ttl=dedup_ttl)
        appends = _history_appends(history, positions)
        if appends:
            await self.history_append_many(appends, max_len=max_len, ttl=ttl)
        return positions

    async def log_append_and_set(
        self,
        log: str,
        records: Sequence[LogRecord],
        *,
        dedup_ttl: float | None = None,
        values: Sequence[tuple[str, bytes]] = (),
        ttl: float | None = None,
        members: Sequence[tuple[str, Sequence[bytes]]] = (),
    ) -> list[str | None]:
        """:meth:`log_append`, then :meth:`set_many` of ``values`` (expiring after ``ttl``),
        then :meth:`set_add` of each (set key, members); the log's positions.

        In that order, so a value written never names a record that was not appended; one
        atomic step where the backend allows (SQLite: one transaction; Redis: one script),
        else the calls in that order. Nothing after a failed append is written.
        """
        positions = await self.log_append(log, records, dedup_ttl=dedup_ttl) if records else []
        if values:
            await self.set_many(values, ttl=ttl)
        for key, added in members:
            if added:
                await self.set_add(key, *added)
        return positions

    @abc.abstractmethod
    async def log_read(self, log: str, *, after: str = "0", count: int = 100) -> list[LogEntry]:
        """Up to ``count`` entries with a position after ``after`` ("0" = from the start)."""

    @abc.abstractmethod
    async def log_length(self, log: str) -> int:
        """How many entries the log holds now."""

    @abc.abstractmethod
    async def log_group_read(
        self, log: str, group: str, consumer: str, *, count: int = 100, pending: bool = False
    ) -> list[LogEntry]:
        """Read as ``consumer`` of consumer group ``group`` (created at the log's start).

        ``pending=False`` delivers entries no consumer of the group has received yet and marks
        them pending for ``consumer``; ``pending=True`` re-reads this consumer's entries that
        were delivered but not acknowledged (after a restart). Acknowledge with
        :meth:`log_ack`.
        """

    @abc.abstractmethod
    async def log_ack(self, log: str, group: str, positions: Sequence[str]) -> int:
        """Acknowledge delivered entries; how many were pending."""

    @abc.abstractmethod
    async def log_trim(self, log: str, *, before: float) -> int:
        """Retention: drop entries appended before time ``before``; how many were dropped."""

    @abc.abstractmethod
    async def log_erase(self, log: str, subject: str) -> int:
        """Erasure: delete every entry whose subject is ``subject``; how many were deleted."""

    async def log_archive(self, log: str) -> int:
        """Move the log's old, acknowledged entries out of memory to the backend's archive;
        how many moved. Only Redis has one (its ``archive=`` option): elsewhere nothing to do.
        The log reads the same before and after."""
        return 0

    # -- erasure --------------------------------------------------------------------------

    @abc.abstractmethod
    async def erase_subject(self, subject: str) -> int:
        """Delete every key built with ``subject_key(subject, ...)``; how many existed."""


def _history_appends(
    history: Sequence[tuple[str, HistoryItem] | None], positions: Sequence[str | None]
) -> list[tuple[str, list[HistoryItem]]]:
    """The (key, items) appends of the stored records' history entries, in record order."""
    appends: dict[str, list[HistoryItem]] = {}
    for entry, position in zip(history, positions, strict=True):
        if entry is not None and position is not None:
            appends.setdefault(entry[0], []).append(entry[1])
    return list(appends.items())


# Wall-clock seconds; one name so TTL arithmetic reads the same clock everywhere. The C
# function itself, not a wrapper: memory:// reads it per request, and a Python frame costs more
# than the clock.
now = time.time
