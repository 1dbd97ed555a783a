"""The triggers' admin endpoints over the events app and a real store: audiences (JSON, JSON
Lines, CSV; consent respected, erased users absent) and price updates firing ``price_drop``
for the users who viewed the product; browse abandonment as a trigger on product views."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount

from slotwise.proxy.events import EventCollector, EventsConfig, events_routes
from slotwise.proxy.state import Store, open_store
from slotwise.proxy.triggers import TriggerEngine
from slotwise.proxy.triggers.prices import viewers_key
from tests.proxy.personalisers.support import compile_policy

TOKEN = "test-admin-token-0123456789"
AUTH = {"authorization": f"Bearer {TOKEN}"}
POLICY = compile_policy(
    """
campaign deal { slot title at "$.t" { variant d "Now cheaper" } }
trigger price_watch {
  on event price_drop
  window 1d
  show campaign deal
}
trigger browse_abandon {
  on event product_view
  unless event add_to_cart within 1h
  window 1d
}
"""
)


@dataclass
class Admin:
    client: httpx.AsyncClient
    store: Store
    collector: EventCollector


@pytest.fixture(params=["memory", "sqlite"])
async def admin(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Admin]:
    # a generous read timeout: these tests are not about a loaded machine's latency
    url = "memory://" if request.param == "memory" else f"sqlite://{tmp_path}/state.db?timeout=2"
    async with open_store(url) as store:
        config = EventsConfig(admin_token=TOKEN, history_max_len=50)
        async with EventCollector(store, config) as collector:
            collector.triggers = TriggerEngine(store, lambda: POLICY)
            app = Starlette(routes=[Mount("/_sw", routes=events_routes(collector))])
            transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 40000))
            async with httpx.AsyncClient(transport=transport, base_url="http://shop.test") as c:
                yield Admin(c, store, collector)


def _view(user: str, product: str, eid: str, kind: str = "product_view") -> dict[str, Any]:
    return {"type": kind, "id": eid, "time": time.time() - 5, "user_id": user,
            "properties": {"product_id": product, "price": 40.0}}  # fmt: skip


async def _send(admin: Admin, consent: str, *events: dict[str, Any]) -> None:
    response = await admin.client.post(
        "/_sw/events", json={"consent": consent, "events": list(events)}
    )
    assert response.status_code == 200, response.text


async def _users(admin: Admin, name: str) -> list[str]:
    response = await admin.client.get(f"/_sw/admin/audiences/{name}", headers=AUTH)
    assert response.status_code == 200, response.text
    return [row["user_id"] for row in response.json()["users"]]


async def test_a_price_drop_fires_for_the_users_who_looked(admin: Admin) -> None:
    await _send(admin, "personal", _view("u1", "sku-1", "v1"),
                _view("u2", "sku-2", "v2"), _view("u4", "sku-1", "v4", "price_check"))  # fmt: skip
    await _send(admin, "contextual", _view("u3", "sku-1", "v3"))  # no id kept: never fired
    update = {"updates": [{"product_id": "sku-1", "old_price": 40, "new_price": 30}]}
    response = await admin.client.post("/_sw/admin/prices", json=update, headers=AUTH)
    assert response.status_code == 200, response.text
    assert response.json() == {"updates": 1, "drops": 1, "fired": 2}
    assert await _users(admin, "price_watch") == ["u1", "u4"]
    again = await admin.client.post("/_sw/admin/prices", json=update, headers=AUTH)
    assert again.json()["fired"] == 0  # the same report fires once
    up = {"updates": [{"product_id": "sku-2", "old_price": 40, "new_price": 45}]}
    assert (await admin.client.post("/_sw/admin/prices", json=up, headers=AUTH)).json() == {
        "updates": 1, "drops": 0, "fired": 0
    }  # fmt: skip
    bad = await admin.client.post(
        "/_sw/admin/prices", json={"updates": [{"product_id": "x", "old_price": -1}]},
        headers=AUTH,
    )  # fmt: skip
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_price_update"
    assert (await admin.client.post("/_sw/admin/prices", json=update)).status_code == 401
    erased = await admin.client.delete("/_sw/admin/users/u1", headers=AUTH)
    assert erased.status_code == 200
    assert await _users(admin, "price_watch") == ["u4"]
    day = int(time.time() // 86400)
    members = set()
    for d in (day - 1, day):
        members |= await admin.store.set_members(viewers_key("sku-1", d))
    assert members == {b"u4"}


async def test_audiences_list_export_formats_and_unknown_names(admin: Admin) -> None:
    await _send(admin, "personal", _view("u1", "sku-1", "v1"), _view("u2", "sku-1", "v2"))
    add = {"type": "add_to_cart", "id": "a2", "time": time.time(), "user_id": "u2",
           "properties": {"product_id": "sku-1"}}  # fmt: skip
    await _send(admin, "personal", add)  # u2 put it in the cart: not a browse abandoner
    listed = await admin.client.get("/_sw/admin/audiences", headers=AUTH)
    assert listed.json() == {
        "audiences": [
            {"name": "price_watch", "kind": "trigger", "users": 0},
            {"name": "browse_abandon", "kind": "trigger", "users": 1},
        ]
    }
    assert await _users(admin, "browse_abandon") == ["u1"]
    csv = await admin.client.get("/_sw/admin/audiences/browse_abandon?format=csv", headers=AUTH)
    lines = csv.text.splitlines()
    assert lines[0] == "user_id,trigger,phase,started,armed_at,until"
    assert lines[1].startswith("u1,browse_abandon,armed,") and len(lines) == 2
    jsonl = await admin.client.get("/_sw/admin/audiences/browse_abandon?format=jsonl", headers=AUTH)
    assert jsonl.headers["content-type"].startswith("application/x-ndjson")
    assert len(jsonl.text.splitlines()) == 1
    unknown = await admin.client.get("/_sw/admin/audiences/nope", headers=AUTH)
    assert unknown.status_code == 404
    assert unknown.json()["error"]["code"] == "unknown_audience"
    assert "browse_abandon" in unknown.json()["error"]["message"]
    wrong = await admin.client.get("/_sw/admin/audiences/browse_abandon?format=xml", headers=AUTH)
    assert wrong.status_code == 400 and wrong.json()["error"]["code"] == "invalid_format"
    assert (await admin.client.get("/_sw/admin/audiences")).status_code == 401
