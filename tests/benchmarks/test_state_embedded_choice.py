"""Why the embedded store is SQLite: its durable append throughput against the simplest
alternative, a bare append-only file with the same group commit (write + one fsync per burst,
no index, no dedup, no TTL: an upper bound for what a bespoke file format could reach).

    .venv/bin/pytest -m benchmark tests/benchmarks/test_state_embedded_choice.py -s
"""

from __future__ import annotations

import asyncio
import os
import queue
import statistics
import struct
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from slotwise.proxy.state import LogRecord, open_store

pytestmark = pytest.mark.benchmark

WRITERS = 8
BATCH = 100
SECONDS = 3.0
ROUNDS = 3
RECORD = b'{"received":1.0,"consent":"personal","event":{"type":"page_view","id":"x"}}' * 2


class _AppendOnlyFile:
    """Length-prefixed records, one writer thread, one fsync per burst of queued appends."""

    def __init__(self, path: Path) -> None:
        self._file = open(path, "ab")  # closed in close()
        self._queue: queue.SimpleQueue[
            tuple[list[bytes], asyncio.Future[None], asyncio.AbstractEventLoop] | None
        ] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            burst = [first]
            while True:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    self._queue.put(None)
                    break
                burst.append(item)
            for records, _, _ in burst:
                self._file.write(b"".join(struct.pack(">I", len(r)) + r for r in records))
            self._file.flush()
            os.fsync(self._file.fileno())
            for _, future, loop in burst:
                loop.call_soon_threadsafe(future.set_result, None)

    async def append(self, records: list[bytes]) -> None:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        self._queue.put((records, future, loop))
        await future

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join()
        self._file.close()


async def _rate(append: Callable[[int], Awaitable[object]]) -> float:
    deadline = time.monotonic() + SECONDS
    done = 0

    async def writer(index: int) -> None:
        nonlocal done
        n = 0
        while time.monotonic() < deadline:
            await append(index * 10_000_000 + n)
            n += 1
            done += BATCH

    started = time.monotonic()
    await asyncio.gather(*(writer(i) for i in range(WRITERS)))
    return done / (time.monotonic() - started)


async def test_sqlite_against_an_append_only_file(tmp_path: Path) -> None:
    rates: dict[str, list[float]] = {}
    for round_ in range(ROUNDS):
        aof = _AppendOnlyFile(tmp_path / f"events{round_}.log")
        rates.setdefault("append-only file + fsync (no index/dedup)", []).append(
            await _rate(lambda n, aof=aof: aof.append([RECORD] * BATCH))
        )
        aof.close()
        for sync in ("full", "normal"):
            url = f"sqlite://{tmp_path}/state-{sync}-{round_}.db?synchronous={sync}"
            async with open_store(url) as store:

                async def append(n: int) -> object:
                    records = [LogRecord(RECORD, subject="u1", id=f"{n}-{i}") for i in range(BATCH)]
                    return await store.log_append("events", records, dedup_ttl=86_400)

                rates.setdefault(f"sqlite synchronous={sync} (dedup + index)", []).append(
                    await _rate(append)
                )
    baseline = statistics.median(rates["append-only file + fsync (no index/dedup)"])
    print()
    for name, values in rates.items():
        median = statistics.median(values)
        print(f"{name:44s} {median:9.0f} records/s  ({median / baseline:.2f}x the file)")
