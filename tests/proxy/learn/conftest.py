from __future__ import annotations

import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from slotwise.proxy.state import Store, open_store
from tests.support.servers import RedisServer, require_binary


@pytest.fixture(params=["memory", "sqlite", "redis"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    """A started, empty state store of each backend the learner worker may read."""
    # ?timeout=2, a generous read timeout: these tests are not about a loaded machine's latency
    backend: str = request.param
    if backend == "memory":
        url = "memory://"
    elif backend == "sqlite":
        url = f"sqlite://{tmp_path}/state.db?timeout=2"
    else:
        server: RedisServer = request.getfixturevalue("redis")
        cli = require_binary("redis-cli")
        subprocess.run(
            [cli, "-h", "127.0.0.1", "-p", str(server.port), "flushall"],
            check=True,
            capture_output=True,
        )
        url = server.url + "?timeout=2"
    async with open_store(url) as opened:
        yield opened
