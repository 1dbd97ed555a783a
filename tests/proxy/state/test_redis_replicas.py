"""``wait_replicas``: a log append is acknowledged only once that many replicas have it.

Real redis-servers: a primary with one replica (the replica frozen with SIGSTOP, so that it
stays connected and silent, as a slow or partitioned replica does), and a Redis Cluster of
three primaries with one replica each, whose events primary is killed with SIGKILL."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from slotwise.proxy.state import (
    LogRecord,
    Store,
    StoreConfigError,
    StoreUnavailable,
    StoreWriteUncertain,
    open_store,
)
from tests.support.servers import RedisServer, redis_cluster, redis_server

pytestmark = pytest.mark.redis
STREAM = "log:{events}"  # where the events log lives (slotwise.proxy.state.redis._stream_key)


@contextmanager
def _primary_and_replica(tmp_path: Path) -> Iterator[tuple[RedisServer, RedisServer]]:
    with redis_server(tmp_path / "primary") as primary:
        with redis_server(
            tmp_path / "replica", "--replicaof", "127.0.0.1", str(primary.port)
        ) as replica:
            deadline = time.monotonic() + 20
            while True:
                info = subprocess.run(
                    ["redis-cli", "-p", str(replica.port), "info", "replication"],
                    capture_output=True,
                    text=True,
                ).stdout
                if "master_link_status:up" in info:
                    break
                assert time.monotonic() < deadline, info
                time.sleep(0.05)
            yield primary, replica


@contextmanager
def _frozen(server: RedisServer) -> Iterator[None]:
    server.process.send_signal(signal.SIGSTOP)
    try:
        yield
    finally:
        server.process.send_signal(signal.SIGCONT)


def _record(n: int) -> LogRecord:
    return LogRecord(f"event {n}".encode(), subject=f"u{n}", id=f"e{n}")


async def _confirmed(store: Store, record: LogRecord) -> list[str | None]:
    """``record`` appended, resent until its replica confirms it: a busy machine's replica
    may miss wait_timeout (StoreWriteUncertain; a resend is safe: record ids deduplicate)."""
    deadline = asyncio.get_running_loop().time() + 10
    while True:
        try:
            return await store.log_append("events", [record], dedup_ttl=60)
        except StoreWriteUncertain:
            assert asyncio.get_running_loop().time() < deadline, "the replica never confirmed"
            await asyncio.sleep(0.1)


async def test_an_append_waits_for_its_replica_and_resends_are_confirmed_too(
    tmp_path: Path,
) -> None:
    with _primary_and_replica(tmp_path) as (primary, replica):
        url = f"redis://127.0.0.1:{primary.port}/0?wait_replicas=1&wait_timeout=0.3"
        async with open_store(url) as store:
            # a new position, or a duplicate when a first try was stored but not confirmed
            # (stored once either way: the log is read below)
            await _confirmed(store, _record(1))
            with _frozen(replica):
                with pytest.raises(StoreWriteUncertain, match="0 of 1 replica"):
                    await store.log_append("events", [_record(2)], dedup_ttl=60)
                # the primary has it: the resend is a duplicate, and still not acknowledged,
                # from a fresh connection too (its WAIT covers the first append: the
                # duplicate rewrote its dedup key's expiry, a write)
                async with open_store(url) as other:
                    with pytest.raises(StoreWriteUncertain):
                        await other.log_append("events", [_record(2)], dedup_ttl=60)
            # replica back: the resend is confirmed (once it has caught up), stored once
            assert await _confirmed(store, _record(2)) == [None]
            assert [e.data for e in await store.log_read("events")] == [b"event 1", b"event 2"]
        # the replica holds both (what a failover would keep)
        async with open_store(f"redis://127.0.0.1:{replica.port}/0") as copy:
            assert len(await copy.log_read("events")) == 2


async def test_more_replicas_than_there_are_is_never_acknowledged(tmp_path: Path) -> None:
    with _primary_and_replica(tmp_path) as (primary, _replica):
        url = f"redis://127.0.0.1:{primary.port}/0?wait_replicas=2&wait_timeout=0.1"
        async with open_store(url) as store:
            with pytest.raises(StoreWriteUncertain, match="1 of 2 replica"):
                await store.log_append("events", [_record(1)], dedup_ttl=60)


async def test_without_wait_replicas_nothing_waits(tmp_path: Path) -> None:
    with _primary_and_replica(tmp_path) as (primary, replica):
        async with open_store(f"redis://127.0.0.1:{primary.port}/0") as store:
            with _frozen(replica):
                assert await store.log_append("events", [_record(1)], dedup_ttl=60) != [None]


async def test_the_events_endpoint_answers_503_until_the_replica_has_the_batch(
    tmp_path: Path,
) -> None:
    """Through the events app as `slotwise serve` mounts it: a batch its replica has not
    confirmed is a 503 (never a 2xx), the same batch resent later is a 200 (a duplicate)."""
    from starlette.applications import Starlette
    from starlette.routing import Mount

    from slotwise.proxy.events import EventCollector, EventsConfig, events_routes

    batch = {"events": [{"type": "click", "id": "k1"}, {"type": "click", "id": "k2"}]}
    with _primary_and_replica(tmp_path) as (primary, replica):
        url = f"redis://127.0.0.1:{primary.port}/0?wait_replicas=1&wait_timeout=0.2"
        async with open_store(url) as store:
            async with EventCollector(store, EventsConfig(retry_after=3)) as collector:
                app = Starlette(routes=[Mount("/_sw", routes=events_routes(collector))])
                transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 1))
                async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                    with _frozen(replica):
                        refused = await client.post("/_sw/events", json=batch)
                    assert refused.status_code == 503
                    assert refused.headers["retry-after"] == "3"
                    assert "may still complete" in refused.json()["error"]["message"]
                    # resent as a client does after Retry-After: 200 once the thawed replica
                    # has caught up (it may take longer than wait_timeout on a busy machine;
                    # until then the answer is 503 again, never another 2xx)
                    deadline = asyncio.get_running_loop().time() + 10
                    while (
                        again := await client.post("/_sw/events", json=batch)
                    ).status_code != 200:
                        assert again.status_code == 503, again.text
                        assert asyncio.get_running_loop().time() < deadline
                        await asyncio.sleep(0.1)
                    assert again.json()["duplicates"] == 2
            assert len(await store.log_read("events")) == 2


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("wait_replicas=-1", "wait_replicas must be a whole number of replicas from 0 to 16"),
        ("wait_replicas=17", "wait_replicas must be a whole number"),
        ("wait_replicas=one", "wait_replicas must be a whole number"),
        ("wait_timeout=0", "wait_timeout must be seconds in"),
        ("wait_timeout=3", r"wait_timeout \(3 s\) must be below write_timeout \(2 s\)"),
        ("wait_timeout=1&write_timeout=1", "must be below write_timeout"),
    ],
)
def test_bad_replication_options_are_named(query: str, message: str) -> None:
    with pytest.raises(StoreConfigError, match=message):
        open_store(f"redis://127.0.0.1:6379/0?{query}")
    with pytest.raises(StoreConfigError, match="unknown option 'wait_replicas'"):
        open_store("sqlite:///tmp/x.db?wait_replicas=1")


@pytest.mark.slow
async def test_a_cluster_failover_keeps_every_acknowledged_append(tmp_path: Path) -> None:
    """kill -9 of the events primary while appends go on: the replica is promoted, appends
    fail meanwhile (StoreUnavailable, never a false acknowledgement), the killed node comes
    back as a replica, appends are acknowledged again, and every acknowledged one is there."""
    with redis_cluster(
        tmp_path, 3, "--appendonly", "yes", "--appendfsync", "always", replicas=1
    ) as cluster:
        url = cluster.url + "?wait_replicas=1&wait_timeout=0.5"
        acknowledged: list[str] = []
        refused = 0
        async with open_store(url) as store:

            async def append(n: int) -> None:
                nonlocal refused
                try:
                    await store.log_append("events", [_record(n)], dedup_ttl=600)
                except StoreUnavailable:
                    refused += 1
                else:
                    acknowledged.append(f"event {n}")

            primary = cluster.primary_of(STREAM)
            assert primary is not None
            n = 0
            for n in range(50):
                await append(n)
            primary.kill()
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 40
            restarted = False
            while refused == 0 or len(acknowledged) < 100:
                n += 1
                await append(n)
                if not restarted and cluster.primary_of(STREAM) not in (None, primary):
                    primary.start_again()  # as a supervisor would: it rejoins as a replica
                    restarted = True
                assert loop.time() < deadline, (refused, len(acknowledged))
                await asyncio.sleep(0.01)
            assert cluster.role(primary)[0] == "slave"
            stored = {e.data.decode() for e in await store.log_read("events", count=10_000)}
        assert refused > 0
        assert set(acknowledged) <= stored
