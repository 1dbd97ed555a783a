"""The JavaScript SDK in real headless Chromium against a running proxy (`slotwise serve`)
in front of a plain web server with the example shop (examples/shop/): views, add-to-cart,
slot clicks, purchase, sendBeacon on leaving, batching, and consent."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import msgspec
import pytest

from slotwise.proxy.state import open_store
from tests.conftest import REPO
from tests.support.chromium import chromium
from tests.support.events_server import events_server, static_server

pytestmark = [pytest.mark.browser, pytest.mark.slow]
SHOP = REPO / "examples" / "shop"


async def _events(url: str, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
    deadline = asyncio.get_running_loop().time() + timeout
    async with open_store(url) as store:
        while True:
            entries = await store.log_read("events", count=1000)
            if len(entries) >= count or asyncio.get_running_loop().time() > deadline:
                return [msgspec.json.decode(e.data) for e in entries]
            await asyncio.sleep(0.1)


def _journey(tmp_path: Path, store_url: str, query: str) -> tuple[Any, Any]:
    with (
        static_server(SHOP, tmp_path / "upstream.log") as upstream,
        events_server(store_url, tmp_path / "server.log", proxy=True, upstream=upstream) as server,
    ):
        with chromium(tmp_path / "chromium") as browser:
            browser.navigate(f"{server.base_url}/?journey=1{query}")
            browser.wait_for("document.getElementById('done') !== null")
            storage = browser.evaluate("localStorage.getItem('sw_aid')")
            cookie = browser.evaluate("document.cookie")
        return storage, cookie


async def test_sdk_journey_with_consent(tmp_path: Path) -> None:
    url = f"sqlite://{tmp_path}/state.db"
    anon_id, cookie = await asyncio.to_thread(_journey, tmp_path, url, "")
    records = await _events(url, 5)
    by_type = {r["event"]["type"]: r for r in records}
    assert sorted(by_type) == ["add_to_cart", "click", "page_view", "product_view", "purchase"]
    assert all(r["consent"] == "personal" for r in records)
    assert by_type["page_view"]["event"]["anonymous_id"] == anon_id  # before identify()
    for kind in ("product_view", "add_to_cart", "click", "purchase"):
        assert by_type[kind]["event"]["user_id"] == "user-42"
    click = by_type["click"]["event"]
    assert click["decision_id"] == "dec-123"
    assert click["properties"] == {"campaign": "spring_sale", "slot": "headline", "variant": "h2"}
    purchase = by_type["purchase"]["event"]["properties"]
    assert purchase["order_id"] == "order-1" and purchase["value"] == 49.9
    assert purchase["items"] == [{"product_id": "sku-1", "price": 49.9}]
    # batching: the page view and product view went together; the click and the purchase,
    # queued just before the page was left, went together in the sendBeacon on page hide
    received = {t: r["received"] for t, r in by_type.items()}
    assert received["page_view"] == received["product_view"]
    assert received["click"] == received["purchase"]
    assert len(set(received.values())) < len(records)
    assert "sw_consent=personal" not in cookie  # consent came from the page, not a cookie


async def test_sdk_without_consent_sends_no_identifier(tmp_path: Path) -> None:
    url = f"sqlite://{tmp_path}/state.db"
    anon_id, cookie = await asyncio.to_thread(_journey, tmp_path, url, "&consent=contextual")
    records = await _events(url, 5)
    assert len(records) == 5
    assert all(r["consent"] == "contextual" for r in records)
    assert all("user_id" not in r["event"] and "anonymous_id" not in r["event"] for r in records)
    assert anon_id is None  # nothing kept in the browser either
    assert "sw_consent=contextual" in cookie
