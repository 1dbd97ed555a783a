"""An events app over a real store, driven in-process through httpx's ASGI transport."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount

from slotwise.proxy.events import EventCollector, EventsConfig, events_routes, history_key
from slotwise.proxy.state import HistoryItem, Store, open_store

ADMIN_TOKEN = "test-admin-token-0123456789"


@dataclass
class Harness:
    client: httpx.AsyncClient
    store: Store
    collector: EventCollector


async def history_of(store: Store, user: str, count: int) -> list[HistoryItem]:
    """``user``'s history once it holds ``count`` items, waited for up to 10 s: it may be
    written off the reply path (a fixed sleep was too short on a loaded machine)."""
    deadline = asyncio.get_running_loop().time() + 10
    while len(items := await store.history(history_key(user))) < count:
        assert asyncio.get_running_loop().time() < deadline, (
            f"{user}'s history holds {len(items)} item(s) after 10 s, not {count}"
        )
        await asyncio.sleep(0.02)
    return items


async def settled(harness: Harness) -> None:
    """Until the collector's work off the reply path (histories, aliases, tombstone checks) is
    over, up to 10 s: a fixed sleep was too short on a loaded machine, and an erasure racing a
    tombstone check would find the data already removed."""
    async with asyncio.timeout(10):
        while harness.collector._background:
            await asyncio.gather(*list(harness.collector._background), return_exceptions=True)


@pytest.fixture(params=["memory", "sqlite"])
async def harness(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Harness]:
    # a generous read timeout: these tests are not about a loaded machine's latency
    url = "memory://" if request.param == "memory" else f"sqlite://{tmp_path}/state.db?timeout=2"
    async with open_store(url) as store:
        config = EventsConfig(admin_token=ADMIN_TOKEN, history_max_len=50)
        async with EventCollector(store, config) as collector:
            app = Starlette(routes=[Mount("/_sw", routes=events_routes(collector))])
            transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 40000))
            async with httpx.AsyncClient(transport=transport, base_url="http://shop.test") as c:
                yield Harness(c, store, collector)
