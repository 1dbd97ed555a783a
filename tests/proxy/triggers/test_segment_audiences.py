"""Segment audiences over the events app and a real store (memory, SQLite, Redis): the policy's
named segments are audiences (``segment:NAME``), their members the consenting users whose stored
signals satisfy the segment; erased users are absent. The admin endpoint and
``slotwise audiences list|export`` (the CLI, a real process) agree."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount

from slotwise.proxy.events import EventCollector, EventsConfig, events_routes
from slotwise.proxy.state import open_store
from slotwise.proxy.triggers import TriggerEngine
from slotwise.proxy.triggers.engine import USERS_KEY
from tests.conftest import REPO
from tests.proxy.personalisers.support import compile_policy

TOKEN = "test-admin-token-0123456789"
AUTH = {"authorization": f"Bearer {TOKEN}"}
# segments and no trigger: the engine keeps the users' index all the same
POLICY_TEXT = """
segment big_cart: cart.value >= 50
segment big_cart_on_mobile: big_cart and device.type == "mobile"
segment viewers: event product_view within 1d

campaign deal {
  applies when big_cart
  slot title at "$.t" { variant d "Free shipping on your cart" }
}
"""
POLICY = compile_policy(POLICY_TEXT)


@dataclass
class Shop:
    client: httpx.AsyncClient
    url: str  # the store's
    policies: Path
    run: str  # a suffix making the user ids this run's own (Redis is shared)


@pytest.fixture(params=["memory", "sqlite", "redis"])
async def shop(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Shop]:
    if request.param == "memory":
        url = "memory://"
    elif request.param == "sqlite":
        url = f"sqlite://{tmp_path}/state.db"
    else:
        redis = request.getfixturevalue("redis")
        url = redis.url.rsplit("/", 1)[0] + "/9?timeout=2"  # a database of its own
    policies = tmp_path / "segments.sw"
    policies.write_text('policy "t" version 1\n' + POLICY_TEXT, encoding="utf-8")
    async with open_store(url) as store:
        await store.delete(USERS_KEY)
        config = EventsConfig(admin_token=TOKEN, history_max_len=50)
        async with EventCollector(store, config) as collector:
            collector.triggers = TriggerEngine(store, lambda: POLICY)
            app = Starlette(routes=[Mount("/_sw", routes=events_routes(collector))])
            transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 40000))
            async with httpx.AsyncClient(transport=transport, base_url="http://shop.test") as c:
                yield Shop(c, url, policies, uuid.uuid4().hex[:8])


def _add(user: str, eid: str, price: float) -> dict[str, Any]:
    return {"type": "add_to_cart", "id": eid, "time": time.time() - 5, "user_id": user,
            "properties": {"product_id": "sku-1", "price": price, "quantity": 1}}  # fmt: skip


async def _send(shop: Shop, consent: str, *events: dict[str, Any]) -> None:
    response = await shop.client.post(
        "/_sw/events", json={"consent": consent, "events": list(events)}
    )
    assert response.status_code == 200, response.text


async def _users(shop: Shop, name: str) -> list[str]:
    response = await shop.client.get(f"/_sw/admin/audiences/{name}", headers=AUTH)
    assert response.status_code == 200, response.text
    return [row["user_id"] for row in response.json()["users"]]


async def _eventually(shop: Shop, name: str, want: list[str]) -> list[str]:
    """The audience once the collector's background derivation wrote the index (no trigger
    listens, so it runs after the answer), within a few seconds."""
    deadline = time.monotonic() + 10
    while (found := await _users(shop, name)) != want and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    return found


def _cli(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "slotwise", *argv], cwd=REPO, capture_output=True, text=True,
        timeout=60, env=dict(os.environ, SLOTWISE_PLUGINS="builtins"),
    )  # fmt: skip


async def test_a_segment_audience_is_its_consenting_users_erased_ones_absent(shop: Shop) -> None:
    inside, outside, erased = (f"{who}-{shop.run}" for who in ("in", "out", "gone"))
    anonymous = f"anon-{shop.run}"
    await _send(shop, "personal", _add(inside, f"a1-{shop.run}", 60.0))
    await _send(shop, "personal", _add(outside, f"a2-{shop.run}", 20.0))
    await _send(shop, "personal", _add(erased, f"a3-{shop.run}", 80.0))
    # without personal consent the event carries no user: never in an audience
    await _send(shop, "contextual", _add(anonymous, f"a4-{shop.run}", 90.0))
    assert await _eventually(shop, "segment:big_cart", [erased, inside]) == [erased, inside]
    gone = await shop.client.delete(f"/_sw/admin/users/{erased}", headers=AUTH)
    assert gone.status_code == 200
    assert await _users(shop, "segment:big_cart") == [inside]
    # a request-only signal (device) is missing from the stored signals: false, nobody
    assert await _users(shop, "segment:big_cart_on_mobile") == []
    assert await _users(shop, "segment:viewers") == []  # no product view was stored

    listed = await shop.client.get("/_sw/admin/audiences", headers=AUTH)
    assert listed.json() == {
        "audiences": [
            {"name": "segment:big_cart", "kind": "segment", "users": 1},
            {"name": "segment:big_cart_on_mobile", "kind": "segment", "users": 0},
            {"name": "segment:viewers", "kind": "segment", "users": 0},
        ]
    }
    rows = await shop.client.get("/_sw/admin/audiences/segment:big_cart?format=jsonl", headers=AUTH)
    assert [json.loads(line) for line in rows.text.splitlines()] == [
        {"user_id": inside, "audience": "segment:big_cart", "kind": "segment"}
    ]
    csv = await shop.client.get("/_sw/admin/audiences/segment:big_cart?format=csv", headers=AUTH)
    assert csv.text == f"user_id,audience,kind\n{inside},segment:big_cart,segment\n"
    unknown = await shop.client.get("/_sw/admin/audiences/segment:nope", headers=AUTH)
    assert (unknown.status_code, unknown.json()["error"]["code"]) == (404, "unknown_audience")

    if shop.url == "memory://":
        return  # the CLI reads a store of its own process: SQLite and Redis only
    common = ("--store", shop.url, "--policies", str(shop.policies))
    exported = _cli("audiences", "export", "segment:big_cart", "--format", "jsonl", *common)
    assert exported.returncode == 0, exported.stderr
    assert [json.loads(line) for line in exported.stdout.splitlines()] == [
        {"user_id": inside, "audience": "segment:big_cart", "kind": "segment"}
    ]
    as_csv = _cli("audiences", "export", "segment:big_cart", "--format", "csv", *common)
    assert as_csv.stdout == f"user_id,audience,kind\n{inside},segment:big_cart,segment\n"
    listing = _cli("audiences", "list", *common)
    assert listing.returncode == 0, listing.stderr
    assert listing.stdout.splitlines() == [
        "segment:big_cart\tsegment\t1 users",
        "segment:big_cart_on_mobile\tsegment\t0 users",
        "segment:viewers\tsegment\t0 users",
    ]
