"""Recommendations and re-ranks served in-process (ProxyApp in front of a fake storefront):
trending for a new visitor, last visit for a returning one, co-purchases in the cart, a
listing re-ranked by affinity, an item out of stock gone on the next request, trackers and
decision records. The same through `slotwise serve` and examples/storefront:
tests/proxy/recommend/test_storefront_e2e.py."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from slotwise.proxy.app import ProxyApp
from slotwise.proxy.config import Settings
from slotwise.proxy.decision_codec import decode_stored
from slotwise.proxy.decision_log import DecisionRecord
from tests.proxy.support import Canned, running, upstream_server

TOKEN = "catalogue-admin-token-0123456789"
ADMIN = {"authorization": f"Bearer {TOKEN}"}
POLICY = """policy "shop" version 1

recommend home_for_you at "$.sections.for_you.items" {
  new users: trending(24h)
  otherwise: last_visit(20 views)
  limit 4
  exclude unavailable, purchased
}

recommend cart_cross_sell at "$.cross_sell" {
  use also_bought(cart.items)
  limit 3
  exclude in_cart, unavailable
}

recommend product_similar at "$.product.similar" {
  use similar(cart.items)
  limit 3
  at most 1 per brand
  exclude unavailable
}

rerank category_listing at "$.products" by affinity(clicks: category, brand) limit 48
"""
ITEMS = [
    {"id": f"{category}-{n}", "title": f"{category} {n}", "category": category,
     "brand": brand, "price": 10.0 + n, "currency": "EUR", "url": f"https://shop.test/p/{category}-{n}",
     "image": f"https://cdn.test/{category}-{n}.jpg"}
    for category, brand in (("mugs", "acme"), ("bags", "tote"), ("lamps", "lumo"))
    for n in range(1, 7)
]  # fmt: skip
MUG = {"id": "mugs-1", "title": "mugs 1", "price": 11.0, "url": "https://shop.test/p/mugs-1"}
HOME = {"hero": {"title": "Welcome"}, "sections": {"for_you": {"title": "For you", "items": [MUG]}}}
LISTING = {"products": [{"id": i["id"], "title": i["title"]} for i in ITEMS]}


def _personal(user: str) -> dict[str, str]:
    return {"cookie": f"sw_consent=personal; sw_uid={user}"}


@dataclass
class Shop:
    client: httpx.AsyncClient
    app: ProxyApp


def _json(document: Any) -> Canned:
    return Canned(200, [("Content-Type", "application/json")], json.dumps(document).encode())


def _settings(upstream: str, feed: Path, policies: Path) -> Settings:
    return Settings.of(
        upstream_url=upstream,
        proxy_policies=str(policies),
        proxy_reload_interval=0.0,
        tracking_secret="slotwise-test-secret-0123456789",
        catalogue_feed=str(feed),
        catalogue_poll_interval=0.05,
        recommendations_refresh_interval=0.05,
        events={"admin_token": TOKEN, "admin_loopback_only": False},
        # what is asserted is the decision, not its speed: deadlines a loaded machine meets
        proxy_decision_deadline_ms=2000.0,
        proxy_signals_deadline_ms=5000.0,
        plugins={name: {"deadline_ms": 5000.0} for name in ("consent", "profile")},
    )


@asynccontextmanager
async def _shop(tmp_path: Path, policy: str = POLICY) -> AsyncIterator[Shop]:
    feed = tmp_path / "catalogue.jsonl"
    feed.write_text("".join(json.dumps(item) + "\n" for item in ITEMS))
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "shop.sw").write_text(policy)
    pages = {
        "/home": _json(HOME),
        "/cart": _json({"cart": [], "cross_sell": []}),
        "/product": _json({"product": {"id": "bags-1", "similar": []}}),
        "/category": _json(LISTING),
        "/page.html": Canned(200, [("Content-Type", "text/html")], b"<p>hello</p>"),
    }
    async with upstream_server(pages) as server:
        app = ProxyApp(_settings(server.url, feed, tmp_path / "policies"))
        async with running(app) as client:
            yield Shop(client, app)


async def _events(proxy: Shop, user: str | None, *events: dict[str, Any]) -> None:
    batch = []
    for n, event in enumerate(events):
        batch.append({"id": f"{user}-{time.time_ns()}-{n}", "time": time.time() - len(events) + n,
                      **({"user_id": user} if user else {}), **event})  # fmt: skip
    headers = _personal(user) if user else {"cookie": "sw_consent=personal"}
    response = await proxy.client.post("/_sw/events", json={"events": batch}, headers=headers)
    assert response.status_code in (200, 202), response.text


def _cart(product: str) -> dict[str, Any]:
    return {"type": "add_to_cart", "properties": {"product_id": product}}


def _view(product: str) -> dict[str, Any]:
    return {"type": "product_view", "properties": {"product_id": product}}


async def _until(check: Callable[[], Awaitable[Any]], timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = await check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError("not within the deadline")
        await asyncio.sleep(0.05)


def _ids(items: list[Any]) -> list[str]:
    return [item["id"] if isinstance(item, dict) else item for item in items]


async def _decisions(proxy: Shop) -> list[DecisionRecord]:
    runtime = proxy.app.runtime
    assert runtime is not None
    await runtime.engine.decision_log.flush()
    entries = await runtime.store.log_read("decisions", count=1000)
    return [decode_stored(e.data) for e in entries]


async def test_new_visitors_get_trending_and_returning_ones_their_last_visit(
    tmp_path: Path,
) -> None:
    async with _shop(tmp_path) as proxy:
        # other shoppers make lamps-2 and lamps-3 trend
        for n in range(3):
            await _events(proxy, f"crowd-{n}", _view("lamps-2"), _view("lamps-3"), _view("lamps-2"))

        async def trending() -> list[str] | None:
            page = (await proxy.client.get("/home", headers=_personal("newcomer"))).json()
            ids = _ids(page["sections"]["for_you"]["items"])
            return ids if ids[:2] == ["lamps-2", "lamps-3"] else None

        ids = await _until(trending)
        page = (await proxy.client.get("/home", headers=_personal("newcomer"))).json()
        first = page["sections"]["for_you"]["items"][0]
        # the storefront's own item shape, filled from the catalogue, and the trackers
        assert set(first) == {"id", "title", "price", "url", "tracking"}
        assert first["title"] == "lamps 2" and first["price"] == 12.0
        assert "p.campaign=home_for_you&p.slot=1&p.variant=lamps-2" in first["tracking"]["click"]
        assert ids == ["lamps-2", "lamps-3"]  # only what trends

        # a returning visitor (a second visit) who looked at bags
        await _events(
            proxy, "back", {"type": "session_start"}, _view("bags-4"), _view("bags-5"),
            {"type": "session_start"},
        )  # fmt: skip

        async def last_visit() -> list[str] | None:
            page = (await proxy.client.get("/home", headers=_personal("back"))).json()
            ids = _ids(page["sections"]["for_you"]["items"])
            return ids if ids[:2] == ["bags-5", "bags-4"] else None

        ids = await _until(last_visit)
        assert len(ids) == 4
        strategies = {(r.campaign, r.signals.get("recs.strategy")) for r in await _decisions(proxy)}
        assert ("home_for_you", "trending") in strategies
        assert any(s and s.startswith("last_visit") for c, s in strategies if c == "home_for_you")


async def test_the_cart_shows_what_was_bought_with_it_and_stock_changes_apply_at_once(
    tmp_path: Path,
) -> None:
    async with _shop(tmp_path) as proxy:
        for n in range(2):
            order = {"type": "purchase", "properties": {
                "order_id": f"o{n}", "value": 30.0, "currency": "EUR",
                "items": [{"product_id": "mugs-1"}, {"product_id": "bags-2"},
                          {"product_id": "lamps-4"}]}}  # fmt: skip
            await _events(proxy, f"buyer-{n}", order)
        await _events(proxy, "shopper", _cart("mugs-1"), _cart("bags-2"))

        async def cross_sell() -> list[str] | None:
            page = (await proxy.client.get("/cart", headers=_personal("shopper"))).json()
            ids = _ids(page["cross_sell"])
            return ids if ids else None

        assert await _until(cross_sell) == ["lamps-4"]  # in the cart: mugs-1, bags-2
        response = await proxy.client.patch(
            "/_sw/admin/catalogue/items/lamps-4", json={"available": False}, headers=ADMIN
        )
        assert response.status_code == 200 and response.json()["available"] is False
        page = (await proxy.client.get("/cart", headers=_personal("shopper"))).json()
        assert "lamps-4" not in _ids(page["cross_sell"])
        # the listing keeps it, after every available item
        listing = (await proxy.client.get("/category", headers=_personal("shopper"))).json()
        assert _ids(listing["products"])[-1] == "lamps-4"
        # admin errors: unknown item, bad patch, no token
        unknown = await proxy.client.patch(
            "/_sw/admin/catalogue/items/nope", json={"available": False}, headers=ADMIN
        )
        assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "unknown_item"
        bad = await proxy.client.patch(
            "/_sw/admin/catalogue/items/mugs-2", json={"price": -1}, headers=ADMIN
        )
        assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_item"
        anonymous = await proxy.client.patch(
            "/_sw/admin/catalogue/items/mugs-2", json={"available": False}
        )
        assert anonymous.status_code == 401


async def test_listings_are_reranked_toward_what_the_visitor_clicked(tmp_path: Path) -> None:
    async with _shop(tmp_path) as proxy:
        listing = (await proxy.client.get("/category", headers=_personal("lamp-fan"))).json()
        assert _ids(listing["products"]) == _ids(LISTING["products"])  # nothing known yet
        await _events(proxy, "lamp-fan", _view("lamps-1"), _view("lamps-5"), _view("lamps-6"))

        async def reranked() -> list[str] | None:
            page = (await proxy.client.get("/category", headers=_personal("lamp-fan"))).json()
            ids = _ids(page["products"])
            return ids if ids[0].startswith("lamps") else None

        ids = await _until(reranked)
        assert ids[:6] == [f"lamps-{n}" for n in range(1, 7)]  # in the upstream's order
        assert sorted(ids) == sorted(_ids(LISTING["products"]))
        records = [r for r in await _decisions(proxy) if r.campaign == "category_listing"]
        assert records and records[-1].slots[0].variant == "lamps-1"


async def test_similar_items_on_a_product_page_exclude_the_page_and_keep_brands_diverse(
    tmp_path: Path,
) -> None:
    async with _shop(tmp_path) as proxy:
        page = (await proxy.client.get("/product", headers=_personal("someone"))).json()
        ids = _ids(page["product"]["similar"])
        # bags-1's category: all of one brand, so "at most 1 per brand" leaves one
        assert ids == ["bags-2"] or (
            len(ids) == 1 and ids[0].startswith("bags") and ids[0] != "bags-1"
        )
        assert set(page["product"]["similar"][0]) >= {"id", "title", "price", "tracking"}


@pytest.mark.parametrize("bad", ['{"id": "x", "price": "cheap"}\n', "not json\n"])
async def test_a_bad_feed_stops_the_start_naming_the_line(tmp_path: Path, bad: str) -> None:
    feed = tmp_path / "catalogue.jsonl"
    feed.write_text(json.dumps(ITEMS[0]) + "\n" + bad)
    (tmp_path / "policies").mkdir()
    app = ProxyApp(_settings("http://127.0.0.1:9", feed, tmp_path / "policies"))
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    task = asyncio.create_task(app({"type": "lifespan"}, inbox.get, outbox.put))
    await inbox.put({"type": "lifespan.startup"})
    started = await outbox.get()
    await task
    assert started["type"] == "lifespan.startup.failed"
    assert "catalogue.jsonl:2" in started["message"]


def test_slotwise_serve_refuses_a_bad_feed_before_any_worker(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from slotwise.proxy.cli import main

    feed = tmp_path / "catalogue.jsonl"
    feed.write_text('{"id": "a"}\n{"id": "b", "price": "cheap"}\n')
    config = tmp_path / "slotwise.toml"
    config.write_text(f'[catalogue]\nfeed = "{feed}"\n')
    argv = ["serve", "--config", str(config), "--upstream", "http://127.0.0.1:1"]
    assert main([*argv, "--policies", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "the catalogue feed (catalogue.feed) is invalid" in err and "catalogue.jsonl:2" in err
    config.write_text(f'[catalogue]\nfeed = "{tmp_path / "absent.jsonl"}"\n')
    assert main([*argv, "--policies", str(tmp_path)]) == 1
    assert "cannot read the catalogue feed" in capsys.readouterr().err


async def test_one_store_read_per_request_and_none_for_pages_without_item_lists(
    tmp_path: Path,
) -> None:
    async with _shop(tmp_path) as proxy:
        runtime = proxy.app.runtime
        assert runtime is not None
        store = runtime.store
        calls: list[list[str]] = []
        original = store.scores_top

        async def counted(keys: Any, count: int) -> Any:
            if any(k.startswith(("recs:cv:", "recs:cb:")) for k in keys):
                calls.append(list(keys))
            return await original(keys, count)

        store.scores_top = counted
        await _events(proxy, "reader", _cart("mugs-1"), _cart("bags-2"), _view("lamps-1"))

        async def cart_known() -> bool:
            calls.clear()
            await proxy.client.get("/cart", headers=_personal("reader"))
            return len(calls) == 1 and len(calls[0]) == 2

        await _until(cart_known)  # also_bought of the two cart items: one read, two keys
        calls.clear()
        await proxy.client.get("/category", headers=_personal("reader"))
        assert calls == []  # a re-rank reads the visitor's history only (with the signals)
        await proxy.client.get("/product", headers=_personal("reader"))
        assert calls == []  # similar(...) ranks from the catalogue: no neighbours to read


async def test_pages_that_are_not_json_stop_costing_a_signal_gather(tmp_path: Path) -> None:
    async with _shop(tmp_path) as proxy:
        gathers = proxy.app.metrics.signal_gathers.values
        for _ in range(3):
            response = await proxy.client.get("/page.html", headers=_personal("someone"))
            assert response.text == "<p>hello</p>"
        assert gathers.get("early") == 1  # the first only: the path is remembered
        page = (await proxy.client.get("/home", headers=_personal("someone"))).json()
        assert page["sections"]["for_you"]["items"] is not None
        assert gathers.get("early") == 2


async def test_the_control_group_gets_the_shops_own_lists_tracked_alike(tmp_path: Path) -> None:
    # everyone in the control group: the upstream's lists and order, each item tracked at its
    # position, decisions recorded as holdout with the share
    policy = POLICY.replace("  limit 4\n", "  limit 4\n  holdout 100%\n", 1).replace(
        "limit 48", "limit 48 holdout 100%"
    )
    async with _shop(tmp_path, policy) as proxy:
        await _events(proxy, "others", _view("lamps-2"), _view("lamps-2"), _view("lamps-3"))
        await _events(proxy, "lamp-fan", _view("lamps-1"), _view("lamps-5"), _view("lamps-6"))

        async def tracked() -> dict[str, Any] | None:
            home = (await proxy.client.get("/home", headers=_personal("new-visitor"))).json()
            return home if "tracking" in home["sections"]["for_you"]["items"][0] else None

        home = await _until(tracked)
        (item,) = home["sections"]["for_you"]["items"]
        assert {k: v for k, v in item.items() if k != "tracking"} == MUG
        assert "p.slot=1" in item["tracking"]["impression"]

        async def listed() -> dict[str, Any] | None:
            page = (await proxy.client.get("/category", headers=_personal("lamp-fan"))).json()
            return page if "tracking" in page["products"][0] else None

        page = await _until(listed)
        assert _ids(page["products"]) == _ids(LISTING["products"])  # the upstream's order
        assert all("tracking" in entry for entry in page["products"])
        records = {r.campaign: r for r in await _decisions(proxy)}
        for name, first in (("home_for_you", "mugs-1"), ("category_listing", "mugs-1")):
            record = records[name]
            assert record.holdout and record.holdout_share == 1.0
            assert record.slots[0].variant == first
            assert record.signals["recs.strategy"]
