"""A store that cannot answer raises StoreUnavailable quickly; SQLite keeps what it acked."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from slotwise.proxy.state import LogRecord, StoreConfigError, StoreUnavailable, open_store
from slotwise.proxy.state.sqlite import SQLiteStore
from tests.support.servers import free_port


async def test_unreachable_redis_fails_fast() -> None:
    store = open_store(f"redis://127.0.0.1:{free_port()}/0?timeout=0.05")
    started = time.monotonic()
    with pytest.raises(StoreUnavailable, match="cannot reach redis"):
        await store.start()
    assert time.monotonic() - started < 2.0


async def test_redis_that_goes_away_raises_store_unavailable(tmp_path: Path) -> None:
    from tests.support.servers import redis_server

    with redis_server(tmp_path) as server:
        store = open_store(server.url)
        await store.start()
        await store.set("k", b"v")
        server.stop()
        started = time.monotonic()
        with pytest.raises(StoreUnavailable):
            await store.get("k")
        with pytest.raises(StoreUnavailable):
            await store.log_append("events", [LogRecord(b"x")])
        assert time.monotonic() - started < 3.0
        await store.close()


async def test_sqlite_path_through_a_file_is_refused(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    store = open_store(f"sqlite://{blocker}/state.db")
    message = f"cannot open the state database {blocker}/state.db: a part of {blocker} is a file"
    with pytest.raises(StoreConfigError, match=message):
        await store.start()


async def test_sqlite_survives_reopen_and_group_commits(tmp_path: Path) -> None:
    url = f"sqlite://{tmp_path}/state.db"
    store = open_store(url)
    assert isinstance(store, SQLiteStore)
    async with store:
        batches = [
            [LogRecord(f"{b}-{i}".encode(), id=f"{b}-{i}") for i in range(5)] for b in range(200)
        ]
        await asyncio.gather(*(store.log_append("events", b, dedup_ttl=60) for b in batches))
        # many appends share a commit: far fewer fsyncs than appends
        assert store.commits < 200
    async with open_store(url) as reopened:
        assert await reopened.log_length("events") == 1000
        again = await reopened.log_append("events", [LogRecord(b"dup", id="0-0")], dedup_ttl=60)
        assert again == [None]


async def test_closed_store_is_unavailable(tmp_path: Path) -> None:
    store = open_store(f"sqlite://{tmp_path}/state.db")
    with pytest.raises(StoreUnavailable):
        await store.get("k")


async def test_a_stalled_redis_costs_the_request_path_tens_of_ms(tmp_path: Path) -> None:
    import os
    import signal

    from tests.support.servers import redis_server

    with redis_server(tmp_path) as server:
        async with open_store(server.url + "?timeout=0.03") as store:
            await store.set("k", b"v")
            os.kill(server.process.pid, signal.SIGSTOP)  # alive but answering nothing
            try:
                took: list[float] = []
                for _ in range(3):  # every read gives up while the stall goes on
                    started = time.monotonic()
                    with pytest.raises(StoreUnavailable):
                        await store.get("k")
                    took.append(time.monotonic() - started)
                # one try and at most one retry, 30 ms each: never held for the stall (nor for
                # the 2 s write pool), and the quickest in tens of ms (the best of three, so
                # that a loaded machine stalling one of them for a few hundred ms is no failure)
                assert max(took) < 1.0 and min(took) < 0.25, took
            finally:
                os.kill(server.process.pid, signal.SIGCONT)
            # and it recovers by itself: the same store answers again (a first read after the
            # stall may still miss its 30 ms while redis catches up: retried, within 10 s)
            deadline = time.monotonic() + 10
            while True:
                try:
                    assert await store.get("k") == b"v"
                    break
                except StoreUnavailable:
                    assert time.monotonic() < deadline, "the store never answered again"
                    await asyncio.sleep(0.05)


async def test_redis_reports_whether_acknowledged_writes_are_durable(tmp_path: Path) -> None:
    from tests.support.servers import redis_server

    with redis_server(tmp_path / "aof", "--appendonly", "yes", "--appendfsync", "always") as aof:
        async with open_store(aof.url) as store:
            assert store.durable
    with redis_server(tmp_path / "plain") as plain:
        async with open_store(plain.url) as store:
            assert not store.durable
