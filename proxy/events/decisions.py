"""The decision log writer the proxy uses on its hot path: record now, append in batches.

Serving must never wait for the store, so :meth:`DecisionLog.record` only queues the record
(no I/O, no await). A background task appends queued records to the decisions log in batches
through the store's group commit. While the store is unreachable the queue holds up to
``max_pending`` records and retries; beyond that new records are dropped and counted
(``dropped``): decisions keep serving, their log entries are what is lost, and the counter says
how many. Records carry the decision id, so a retried batch is stored once.

Erasure covers records still queued: before a batch is appended, the erasure markers of its
subjects are read (one round trip per batch, off the request path) and a record about an
erased user is stored without its subject, so no record carries an erased id.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from types import TracebackType

from slotwise.proxy.events.collector import erased_key
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
    ) -> None:
        self._store = store
        self._log = log
        self._max_pending = max_pending
        self._batch = batch
        self._dedup_window = dedup_window
        self._retry_delay = retry_delay
        self._pending: deque[LogRecord] = deque()
        self._wake = asyncio.Event()
        # one flush at a time: two would append the same batch and pop it twice (off the
        # request path: record() never waits for it)
        self._flushing = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self.dropped = 0
        self.appended = 0

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
        """Append everything queued now; raises StoreUnavailable (records stay queued)."""
        async with self._flushing:
            await self._flush()

    async def _flush(self) -> None:
        while self._pending:
            batch = [self._pending[i] for i in range(min(self._batch, len(self._pending)))]
            batch = await self._without_erased(batch)
            await self._store.log_append(self._log, batch, dedup_ttl=self._dedup_window)
            for _ in batch:
                self._pending.popleft()
            self.appended += len(batch)

    async def _without_erased(self, batch: list[LogRecord]) -> list[LogRecord]:
        """The batch, records about an erased user stripped of their subject."""
        subjects = list({record.subject for record in batch if record.subject is not None})
        if not subjects:
            return batch
        markers = await self._store.get_many([erased_key(subject) for subject in subjects])
        erased = {s for s, marker in zip(subjects, markers, strict=True) if marker is not None}
        if not erased:
            return batch
        return [
            LogRecord(record.data, subject=None, id=record.id)
            if record.subject in erased
            else record
            for record in batch
        ]

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
