"""Durable events/s on one core: the collector runs as one process (one core; the standalone
collector under uvicorn, then `slotwise serve` with one granian worker), the load generator in
this one. Batch (100 events per POST) and pixel (one event per GET), for the
embedded SQLite store and Redis (appendfsync always), with memory:// as the same-run baseline.

    .venv/bin/pytest -m benchmark tests/benchmarks/test_events_throughput.py -s
"""

from __future__ import annotations

import asyncio
import statistics
from pathlib import Path

import msgspec
import pytest

from tests.support.events_server import events_server
from tests.support.http_load import LoadFigures, get, hammer, post
from tests.support.servers import redis_server

pytestmark = pytest.mark.benchmark

BATCH = 100
SECONDS = 4.0
ROUNDS = 3


def _batch_request(n: int) -> bytes:
    events = [
        {"type": "product_view", "id": f"b{n}-{i}", "properties": {"product_id": f"sku-{i}"}}
        for i in range(BATCH)
    ]
    return post("/_sw/events", msgspec.json.encode({"events": events}))


def _pixel_request(n: int) -> bytes:
    return get(f"/_sw/px?t=click&id=p{n}&p.slot=headline&p.variant=h2")


async def _measure(port: int) -> tuple[float, float]:
    batch: list[LoadFigures] = []
    pixel: list[LoadFigures] = []
    for _ in range(ROUNDS):
        batch.append(await hammer(port, _batch_request, connections=8, seconds=SECONDS))
        pixel.append(await hammer(port, _pixel_request, connections=16, seconds=SECONDS))
    batch_rate = statistics.median(f.rate for f in batch) * BATCH
    pixel_rate = statistics.median(f.rate for f in pixel)
    return batch_rate, pixel_rate


def _report(name: str, batch_rate: float, pixel_rate: float, baseline: tuple[float, float]) -> None:
    print(
        f"{name:34s} batch {batch_rate:9.0f} events/s ({batch_rate / baseline[0]:.2f}x memory)"
        f"   pixel {pixel_rate:7.0f} events/s ({pixel_rate / baseline[1]:.2f}x memory)"
    )


async def test_events_throughput(tmp_path: Path) -> None:
    with events_server("memory://", tmp_path / "memory.log") as server:
        baseline = await _measure(server.port)
    with events_server(f"sqlite://{tmp_path}/state.db", tmp_path / "sqlite.log") as server:
        sqlite = await _measure(server.port)
    with redis_server(tmp_path / "redis", "--appendonly", "yes", "--appendfsync", "always") as r:
        with events_server(r.url, tmp_path / "redis.log") as server:
            redis = await _measure(server.port)
        with events_server(r.url, tmp_path / "serve-redis.log", proxy=True) as server:
            serve_redis = await _measure(server.port)
    serve_db = f"sqlite://{tmp_path}/serve.db"
    with events_server(serve_db, tmp_path / "serve-sqlite.log", proxy=True) as server:
        serve_sqlite = await _measure(server.port)
    print()
    _report("memory:// (not durable, baseline)", *baseline, baseline)
    _report("sqlite (WAL, synchronous=full)", *sqlite, baseline)
    _report("redis (appendfsync always)", *redis, baseline)
    _report("slotwise serve, sqlite", *serve_sqlite, baseline)
    _report("slotwise serve, redis", *serve_redis, baseline)
    assert sqlite[0] > 0 and redis[0] > 0


if __name__ == "__main__":  # pragma: no cover
    asyncio.run(test_events_throughput(Path("/tmp")))
