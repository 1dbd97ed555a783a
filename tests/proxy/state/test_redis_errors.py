"""Redis start-up and write failures: named in terms of the URL, never partial, never lost."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest
import redis as redis_sync

from slotwise.proxy.loopback import free_port
from slotwise.proxy.state import (
    HistoryItem,
    LogRecord,
    StoreConfigError,
    StoreUnavailable,
    StoreWriteUncertain,
    open_store,
)
from tests.support.servers import RedisServer, redis_server

T = TypeVar("T")


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections and never answers (a hung server, a wrong service)."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)  # connections complete in the backlog; nobody reads them
        yield int(listener.getsockname()[1])


@pytest.fixture
def client(redis: RedisServer) -> Iterator[redis_sync.Redis]:
    with redis_sync.Redis(port=redis.port, db=0) as sync:
        sync.flushall()
        yield sync
        sync.flushall()


async def test_unreachable_cluster_is_unavailable() -> None:
    port = free_port()
    with pytest.raises(StoreUnavailable, match=f"cannot reach redis cluster at 127.0.0.1:{port}"):
        await open_store(f"redis+cluster://127.0.0.1:{port}?timeout=0.1").start()


async def test_cluster_url_at_a_plain_redis_is_unavailable_and_says_why(
    redis: RedisServer,
) -> None:
    store = open_store(f"redis+cluster://127.0.0.1:{redis.port}")
    with pytest.raises(StoreUnavailable, match="Cluster mode is not enabled.*write redis://"):
        await store.start()


@pytest.mark.parametrize("scheme", ["redis", "redis+cluster"])
async def test_a_silent_listener_is_unavailable(scheme: str, silent_port: int) -> None:
    store = open_store(f"{scheme}://127.0.0.1:{silent_port}?timeout=0.1&write_timeout=0.2")
    with pytest.raises(StoreUnavailable, match=f"cannot reach {scheme.replace('+', ' ')}"):
        await store.start()


async def test_a_wrong_type_log_key_stores_nothing_not_even_dedup_ids(
    redis: RedisServer, client: redis_sync.Redis
) -> None:
    client.set("log:{events}", "x")
    records = [LogRecord(b"a", id="e1"), LogRecord(b"b", id="e2")]
    async with open_store(redis.url) as store:
        with pytest.raises(StoreUnavailable, match="holds a string, not a stream"):
            await store.log_append("events", records, dedup_ttl=60)
        assert client.keys("*") == [b"log:{events}"]  # no dedup key was left behind
        client.delete("log:{events}")
        positions = await store.log_append("events", records, dedup_ttl=60)
        assert None not in positions  # the resend is stored, not taken for a duplicate
        assert await store.log_length("events") == 2


async def test_a_failed_combined_append_writes_nothing_after_it(
    redis: RedisServer, client: redis_sync.Redis
) -> None:
    """log_append_with_history / log_append_and_set: no history, value or member is written
    when the append fails (a value never names a record that was not appended)."""
    client.set("log:{outbox}", "x")
    records = [LogRecord(b"a", subject="u", id="e1")]
    async with open_store(redis.url) as store:
        with pytest.raises(StoreUnavailable, match="holds a string, not a stream"):
            await store.log_append_with_history(
                "outbox", records, [("h", HistoryItem("v", 1.0))], dedup_ttl=60, max_len=5
            )
        with pytest.raises(StoreUnavailable, match="holds a string, not a stream"):
            await store.log_append_and_set(
                "outbox", records, dedup_ttl=60, values=[("r", b"1")], members=[("s", [b"u"])]
            )
        assert client.keys("*") == [b"log:{outbox}"]


async def test_an_xadd_failing_midway_keeps_no_dedup_id_of_an_unstored_record(
    redis: RedisServer, client: redis_sync.Redis
) -> None:
    # a stream whose last id is the largest possible: its type is right, every XADD * fails
    client.xadd("log:{events}", {"d": "x"}, id="18446744073709551615-18446744073709551615")
    async with open_store(redis.url) as store:
        with pytest.raises(StoreUnavailable):
            await store.log_append("events", [LogRecord(b"a", id="e1")], dedup_ttl=60)
        # the id's dedup set lost the member again (an empty set is no key)
        assert client.keys("log:{events}:i:*") == []
        client.delete("log:{events}")
        assert None not in await store.log_append(
            "events", [LogRecord(b"a", id="e1")], dedup_ttl=60
        )


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A redis-server that requires the password "sekret"."""
    with redis_server(tmp_path_factory.mktemp("guarded"), "--requirepass", "sekret") as server:
        yield server


@pytest.mark.parametrize(
    ("userinfo", "given"),
    [("", "the URL gives no password"), (":wrong@", "invalid username-password pair")],
)
@pytest.mark.parametrize("scheme", ["redis", "redis+cluster"])
async def test_authentication_failure_is_a_configuration_error(
    guarded: RedisServer, scheme: str, userinfo: str, given: str
) -> None:
    store = open_store(f"{scheme}://{userinfo}127.0.0.1:{guarded.port}")
    with pytest.raises(StoreConfigError) as info:
        await store.start()
    message = str(info.value)
    assert "authentication failed: check the user and password in the URL" in message
    assert given in message and "wrong" not in message


async def test_database_out_of_range_is_a_configuration_error(guarded: RedisServer) -> None:
    store = open_store(f"redis://:sekret@127.0.0.1:{guarded.port}/99999")
    with pytest.raises(StoreConfigError, match=r"database 99999 is out of range \(the /N part"):
        await store.start()
    async with open_store(f"redis://:sekret@127.0.0.1:{guarded.port}/3") as store:
        await store.set("k", b"v")  # the right password and database work


async def test_bracketed_ipv6_reaches_the_server(tmp_path: Path) -> None:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback on this machine")
    with redis_server(tmp_path, "--bind", "127.0.0.1", "::1") as server:
        async with open_store(f"redis://[::1]:{server.port}/0") as store:
            await store.set("k", b"v")
            assert await store.get("k") == b"v"


async def _patiently(attempt: Callable[[], Awaitable[T]]) -> T:
    """``attempt()`` retried for up to 10 s: a loaded machine may stall one past 0.2 s."""
    deadline = asyncio.get_running_loop().time() + 10
    while True:
        try:
            return await attempt()
        except StoreUnavailable:
            assert asyncio.get_running_loop().time() < deadline, "redis never answered in time"
            await asyncio.sleep(0.05)


async def test_a_timed_out_write_says_it_may_still_complete(tmp_path: Path) -> None:
    with redis_server(tmp_path) as server:
        # steady: the default write_timeout (2 s) for the warm-up, the checks and the resend
        async with open_store(server.url) as steady:
            await steady.log_append("warm-up", [LogRecord(b"w")])  # the script is on the server
            store = open_store(server.url + "?write_timeout=0.2")
            await _patiently(store.start)
            try:
                # its pooled connection answers before the server stops: the append is sent
                await _patiently(lambda: store.log_length("warm-up"))
                os.kill(server.process.pid, signal.SIGSTOP)  # it will run the write when resumed
                try:
                    with pytest.raises(StoreWriteUncertain, match="may still complete") as info:
                        await store.log_append("events", [LogRecord(b"x", id="e1")], dedup_ttl=60)
                    assert "record ids deduplicate" in str(info.value)
                finally:
                    os.kill(server.process.pid, signal.SIGCONT)
                # the abandoned write completes once the server runs again (in its own time)...
                deadline = asyncio.get_running_loop().time() + 10
                while not await steady.log_length("events"):
                    assert asyncio.get_running_loop().time() < deadline, "the write never landed"
                    await asyncio.sleep(0.02)
            finally:
                await store.close()
            # ...and its resend is a duplicate: stored once
            again = await steady.log_append("events", [LogRecord(b"x", id="e1")], dedup_ttl=60)
            assert again == [None]
            assert await steady.log_length("events") == 1


async def test_a_refused_write_is_not_called_uncertain(tmp_path: Path) -> None:
    port = free_port()
    with redis_server(tmp_path, port=port) as server:
        store = open_store(server.url)
        await store.start()
    try:
        with pytest.raises(StoreUnavailable):  # may fail on the pooled, now closed connection
            await store.log_append("events", [LogRecord(b"x")])
        with pytest.raises(StoreUnavailable) as again:  # refused: nothing can have been sent
            await store.log_append("events", [LogRecord(b"x")])
        assert not isinstance(again.value, StoreWriteUncertain), again.value
    finally:
        await store.close()
