"""The storefront part of `slotwise demo`: examples/storefront behind its own proxy.

A short shopper's journey through real processes (the shop's JSON API on granian, `slotwise
serve` with the shop's catalogue as its feed and examples/storefront/policies): a crowd makes
products trend, a new visitor's home page shows them; a returning visitor who browsed the
kitchen gets "based on your last visit" and a listing re-ranked toward the brand they looked
at; a cart gets what others bought with its item. Each step waits (briefly) for the
recommenders' state, which the proxy keeps up to date from the events it collects.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx

from slotwise.proxy.cli.demo import EXAMPLES, _process, _wait_ready
from slotwise.proxy.loopback import free_port

SHOP = EXAMPLES / "storefront"
T = TypeVar("T")
_CONFIG = """[catalogue]
feed = "{feed}"
poll_interval = 0.2

[recommendations]
refresh_interval = 0.2

[tracking]
user_cookie_secure = false  # plain http on loopback: the visitor's id cookie comes back
"""


class _Visitor:
    """A browser with personal consent: the proxy's id cookie, and the SDK's events."""

    def __init__(self, base: str) -> None:
        self.client = httpx.Client(base_url=base, cookies={"sw_consent": "personal"}, timeout=10)
        self.sent = 0

    def get(self, path: str) -> Any:
        response = self.client.get(path)
        response.raise_for_status()
        return response.json()

    def event(self, kind: str, **properties: Any) -> None:
        self.sent += 1
        user = self.client.cookies.get("sw_uid") or "anonymous"
        event = {"type": kind, "id": f"{user}-{self.sent}", "time": time.time(),
                 "anonymous_id": user, "properties": properties}  # fmt: skip
        self.client.post("/_sw/events", json={"events": [event]}).raise_for_status()

    def view(self, product: str) -> None:
        self.get(f"/api/products/{product}")
        self.event("product_view", product_id=product)


def _until(check: Callable[[], T | None], seconds: float = 10.0) -> T | None:
    deadline = time.monotonic() + seconds
    while (found := check()) is None and time.monotonic() < deadline:
        time.sleep(0.1)
    return found


def _titles(items: list[dict[str, Any]], count: int = 3) -> str:
    return ", ".join(f"{item['title']!r}" for item in items[:count]) or "(none)"


def run_storefront(tmp: Path, env: dict[str, str]) -> bool:
    """The journey through the shop and its proxy, printed; False when the proxy failed."""
    items = [json.loads(line) for line in (SHOP / "catalogue.jsonl").read_text().splitlines()]
    stocked = [i for i in items if i["available"]]
    hot = [i["id"] for i in stocked if i["category"] == "candles-and-lights"][:3]
    bundle = [i["id"] for i in stocked if i["category"] == "garden"][:3]
    liked = [i["id"] for i in stocked if i["category"] == "kitchen" and i["brand"] == "Retrospot"]
    config = tmp / "shop.toml"
    config.write_text(_CONFIG.format(feed=SHOP / "catalogue.jsonl"))
    shop_port, proxy_port = free_port(), free_port()
    shop = [sys.executable, "-m", "granian", "--interface", "asgi", "--port", str(shop_port),
            "--log-level", "warning", "slotwise.examples.storefront.app:app"]  # fmt: skip
    proxy = [sys.executable, "-m", "slotwise", "serve", "--config", str(config),
             "--upstream", f"http://127.0.0.1:{shop_port}", "--policies", str(SHOP / "policies"),
             "--port", str(proxy_port), "--store", f"sqlite:///{tmp}/shop.db"]  # fmt: skip
    with (
        _process(shop, env, tmp / "shop.log"),
        _process(proxy, env, tmp / "shop-proxy.log") as running,
    ):
        base = f"http://127.0.0.1:{proxy_port}"
        if not _wait_ready(base, running, tmp / "shop-proxy.log"):
            return False
        print(f"Storefront: examples/storefront ({len(items):,} products) behind {base}")
        crowd, newcomer, regular = (
            [_Visitor(base) for _ in range(3)],
            _Visitor(base),
            _Visitor(base),
        )
        _until(lambda: True if _up(base) else None)  # the shop answers through the proxy
        for shopper in crowd:  # views make `hot` trend; an order buys `bundle` together
            shopper.get("/api/home")
            for product, times in zip(hot, (4, 3, 2), strict=True):
                for _ in range(times):
                    shopper.view(product)
        order = {"order_id": "demo-1", "value": 10.0, "currency": "GBP",
                 "items": [{"product_id": p} for p in bundle]}  # fmt: skip
        crowd[0].event("purchase", **order)

        def for_you(visitor: _Visitor, first: str) -> list[dict[str, Any]] | None:
            found: list[dict[str, Any]] = visitor.get("/api/home")["sections"]["for_you"]["items"]
            return found if found and found[0]["id"] == first else None

        shown = _until(lambda: for_you(newcomer, hot[0])) or []
        print(f"  a new visitor's home, for you:      trending  {_titles(shown)}")
        regular.get("/api/home")
        regular.event("session_start")
        before = regular.get("/api/categories/kitchen")["products"]
        for product in liked[:3]:
            regular.view(product)
        regular.event("session_start")  # the next visit
        shown = _until(lambda: for_you(regular, liked[2])) or []
        print(f"  after browsing the kitchen, home:   last visit {_titles(shown)}")

        def reranked() -> list[dict[str, Any]] | None:
            found: list[dict[str, Any]] = regular.get("/api/categories/kitchen")["products"]
            return found if [i["id"] for i in found] != [i["id"] for i in before] else None

        after = _until(reranked) or before
        brands = [i["brand"] for i in after[:5]]
        print(
            f"  the kitchen listing, first five:    {', '.join(brands)}  (was "
            f"{', '.join(i['brand'] for i in before[:5])})"
        )
        regular.client.post("/api/cart/items", json={"product_id": bundle[0]})
        regular.event("add_to_cart", product_id=bundle[0])

        def cross_sell() -> list[dict[str, Any]] | None:
            found: list[dict[str, Any]] = regular.get("/api/cart")["cross_sell"]
            return found or None

        in_cart = next(i for i in items if i["id"] == bundle[0])
        together = _titles(_until(cross_sell) or [], 2)
        print(f"  a cart with {in_cart['title']!r}:  bought with it {together}\n")
        for visitor in (*crowd, newcomer, regular):
            visitor.client.close()
    return True


def _up(base: str) -> bool:
    """Whether the shop answers through the proxy (granian may still be starting)."""
    try:
        return httpx.get(f"{base}/health", timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False
