"""A daily discount budget per offer set, enforced across proxies through one Redis: what the
offers of one proxy cost, bought through another, stops the discounts of both."""

from __future__ import annotations

import asyncio
from pathlib import Path

from testing.proxy import Canned, ProxyUnderTest, proxy_client
from tests.support.servers import redis_server

POLICY = """policy "budget" version 1

offers checkout {
  slot at "$.offer"
  arms none, discount 10%, discount 20%
}
"""
CART = Canned.json({"cart": {"subtotal": 100.0, "count": 2}, "offer": None})


async def _offer(proxy: ProxyUnderTest) -> dict[str, object]:
    offer = (await proxy.client.get("/cart")).json()["offer"]
    assert isinstance(offer, dict)
    return offer


async def test_a_spent_budget_stops_discounts_on_every_proxy(tmp_path: Path) -> None:
    with redis_server(tmp_path) as redis:
        settings = {
            "store_url": redis.url,
            "offers": {"base_currency": "USD", "budgets": {"checkout": 25.0},
                       "budget_refresh": 0.1},
        }  # fmt: skip
        routes = {"/cart": CART}
        async with (
            proxy_client(routes, policies={"o.sw": POLICY}, **settings) as first,
            proxy_client(routes, policies={"o.sw": POLICY}, **settings) as second,
        ):
            offers: dict[object, dict[str, object]] = {}
            while len(offers) < 2:  # a 10% and a 20% offer of the first proxy
                offer = await _offer(first)
                if offer["type"] == "discount":
                    offers.setdefault(offer["value"], offer)
            discounts = [offers[10], offers[20]]
            await asyncio.sleep(0.5)  # its ledger reaches the store off the request path
            bought = [
                {
                    "type": "purchase",
                    "id": f"p{i}",
                    "properties": {
                        "order_id": f"o{i}",
                        "items": [{"product_id": "a", "price": 50.0, "quantity": 2}],
                        "value": 100.0 - float(str(offer["value"])),
                        "currency": "USD",
                        "offer_id": offer["id"],
                    },
                }
                for i, offer in enumerate(discounts)
            ]
            # the purchases arrive at the other proxy: 10 of 25 spent, discounts go on
            answer = await second.client.post("/_sw/events", json={"events": bought[:1]})
            assert answer.status_code == 200, answer.text
            await asyncio.sleep(0.5)
            kinds = {(await _offer(proxy))["type"] for proxy in (first, second) for _ in range(10)}
            assert "discount" in kinds
            # 10 + 20 of 25: spent; within a few refresh intervals, both proxies stop
            answer = await second.client.post("/_sw/events", json={"events": bought[1:]})
            assert answer.status_code == 200, answer.text
            for proxy in (first, second):
                runtime = proxy.app.runtime
                assert runtime is not None and runtime.engine.offers.budgets is not None
                for _ in range(200):
                    if "checkout" in runtime.engine.offers.budgets.spent:
                        break
                    await asyncio.sleep(0.05)
                for _ in range(30):
                    assert (await _offer(proxy))["type"] == "none"
