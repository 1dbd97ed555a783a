"""Crash trials: kill -9 under steady load, then check every acknowledged event is stored.

Shared by the short default-run test (test_crash.py) and the 20-trial benchmark
(tests/benchmarks/test_events_crash.py).
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass
from pathlib import Path

import httpx
import msgspec

from slotwise.proxy.state import open_store
from tests.support.events_server import crash_delay, events_server, load_then
from tests.support.servers import redis_server

AOF = ("--appendonly", "yes", "--appendfsync", "always")


@dataclass
class Trial:
    acked: int
    stored: int
    missing: int  # acknowledged but not stored: must be 0
    duplicates: int  # stored twice (dedup by event id should make this 0)
    refused: int
    failed: int


async def _stored_ids(url: str) -> list[str]:
    ids: list[str] = []
    async with open_store(url) as store:
        after = "0"
        while True:
            entries = await store.log_read("events", after=after, count=5000)
            if not entries:
                return ids
            ids.extend(msgspec.json.decode(e.data)["event"]["id"] for e in entries)
            after = entries[-1].position


async def _post_until_ok(base_url: str, event_id: str, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    body = {"events": [{"type": "click", "id": event_id}]}
    async with httpx.AsyncClient(base_url=base_url) as client:
        while True:
            try:
                response = await client.post("/_sw/events", json=body, timeout=2.0)
                if response.status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError("the collector did not recover after the crash")
            await asyncio.sleep(0.1)


def _trial(acked: set[str], ids: list[str], refused: int, failed: int) -> Trial:
    return Trial(
        acked=len(acked),
        stored=len(ids),
        missing=len(acked - set(ids)),
        duplicates=len(ids) - len(set(ids)),
        refused=refused,
        failed=failed,
    )


async def sqlite_trial(directory: Path, rng: random.Random, index: int) -> Trial:
    """kill -9 `slotwise serve` and its worker (embedded SQLite store), restart on the file."""
    directory.mkdir(parents=True, exist_ok=True)
    url = f"sqlite://{directory}/state.db"
    log = directory / "server.log"
    with events_server(url, log, proxy=True) as server:
        result = await load_then(crash_delay(rng), server.base_url, server.kill, f"s{index}-")
    with events_server(url, log, proxy=True) as server:  # recovery: starts and serves again
        await _post_until_ok(server.base_url, f"s{index}-after")
    ids = await _stored_ids(url)
    assert f"s{index}-after" in ids
    ids.remove(f"s{index}-after")
    return _trial(result.acked, ids, result.refused, result.failed)


async def redis_trial(directory: Path, rng: random.Random, index: int) -> Trial:
    """kill -9 redis-server (appendonly yes, appendfsync always) under load, restart it."""
    directory.mkdir(parents=True, exist_ok=True)
    with redis_server(directory, *AOF) as redis:
        port, url = redis.port, redis.url
        with events_server(url, directory / "server.log", proxy=True) as server:

            def crash() -> None:
                redis.process.kill()
                redis.process.wait()

            result = await load_then(crash_delay(rng), server.base_url, crash, f"r{index}-")
            with redis_server(directory, *AOF, port=port):
                await _post_until_ok(server.base_url, f"r{index}-after")
                ids = await _stored_ids(url)
    assert f"r{index}-after" in ids
    ids.remove(f"r{index}-after")
    return _trial(result.acked, ids, result.refused, result.failed)
