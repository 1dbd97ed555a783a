"""The decision log writer the proxy uses on its hot path: record now, append in batches.

Serving must never wait for the store, so :meth:`DecisionLog.record` only queues the record
(no I/O, no await). A background task appends queued records to the decisions log in batches
through the store's group commit. While the store is unreachable the queue holds up to
``max_pending`` records and retries; beyond that new records are dropped and counted
(``dropped``): decisions keep serving, their log entries are what is lost, and the counter says
how many. Records carry the decision id, so a retried batch is stored once.

Erasure sticks (slotwise.proxy.events.erasure): an erasure takes the records about the user
out of this queue and counts them (:meth:`DecisionLog.forget`, between two batches); before a
batch is appended the tombstones of its subjects are read and records about an erased user are
dropped (counted in ``erased``), and after it lands they are read again and any record about a
user erased meanwhile (by another process) is erased from the log. Both reads are one round
trip per batch, off the request path.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from types import TracebackType

from slotwise.proxy.events.erasure import Erasure
from slotwise.proxy.events.tasks import stop_task
from slotwise.proxy.state import LogRecord, Store, StoreUnavailable

_log = logging.getLogger(__name__)


class DecisionLog:
    """Create in the app lifespan: ``async with DecisionLog(store) as decisions: ...``."""

    def __init__(
        self,
        store: Store,
        *,
        log: str = "decisions",
        max_pending: int = 100_000,
        batch: int = 500,
        dedup_window: float = 86_400.0,
        retry_delay: float = 0.5,
        erasure: Erasure | None = None,
    ) -> None:
        self._store = store
        self._log = log
        self._max_pending = max_pending
        self._batch = batch
        self._dedup_window = dedup_window
        self._retry_delay = retry_delay
        self._erasure = erasure or Erasure(store, events_log="events", decisions_log=log)
        self._erasure.hold(self.forget)
        self._pending: deque[LogRecord] = deque()
        # subjects of batches whose append failed: it may still land (a write that timed out),
        # so the tombstones are read for them again after the next append that succeeds
        self._recheck: set[str] = set()
        self._wake = asyncio.Event()
        # one batch in flight at a time, and none while an erasure takes records out (off the
        # request path: record() never waits for it)
        self._flushing = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self.dropped = 0
        self.appended = 0
        self.erased = 0  # records about an erased user, dropped from the queue

    def record(self, data: bytes, *, decision_id: str, subject: str | None) -> bool:
        """Queue one decision record; False (and ``dropped`` + 1) when the queue is full."""
        if len(self._pending) >= self._max_pending:
            self.dropped += 1
            return False
        self._pending.append(LogRecord(data, subject=subject, id=decision_id))
        self._wake.set()
        return True

    @property
    def pending(self) -> int:
        return len(self._pending)

    async def __aenter__(self) -> DecisionLog:
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._task is not None:
            await stop_task(self._task)
        with contextlib.suppress(StoreUnavailable):
            await self.flush()

    async def flush(self) -> None:
        """Append everything queued now, a batch in flight included: once it returns, every
        record queued before the call is in the log. Raises StoreUnavailable (records stay
        queued)."""
        while True:
            # the lock first: the background task may hold a batch it took off the queue
            async with self._flushing:
                if not (self._pending or self._recheck):
                    return
                await self._append_batch()

    async def _append_batch(self) -> None:
        count = min(self._batch, len(self._pending))
        batch = [self._pending.popleft() for _ in range(count)]
        subjects = {record.subject for record in batch if record.subject is not None}
        erased: frozenset[str] = frozenset()
        try:
            if subjects:  # anonymous records (no consent, no id) have no tombstone to read
                erased = await self._erasure.erased(subjects)
            kept = [record for record in batch if record.subject not in erased]
            if kept:
                await self._store.log_append(self._log, kept, dedup_ttl=self._dedup_window)
        except BaseException:
            self._pending.extendleft(reversed(batch))  # retried, in order
            if len(self._recheck) < self._max_pending:
                self._recheck.update(subjects)
            raise
        self.erased += len(batch) - len(kept)
        self.appended += len(kept)
        subjects.difference_update(erased)
        if subjects or self._recheck:
            try:  # the tombstones again, now that the batch landed
                await self._erasure.settle(subjects | self._recheck)
            except BaseException:
                self._recheck.update(subjects)
                raise
            self._recheck.clear()

    async def forget(self, subjects: frozenset[str]) -> int:
        """Drop queued records about ``subjects`` (an erasure); how many. Waits for a batch in
        flight, which the erasure's deletes that follow then find in the log."""
        async with self._flushing:
            kept = deque(record for record in self._pending if record.subject not in subjects)
            removed = len(self._pending) - len(kept)
            self._pending = kept
        self.erased += removed
        return removed

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                await self.flush()
            except StoreUnavailable as exc:
                _log.warning("decision log append failed, retrying: %s", exc)
                await asyncio.sleep(self._retry_delay)
                self._wake.set()
