"""The JavaScript SDK in real headless Chromium against a running proxy (`slotwise serve`)
in front of a plain web server with the example shop (examples/shop/): views, add-to-cart,
slot clicks, purchase, sendBeacon on leaving, batching, and consent."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import msgspec
import pytest

from slotwise.proxy.events import history_key
from slotwise.proxy.events.aliases import alias_key
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
            # the beacon sent on page hide may still be on its way: stored before all stops
            _wait_events(store_url, 5)
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


POLICY = """policy "browsing history" version 1

campaign returning {
  applies when ad.campaign_id == "cmp-spring"
  slot headline at "$.creative.headline" {
    variant plain "Spring deals are here"
    variant browsed "Still thinking about it?"
  }
  rule "browsed before" when count of product_view within 1h >= 3 then pin headline browsed
  rule "new here" when not count of product_view within 1h >= 3 then exclude headline browsed
}
"""
PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>browse</title>
<script src="/_sw/sdk.js" data-consent="personal" data-flush-ms="100"></script>
</head><body><p>browse</p><script>slotwise.consent("personal");</script></body></html>
"""
AD = {
    "placement": "home-top",
    "campaign_id": "cmp-spring",
    "creative": {"headline": "Spring collection", "click_url": "https://shop.example/spring"},
}
SLOW_MACHINE = """[proxy]
decision_deadline_ms = 2000.0
signals_deadline_ms = 5000.0

[plugins.consent]
deadline_ms = 5000.0

[plugins.profile]
deadline_ms = 5000.0
"""
_FETCH_AD = (
    "window.ad = undefined; fetch('/ad.json', {cache: 'no-store'})"
    ".then(function (r) { return r.json(); })"
    ".then(function (a) { window.ad = a; }); 1"
)


def _identify_journey(tmp_path: Path, store_url: str) -> dict[str, Any]:
    site = tmp_path / "site"
    site.mkdir()
    (site / "browse.html").write_text(PAGE)
    (site / "ad.json").write_text(json.dumps(AD))
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "returning.sw").write_text(POLICY)
    # what is asserted is the decision, not its speed: deadlines a loaded machine meets
    config = tmp_path / "slotwise.toml"
    config.write_text(SLOW_MACHINE)
    env = {"SLOTWISE_CONFIG": str(config), "SLOTWISE_PLUGINS": "builtins"}
    seen: dict[str, Any] = {}
    with (
        static_server(site, tmp_path / "upstream.log") as upstream,
        events_server(
            store_url, tmp_path / "server.log", proxy=True, upstream=upstream, env=env
        ) as server,
        chromium(tmp_path / "chromium") as browser,
    ):
        browser.navigate(f"{server.base_url}/browse.html")
        browser.wait_for("window.slotwise !== undefined && document.body !== null")
        # anonymous browsing: two product views, then an ad (not enough history yet)
        browser.evaluate("slotwise.productView('sku-1'); slotwise.productView('sku-2'); 1")
        browser.evaluate("slotwise.flush(); 1")
        _wait_events(store_url, 2)
        browser.evaluate(_FETCH_AD)
        seen["before"] = browser.wait_for("window.ad && window.ad.creative.headline")
        seen["cookie"] = browser.evaluate("document.cookie")
        # identify(), one more view as the known user, then an ad request through the proxy
        browser.evaluate("slotwise.identify('user-7'); slotwise.productView('sku-3'); 1")
        browser.evaluate("slotwise.flush(); 1")
        _wait_events(store_url, 3)
        _wait_history(store_url, "user-7", 3)
        browser.evaluate(_FETCH_AD)
        seen["after"] = browser.wait_for("window.ad && window.ad.creative.headline")
    return seen


def _wait_events(store_url: str, count: int) -> None:
    asyncio.run(_events(store_url, count))


def _wait_history(store_url: str, user: str, views: int) -> None:
    """Until the user's history holds ``views`` product views (written off the reply path)."""

    async def wait() -> None:
        async with open_store(store_url) as store:
            for _ in range(200):
                items = await store.history(history_key(user))
                if sum(item.event == "product_view" for item in items) >= views:
                    return
                await asyncio.sleep(0.05)
        raise AssertionError(f"{user}'s history never held {views} product views")

    asyncio.run(wait())


async def test_identify_then_an_ad_request_is_personalised_from_the_browsing(
    tmp_path: Path,
) -> None:
    url = f"sqlite://{tmp_path}/state.db"
    seen = await asyncio.to_thread(_identify_journey, tmp_path, url)
    assert seen["before"] == "Spring deals are here"  # two views: not yet
    assert seen["after"] == "Still thinking about it?"  # two anonymous + one known: three
    anon = dict(part.strip().split("=", 1) for part in seen["cookie"].split(";"))["sw_uid"]
    records = await _events(url, 3)
    views = [r["event"] for r in records if r["event"]["type"] == "product_view"]
    assert [v.get("anonymous_id") for v in views] == [anon] * 3  # the SDK sent the proxy's id
    assert [v.get("user_id") for v in views] == [None, None, "user-7"]
    async with open_store(url) as store:
        assert await store.get(alias_key(anon)) == b"user-7"
        subjects = [entry.subject for entry in await store.log_read("decisions")]
    assert subjects == [anon, anon]  # both decisions under the id the cookie carried
