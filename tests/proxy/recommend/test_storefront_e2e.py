"""End to end through `slotwise serve` in front of examples/storefront (real processes on
loopback): a new visitor gets trending on the home page; after browsing a category, on their
next visit, the home page shows their last visit and the category listing is re-ranked toward
what they clicked; the cart shows co-purchased items in stock and not in the cart; an item
going out of stock leaves every list on the next request."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import REPO
from tests.proxy.support import wait_ready
from tests.support.servers import free_port

pytestmark = pytest.mark.slow
SHOP = REPO / "examples" / "storefront"
TOKEN = "storefront-e2e-admin-token-0123456789"
ITEMS = [json.loads(line) for line in (SHOP / "catalogue.jsonl").read_text().splitlines()]
BY_ID = {item["id"]: item for item in ITEMS}
CONFIG = """
[catalogue]
feed = "{feed}"
poll_interval = 0.2

[recommendations]
refresh_interval = 0.2

[proxy]
decision_deadline_ms = 2000.0
signals_deadline_ms = 5000.0

[tracking]
user_cookie_secure = false  # plain http on loopback: the browser must send it back

[plugins.profile]
deadline_ms = 5000.0

[plugins.consent]
deadline_ms = 5000.0
"""


@asynccontextmanager
async def _process(argv: list[str], log: Path) -> AsyncIterator[None]:
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
        SLOTWISE_PLUGINS="builtins",
        SLOTWISE_ADMIN_TOKEN=TOKEN,
    )
    with log.open("wb") as out:
        process = await asyncio.create_subprocess_exec(
            *argv, cwd=REPO, env=env, stdout=out, stderr=asyncio.subprocess.STDOUT
        )
        try:
            yield
        finally:
            process.terminate()
            await asyncio.wait_for(process.wait(), 15)


@asynccontextmanager
async def _storefront_behind_slotwise(
    tmp_path: Path, policies: Path = SHOP / "policies"
) -> AsyncIterator[str]:
    shop_port, proxy_port = free_port(), free_port()
    config = tmp_path / "slotwise.toml"
    config.write_text(CONFIG.format(feed=SHOP / "catalogue.jsonl"))
    shop = [
        sys.executable,
        "-m",
        "granian",
        "--interface",
        "asgi",
        "--host",
        "127.0.0.1",
        "--port",
        str(shop_port),
        "--log-level",
        "warning",
        "examples.storefront.app:app",
    ]
    store = f"sqlite://{tmp_path}/state.db?timeout=2"  # reads a loaded machine can answer
    proxy = [sys.executable, "-m", "slotwise", "serve", "--config", str(config),
             "--upstream", f"http://127.0.0.1:{shop_port}", "--policies", str(policies),
             "--port", str(proxy_port), "--store", store]  # fmt: skip
    async with (
        _process(shop, tmp_path / "shop.log"),
        _process(proxy, tmp_path / "proxy.log"),
    ):
        base = f"http://127.0.0.1:{proxy_port}"
        async with httpx.AsyncClient(base_url=base) as client:
            await wait_ready(client)
            for _ in range(200):  # the storefront answers through the proxy
                try:
                    if (await client.get("/health")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.05)
        yield base


class Visitor:
    """A browser: the consent and id cookies, and the SDK's events sent through the proxy."""

    def __init__(self, base: str) -> None:
        self.client = httpx.AsyncClient(base_url=base, cookies={"sw_consent": "personal"})
        self.sent = 0

    @property
    def id(self) -> str:
        user = self.client.cookies.get("sw_uid")
        assert user, "the proxy issues the id cookie to a consenting visitor"
        return user

    async def get(self, path: str) -> Any:
        response = await self.client.get(path, timeout=10)
        assert response.status_code == 200, response.text
        return response.json()

    async def events(self, *events: dict[str, Any]) -> None:
        batch = []
        for event in events:
            self.sent += 1
            batch.append({"id": f"{self.id}-{self.sent}", "time": time.time(),
                          "anonymous_id": self.id, **event})  # fmt: skip
        response = await self.client.post("/_sw/events", json={"events": batch})
        assert response.status_code in (200, 202), response.text

    async def view(self, product: str) -> None:
        await self.get(f"/api/products/{product}")
        await self.events({"type": "product_view", "properties": {"product_id": product}})

    async def aclose(self) -> None:
        await self.client.aclose()


SEEN: list[Any] = []


async def _until(check: Callable[[], Awaitable[Any]], timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = await check()
        if found:
            return found
        assert time.monotonic() < deadline, f"not within the deadline; last seen {SEEN[-1:]}"
        await asyncio.sleep(0.1)


def _ids(items: list[dict[str, Any]]) -> list[str]:
    return [item["id"] for item in items]


def _kitchen(brand: str, count: int) -> list[str]:
    return [i["id"] for i in ITEMS if i["category"] == "kitchen" and i["brand"] == brand
            and i["available"]][:count]  # fmt: skip


async def test_the_storefront_through_slotwise_serve(tmp_path: Path) -> None:
    hot = [i["id"] for i in ITEMS if i["category"] == "candles-and-lights" and i["available"]][:3]
    bundle = [i["id"] for i in ITEMS if i["category"] == "garden" and i["available"]][:3]
    clicked = _kitchen("Retrospot", 3)
    async with _storefront_behind_slotwise(tmp_path) as base:
        crowd = [Visitor(base) for _ in range(3)]
        newcomer, regular = Visitor(base), Visitor(base)
        try:
            # the crowd: views that make `hot` trend, orders that buy `bundle` together
            for shopper in crowd:
                await shopper.get("/api/home")
                for product, times in zip(hot, (4, 3, 2), strict=True):
                    for _ in range(times):
                        await shopper.view(product)
            order = {"order_id": "o1", "value": 10.0, "currency": "GBP",
                     "items": [{"product_id": p} for p in bundle]}  # fmt: skip
            await crowd[0].events({"type": "purchase", "properties": order})

            # 1. a new visitor gets trending on the home page
            async def trending() -> list[str] | None:
                page = await newcomer.get("/api/home")
                ids = _ids(page["sections"]["for_you"]["items"])
                SEEN.append((ids, hot))
                return ids if ids[:3] == hot and set(ids[3:]) == set(bundle) else None

            await _until(trending)  # the most viewed, then the bought (counted, fewer)
            first = (await newcomer.get("/api/home"))["sections"]["for_you"]["items"][0]
            assert {k: first[k] for k in ("title", "price", "url")} == {
                k: BY_ID[hot[0]][k] for k in ("title", "price", "url")
            }
            assert "/_sw/px?t=click" in first["tracking"]["click"]

            # 2. a visitor browses the kitchen, clicks Retrospot products; next visit...
            await regular.get("/api/home")
            await regular.events({"type": "session_start"})
            listing_before = await regular.get("/api/categories/kitchen")
            for product in clicked:
                await regular.view(product)
            await regular.events({"type": "session_start"})

            async def last_visit() -> list[str] | None:
                page = await regular.get("/api/home")
                ids = _ids(page["sections"]["for_you"]["items"])
                SEEN.append((ids, clicked[::-1]))
                return ids if ids[:3] == clicked[::-1] else None

            await _until(last_visit)  # "based on your last visit": newest first

            # ... and the kitchen listing puts what they clicked (Retrospot) first
            async def reranked() -> list[str] | None:
                page = await regular.get("/api/categories/kitchen")
                ids = _ids(page["products"])
                return ids if ids != _ids(listing_before["products"]) else None

            ids = await _until(reranked)
            assert sorted(ids) == sorted(_ids(listing_before["products"]))
            before = _ids(listing_before["products"])
            liked = [i for i in ids if BY_ID[i]["brand"] == "Retrospot" and BY_ID[i]["available"]]
            # blended with the shop's order: every Retrospot product in stock moves up (or
            # stays) and the first of the page is one; out-of-stock products go last
            assert liked and BY_ID[ids[0]]["brand"] == "Retrospot"
            assert all(ids.index(i) <= before.index(i) for i in liked)
            assert any(ids.index(i) < before.index(i) for i in liked)
            out = [i for i in ids if not BY_ID[i]["available"]]
            assert ids[len(ids) - len(out) :] == out

            # 3. the cart shows what was bought with its item, in stock and not in the cart
            await regular.client.post("/api/cart/items", json={"product_id": bundle[0]})
            await regular.events({"type": "add_to_cart", "properties": {"product_id": bundle[0]}})

            async def cross_sell() -> list[str] | None:
                ids = _ids((await regular.get("/api/cart"))["cross_sell"])
                return ids if set(ids) == set(bundle[1:]) else None

            await _until(cross_sell)

            # 4. out of stock: gone from every list on the next request
            gone = bundle[1]
            response = await regular.client.patch(
                f"/_sw/admin/catalogue/items/{gone}",
                json={"available": False},
                headers={"authorization": f"Bearer {TOKEN}"},
            )
            assert response.status_code == 200, response.text
            assert gone not in _ids((await regular.get("/api/cart"))["cross_sell"])
            home = await newcomer.get("/api/home")
            assert gone not in _ids(home["sections"]["for_you"]["items"])
            product = await newcomer.get(f"/api/products/{bundle[0]}")
            assert gone not in _ids(product["product"]["similar"])
        finally:
            for each in (*crowd, newcomer, regular):
                await each.aclose()
