"""Group commit for SQLite: one writer thread, one transaction per burst of operations.

Callers on the event loop hand the writer a function of the connection and await its result.
The writer takes everything queued, runs each operation inside a savepoint (so one failing
operation does not undo the others), commits once and only then resolves the callers' futures.
While one commit is being synced to disk the next burst queues up, so the number of fsyncs per
second stays small however many requests wait: that is what keeps durable throughput high.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from slotwise.proxy.state.base import StoreError, StoreUnavailable

T = TypeVar("T")

_MAX_BURST = 2000  # operations per transaction; bounds how long one commit holds the lock


@dataclass(slots=True)
class _Op:
    run: Callable[[sqlite3.Connection], Any]
    future: asyncio.Future[Any]
    loop: asyncio.AbstractEventLoop


def _broken(exc: sqlite3.Error) -> bool:
    """Whether an error may have left the connection unusable (reopen it)."""
    name = getattr(exc, "sqlite_errorname", "") or ""
    return name.startswith(("SQLITE_IOERR", "SQLITE_CANTOPEN", "SQLITE_CORRUPT", "SQLITE_NOTADB"))


def _fail_all(burst: list[_Op], error: BaseException) -> None:
    for op in burst:
        try:
            op.loop.call_soon_threadsafe(_resolve, op.future, False, error)
        except RuntimeError:
            pass


def _resolve(future: asyncio.Future[Any], ok: bool, value: Any) -> None:
    if future.done():  # cancelled, or already failed by _fail_all
        return
    if ok:
        future.set_result(value)
    else:
        future.set_exception(value)


class GroupCommitWriter:
    """The only thread that writes to the database file."""

    def __init__(
        self,
        connect: Callable[[], sqlite3.Connection],
        *,
        idle: Callable[[sqlite3.Connection], None] | None = None,
        idle_interval: float = 30.0,
    ) -> None:
        self._connect = connect
        self._idle = idle
        self._idle_interval = idle_interval
        self._queue: queue.SimpleQueue[_Op | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self.commits = 0  # observable for tests and benchmarks: fsyncs are about this many

    def start(self) -> None:
        self._thread = threading.Thread(target=self._main, name="slotwise-sqlite-writer")
        self._thread.daemon = True
        self._thread.start()
        self._ready.wait()
        if isinstance(self._error, StoreError):  # already says what and where
            raise self._error
        if self._error is not None:
            raise StoreUnavailable(f"cannot open the state database: {self._error}")

    def stop(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()
        self._thread = None

    def submit(self, run: Callable[[sqlite3.Connection], T]) -> asyncio.Future[T]:
        """Queue ``run``; the future resolves after the transaction holding it commits."""
        if self._thread is None or not self._thread.is_alive():
            raise StoreUnavailable("the state store is closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._queue.put(_Op(run, future, loop))
        return future

    def _main(self) -> None:
        try:
            conn: sqlite3.Connection | None = self._connect()
        except BaseException as exc:  # reported to start() and raised there
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        last_idle = time.monotonic()
        try:
            while True:
                try:
                    first = self._queue.get(timeout=self._idle_interval)
                except queue.Empty:
                    if conn is not None:
                        last_idle = self._run_idle(conn)
                    continue
                if first is None:
                    return
                burst, stop = self._drain(first)
                conn = self._commit_or_reopen(conn, burst)
                if stop:
                    return
                if conn is not None and time.monotonic() - last_idle > self._idle_interval:
                    last_idle = self._run_idle(conn)
        finally:
            if conn is not None:
                conn.close()

    def _commit_or_reopen(
        self, conn: sqlite3.Connection | None, burst: list[_Op]
    ) -> sqlite3.Connection | None:
        """Commit ``burst``; the connection to use next (None: broken, reopened next time).

        An I/O error (a full disk, a file made unwritable, a failing device) can leave the
        connection unusable: it is closed and the next burst opens a fresh one, so the writer
        thread recovers when the file does, and never dies with callers waiting on it.
        """
        if conn is None:
            try:
                conn = self._connect()
            except BaseException as exc:
                _fail_all(burst, StoreUnavailable(f"cannot reopen the state database: {exc}"))
                return None
        try:
            healthy = self._commit(conn, burst)
        except BaseException as exc:  # never leave a caller waiting for ever
            _fail_all(burst, StoreUnavailable(f"the state database writer failed: {exc}"))
            healthy = False
        if healthy:
            return conn
        with contextlib.suppress(sqlite3.Error):
            conn.close()
        return None

    def _drain(self, first: _Op) -> tuple[list[_Op], bool]:
        burst = [first]
        while len(burst) < _MAX_BURST:
            try:
                op = self._queue.get_nowait()
            except queue.Empty:
                break
            if op is None:
                return burst, True
            burst.append(op)
        return burst, False

    def _commit(self, conn: sqlite3.Connection, burst: list[_Op]) -> bool:
        """Run and commit ``burst``, resolve its futures; False when the connection broke."""
        results: list[tuple[bool, Any]] = []
        healthy = True
        try:
            conn.execute("BEGIN IMMEDIATE")
            for op in burst:
                conn.execute("SAVEPOINT op")
                try:
                    value = op.run(conn)
                except Exception as exc:
                    conn.execute("ROLLBACK TO op")
                    results.append((False, exc))
                else:
                    results.append((True, value))
                conn.execute("RELEASE op")
            conn.execute("COMMIT")
            self.commits += 1
        except sqlite3.Error as exc:
            healthy = not _broken(exc)
            try:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
            except sqlite3.Error:
                healthy = False
            failure = StoreUnavailable(f"the state database refused a write: {exc}")
            results = [(False, failure)] * len(burst)
        for op, (ok, value) in zip(burst, results, strict=True):
            try:
                op.loop.call_soon_threadsafe(_resolve, op.future, ok, value)
            except RuntimeError:  # the caller's event loop is closed: nobody waits any more
                pass
        return healthy

    def _run_idle(self, conn: sqlite3.Connection) -> float:
        if self._idle is not None:
            try:
                conn.execute("BEGIN IMMEDIATE")
                self._idle(conn)
                conn.execute("COMMIT")
            except sqlite3.Error:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
        return time.monotonic()
