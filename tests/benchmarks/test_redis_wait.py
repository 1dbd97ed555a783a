"""What ``wait_replicas=1`` costs a log append: a primary (AOF, ``appendfsync always``) with one
replica, 8 concurrent writers appending batches of 50 records with ids, with and without
WAIT, interleaved rounds, medians.

.venv/bin/python -m pytest -m benchmark tests/benchmarks/test_redis_wait.py -s -p no:cacheprovider
"""

from __future__ import annotations

import asyncio
import itertools
import statistics
import subprocess
import time
from pathlib import Path

import pytest

from slotwise.proxy.state import LogRecord, open_store
from tests.support.servers import redis_server

pytestmark = [pytest.mark.benchmark, pytest.mark.redis]

WRITERS, BATCH, SECONDS, ROUNDS = 8, 50, 3.0, 5
_ids = itertools.count()


async def _rate(url: str) -> float:
    """Durable records/s (acknowledged) for SECONDS."""
    async with open_store(url) as store:
        done = 0
        deadline = time.monotonic() + SECONDS

        async def writer() -> None:
            nonlocal done
            while time.monotonic() < deadline:
                records = [
                    LogRecord(b"x" * 200, subject=f"u{n % 1000}", id=f"e{n}")
                    for n in (next(_ids) for _ in range(BATCH))
                ]
                await store.log_append("events", records, dedup_ttl=600)
                done += BATCH

        started = time.monotonic()
        await asyncio.gather(*(writer() for _ in range(WRITERS)))
        return done / (time.monotonic() - started)


async def test_the_cost_of_waiting_for_a_replica(tmp_path: Path) -> None:
    durable = ("--appendonly", "yes", "--appendfsync", "always")
    with redis_server(tmp_path / "primary", *durable) as primary:
        with redis_server(
            tmp_path / "replica", *durable, "--replicaof", "127.0.0.1", str(primary.port)
        ) as replica:
            while (
                "master_link_status:up"
                not in subprocess.run(
                    ["redis-cli", "-p", str(replica.port), "info", "replication"],
                    capture_output=True,
                    text=True,
                ).stdout
            ):
                await asyncio.sleep(0.05)
            plain = f"redis://127.0.0.1:{primary.port}/0"
            waiting = plain + "?wait_replicas=1"
            rates: dict[str, list[float]] = {plain: [], waiting: []}
            for round_ in range(ROUNDS):
                for url in (plain, waiting) if round_ % 2 else (waiting, plain):
                    rates[url].append(await _rate(url))
    before = statistics.median(rates[plain])
    after = statistics.median(rates[waiting])
    print(
        f"\nacknowledged records/s, medians of {ROUNDS}: no wait {before:,.0f},"
        f" wait_replicas=1 {after:,.0f} ({after / before:.2f}x)"
    )
    assert after > 0
