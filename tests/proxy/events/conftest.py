"""An events app over a real store, driven in-process through httpx's ASGI transport."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount

from slotwise.proxy.events import EventCollector, EventsConfig, events_routes
from slotwise.proxy.state import Store, open_store

ADMIN_TOKEN = "test-admin-token-0123456789"


@dataclass
class Harness:
    client: httpx.AsyncClient
    store: Store
    collector: EventCollector


@pytest.fixture(params=["memory", "sqlite"])
async def harness(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Harness]:
    url = "memory://" if request.param == "memory" else f"sqlite://{tmp_path}/state.db"
    async with open_store(url) as store:
        config = EventsConfig(admin_token=ADMIN_TOKEN, history_max_len=50)
        async with EventCollector(store, config) as collector:
            app = Starlette(routes=[Mount("/_sw", routes=events_routes(collector))])
            transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 40000))
            async with httpx.AsyncClient(transport=transport, base_url="http://shop.test") as c:
                yield Harness(c, store, collector)
