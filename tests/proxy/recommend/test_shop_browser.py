"""The SDK page examples/shop/storefront.html in headless Chromium, talking to the example
storefront through `slotwise serve`: the home page's list is trending for a first visit, the
product pages the visitor opens are sent by the SDK, and on the next visit the home page shows
them first (last visit); the page fires each shown item's impression pixel."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest

from slotwise.proxy.cli import main
from slotwise.proxy.events.collector import StoredEvent
from slotwise.proxy.state import open_store
from tests.proxy.recommend.test_storefront_e2e import (
    ITEMS,
    Visitor,
    _kitchen,
    _storefront_behind_slotwise,
)
from tests.support.chromium import chromium

pytestmark = [pytest.mark.slow, pytest.mark.browser]


def _journey(base: str, profile: Path, hot: list[str], clicked: list[str]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    with chromium(profile) as browser:
        browser.navigate(f"{base}/shop/storefront.html")
        browser.wait_for("window.shop !== undefined && shop.rendered.for_you !== undefined")
        deadline = time.monotonic() + 20
        while True:  # the crowd's views reach trending within a refresh
            ids = browser.evaluate("shop.rendered.for_you")
            if ids[:3] == hot or time.monotonic() > deadline:
                break
            browser.evaluate("window.r = null; shop.home().then(x => { window.r = x; }); 1")
            browser.wait_for("window.r")
        seen["first visit"] = ids
        # a click on the first recommended item opens its page; it goes into the cart
        browser.evaluate("window.r = null; document.querySelector('#for_you a').click(); 1")
        browser.wait_for("document.getElementById('add') !== null")
        browser.evaluate("document.getElementById('add').click(); 1")
        for product in clicked:  # the visitor opens three product pages
            browser.evaluate(f"window.r = null; shop.product({json.dumps(product)})"
                             ".then(x => { window.r = x || []; }); 1")  # fmt: skip
            browser.wait_for("window.r")
        browser.evaluate("slotwise.flush(); 1")
        seen["uid"] = browser.evaluate(
            "document.cookie.split('; ').find(c => c.startsWith('sw_uid=')).slice(7)"
        )
        # the next visit: a new browser session, a new session_start
        # (the old page is marked: what is waited for is the new one, however slow it comes)
        browser.evaluate(
            "window.oldPage = 1; sessionStorage.clear(); location.replace(location.pathname); 1"
        )
        browser.wait_for(
            "window.oldPage === undefined && window.shop !== undefined"
            " && shop.rendered.for_you !== undefined"
        )
        deadline = time.monotonic() + 20
        while True:
            browser.evaluate("window.r = null; shop.home().then(x => { window.r = x; }); 1")
            ids = browser.wait_for("window.r")
            if ids[:3] == clicked[::-1] or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        seen["next visit"] = ids
    return seen


async def test_the_sdk_page_through_the_proxy(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    hot = [i["id"] for i in ITEMS if i["category"] == "candles-and-lights" and i["available"]][:3]
    clicked = _kitchen("Retrospot", 3)
    async with _storefront_behind_slotwise(tmp_path) as base:
        crowd = [Visitor(base) for _ in range(2)]
        try:
            for shopper in crowd:
                await shopper.get("/api/home")
                for product, times in zip(hot, (4, 3, 2), strict=True):
                    for _ in range(times):
                        await shopper.view(product)
        finally:
            for shopper in crowd:
                await shopper.aclose()
        seen = await asyncio.to_thread(_journey, base, tmp_path / "chromium", hot, clicked)
    assert seen["first visit"][:3] == hot
    assert seen["next visit"][:3] == clicked[::-1]
    async with open_store(f"sqlite://{tmp_path}/state.db") as store:
        entries = await store.log_read("events", count=1000)
    events = [json.loads(e.data)["event"] for e in entries]
    StoredEvent  # noqa: B018 - the records are StoredEvent objects (docs/events.md)
    mine = [e for e in events if e.get("anonymous_id") == seen["uid"]]
    viewed = [e["properties"]["product_id"] for e in mine if e["type"] == "product_view"]
    assert viewed == [hot[0], *clicked]
    assert sum(e["type"] == "session_start" for e in mine) == 2
    shown = [e for e in events if e["type"] == "impression"
             and e.get("properties", {}).get("campaign") == "home_for_you"]  # fmt: skip
    assert {e["properties"]["slot"] for e in shown} >= {"1", "2", "3"}
    # the section's KPIs: impressions by position, the click on position 1, the add-to-cart
    code = await asyncio.to_thread(
        main, ["recs", "report", "--store", f"sqlite://{tmp_path}/state.db", "--format", "json"]
    )
    assert code == 0
    kpis = {k["name"]: k for k in json.loads(capsys.readouterr().out)}
    home = kpis["home_for_you"]
    assert home["decisions"] >= 2 and home["strategies"]["trending"] >= 1
    assert home["impressions"] >= 3 and home["clicks"] == 1 and home["carts"] == 1
    assert home["positions"]["1"][1] == 1
