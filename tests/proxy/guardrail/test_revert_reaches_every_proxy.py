"""A revert reaches every proxy within 5 s, and so does re-enabling (two proxies, one Redis).

Real processes: two example ad servers, each behind its own `slotwise serve`, both on one
redis-server (the session's, a database of their own). A revert is written to the store as
the learner writes it; both proxies must serve the campaign generic (the upstream's creative,
no trackers: no decision) within 5 s, and report it in /_sw/metrics. Then `slotwise guardrail
enable` re-enables it and both personalise it again within 5 s.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from contextlib import AsyncExitStack
from pathlib import Path

import httpx
import pytest

from slotwise.proxy.guardrail import state
from slotwise.proxy.state import open_store
from tests.conftest import REPO
from tests.proxy.support import wait_ready
from tests.proxy.test_every_tracker_counted import _processes
from tests.support.servers import RedisServer

pytestmark = pytest.mark.slow
DEADLINE = 5.0
CAMPAIGN = "spring_sale"
HEADERS = {"cookie": "sw_uid=u1; sw_consent=personal"}


async def _personalised(client: httpx.AsyncClient) -> bool:
    """Whether the proxy decided the spring campaign: its response carries our trackers."""
    response = await client.get("/ads/home-top", headers=HEADERS)
    assert response.status_code == 200
    return "/_sw/" in response.text


async def _until(clients: list[httpx.AsyncClient], personalised: bool) -> list[float]:
    """Seconds until each proxy serves as wanted (asserts within DEADLINE)."""
    started = time.monotonic()
    reached: list[float | None] = [None] * len(clients)
    while any(r is None for r in reached):
        for i, client in enumerate(clients):
            if reached[i] is None and await _personalised(client) == personalised:
                reached[i] = time.monotonic() - started
        elapsed = time.monotonic() - started
        assert elapsed < DEADLINE, f"after {elapsed:.1f} s: {reached}"
        await asyncio.sleep(0.05)
    return [r for r in reached if r is not None]


async def test_a_revert_and_a_re_enable_reach_both_proxies(
    tmp_path: Path, redis: RedisServer
) -> None:
    url = redis.url.rsplit("/", 1)[0] + "/7"
    async with open_store(url) as store:
        await store.delete(state.REVERTED)
    async with AsyncExitStack() as stack:
        clients = []
        for name in ("a", "b"):
            folder = tmp_path / name
            folder.mkdir()
            base = await stack.enter_async_context(_processes(folder, url))
            client = await stack.enter_async_context(httpx.AsyncClient(base_url=base, timeout=10))
            await wait_ready(client)
            clients.append(client)
        assert await _until(clients, personalised=True)

        async with open_store(url) as store:
            record = state.RevertRecord(
                campaign=CAMPAIGN, at=time.time(), difference=-0.02, low=-0.03, high=-0.01
            )
            assert await state.revert(store, record)
        reverted = await _until(clients, personalised=False)
        for client in clients:
            metrics = (await client.get("/_sw/metrics")).text
            assert f'slotwise_guardrail_reverted{{campaign="{CAMPAIGN}"}} 1' in metrics

        done = subprocess.run(
            [sys.executable, "-m", "slotwise", "guardrail", "enable", CAMPAIGN, "--store", url],
            cwd=REPO, capture_output=True, timeout=60, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr.decode()
        enabled = await _until(clients, personalised=True)
    print(f"\nreverted on both proxies after {reverted} s, re-enabled after {enabled} s")
