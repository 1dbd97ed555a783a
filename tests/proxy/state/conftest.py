"""One store fixture parametrised over every backend: the contract suite runs against each."""

from __future__ import annotations

import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from slotwise.proxy.state import Store, open_store
from tests.support.servers import RedisCluster, RedisServer, require_binary

BACKENDS = ["memory", "sqlite", "redis", "redis-cluster"]
# a generous read timeout: the contract is not about a loaded machine's latency (tests of the
# short request-path timeout open their own store)
_TIMEOUT = "?timeout=2"


def _flush(ports: list[int]) -> None:
    cli = require_binary("redis-cli")
    for port in ports:
        subprocess.run(
            [cli, "-h", "127.0.0.1", "-p", str(port), "flushall"], check=True, capture_output=True
        )


@pytest.fixture(params=BACKENDS)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    """A started, empty store of each backend in turn."""
    backend: str = request.param
    if backend == "memory":
        url = "memory://"
    elif backend == "sqlite":
        url = f"sqlite://{tmp_path}/state.db{_TIMEOUT}"
    elif backend == "redis":
        server: RedisServer = request.getfixturevalue("redis")
        _flush([server.port])
        url = server.url + _TIMEOUT
    else:
        cluster: RedisCluster = request.getfixturevalue("redis_cluster")
        _flush([n.port for n in cluster.nodes])
        url = cluster.url + _TIMEOUT
    async with open_store(url) as opened:
        yield opened


@pytest.fixture
async def redis_store(redis: RedisServer) -> AsyncIterator[tuple[Store, aioredis.Redis]]:
    """The Redis store on an empty server, and a raw client to look at its keys."""
    raw = aioredis.Redis(port=redis.port)
    await raw.flushall()
    async with open_store(redis.url + _TIMEOUT) as store:
        yield store, raw
    await raw.flushall()
    await raw.aclose()
