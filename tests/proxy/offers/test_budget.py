"""A daily discount budget per offer set, enforced across proxies through one Redis: what the
offers of one proxy cost, bought through another, stops the discounts of both."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from slotwise.proxy.events.schema import Item, PurchaseEvent, PurchaseProps
from slotwise.proxy.offer_budget import OfferBudgets, budget_key, day_of, ledger_key
from slotwise.proxy.offers_config import OffersConfig
from slotwise.proxy.state import open_store
from testing.proxy import Canned, ProxyUnderTest, proxy_client
from tests.support.servers import redis_server
from tests.support.timing import clear_of_boundary

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
    await clear_of_boundary(86_400.0, 60.0)  # every charge in one day's budget
    with redis_server(tmp_path) as redis:
        settings = {
            "store_url": redis.url,
            # what is under test is the budget, not the deadline: a loaded machine must not
            # turn a decision into a fail-open
            "proxy_decision_deadline_ms": 1000.0,
            "proxy_signals_deadline_ms": 500.0,
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
            # its ledger reaches the store off the request path: a purchase before it is not
            # charged (no ledger entry), so wait for both entries
            runtime = first.app.runtime
            assert runtime is not None
            ledger = [ledger_key(str(offer["id"]).partition(".")[0]) for offer in discounts]
            for _ in range(200):
                if None not in await runtime.store.get_many(ledger):
                    break
                await asyncio.sleep(0.05)
            else:
                raise AssertionError("the offers' ledger never reached the store")
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
                else:
                    raise AssertionError("the spent budget was never seen")
                for _ in range(30):
                    assert (await _offer(proxy))["type"] == "none"


def _purchase(offer_id: str | None, discount: float | None = None) -> PurchaseEvent:
    props = PurchaseProps(
        order_id="o",
        items=[Item(product_id="a", price=50.0, quantity=2)],
        value=90.0,
        currency="USD",
        offer_id=offer_id,
        discount=discount,
    )
    return PurchaseEvent(id="p", time=time.time(), properties=props)


async def test_only_redeemed_offers_of_budgeted_sets_are_charged() -> None:
    config = OffersConfig(base_currency="USD", budgets={"checkout": 30.0})
    await clear_of_boundary(86_400.0)  # every charge in one day's budget
    async with open_store("memory://") as store:
        budgets = OfferBudgets(store, config)
        budgets.served("D1", "checkout")
        budgets.served("D2", "elsewhere")  # no budget: not in the ledger
        await budgets.flush()
        await budgets.charge([
            _purchase("D1.discount_10"),  # 10% of 100
            _purchase("D1.none"),  # no offer: nothing
            _purchase("D2.discount_10"),  # not a budgeted set's decision
            _purchase(None),  # no offer id
            _purchase("D1.discount_10", discount=4.5),  # the shop says what it applied
        ])  # fmt: skip
        key = budget_key("checkout", day_of(time.time()))
        assert await store.counter(key) == 1450  # cents: 10.00 + 4.50
        assert await budgets.refresh() == frozenset()
        await budgets.charge([_purchase("D1.discount_20")])  # 20 more: 34.50 of 30
        assert await budgets.refresh() == frozenset({"checkout"})
