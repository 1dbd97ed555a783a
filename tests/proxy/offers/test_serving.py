"""Offer sets served by the proxy: the offer at its location, guards as eligibility, control
keeps the upstream's offer, the decision record says what was offered and what was removed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from slotwise.proxy.cli import main
from slotwise.proxy.decision_codec import decode_stored
from slotwise.proxy.decision_log import DecisionRecord
from testing.proxy import Canned, ProxyUnderTest, proxy_client

# what these tests check is the choice, not the deadline: a loaded machine must not turn a
# decision into a fail-open (the upstream's page unchanged)
PATIENT = {"proxy_decision_deadline_ms": 1000.0, "proxy_signals_deadline_ms": 500.0}

POLICY = """policy "offers" version 1

segment loyal: "loyal" in user.segments

offers checkout {
  slot at "$.offer"
  arms none, discount 5%..25% step 5%, free_shipping, bogo
  optimize revenue - discount_cost
  guard discount <= 10% when cart.value < 30
  guard no bogo when cart.count < 2
  guard no free_shipping when geo.country not in ["DE", "AT"]
}
"""

HELD_OUT = POLICY.replace("optimize revenue", "holdout 100%\n  optimize revenue")


def cart(value: float, count: int, offer: Any = None) -> Canned:
    return Canned.json(
        {
            "cart": {"subtotal": value, "count": count, "currency": "USD", "items": []},
            "offer": offer,
        }
    )


async def _records(proxy: ProxyUnderTest) -> list[DecisionRecord]:
    runtime = proxy.app.runtime
    assert runtime is not None
    await runtime.engine.decision_log.flush()
    entries = await runtime.store.log_read("decisions", count=10_000)
    return [decode_stored(e.data) for e in entries]


async def test_a_cart_gets_an_offer_at_its_location() -> None:
    routes = {"/cart": cart(120.0, 3), "/home": Canned.json({"hero": "x"})}
    async with proxy_client(
        routes, policies={"o.sw": POLICY}, plugins="builtins", **PATIENT
    ) as proxy:
        body = (await proxy.client.get("/cart", headers={"CF-IPCountry": "US"})).json()
        offer = body["offer"]
        assert set(offer) >= {"id", "type", "value", "label", "terms"}
        decision_id, _, arm = offer["id"].partition(".")
        assert offer["type"] != "free_shipping"  # guarded in the US
        assert body["cart"]["subtotal"] == 120.0
        home = await proxy.client.get("/home")
        assert home.json() == {"hero": "x"}  # no place for the offer: untouched
        [record] = await _records(proxy)
        assert record.id == decision_id and record.campaign == "offers.checkout"
        assert record.offer == offer["id"] and record.slots[0].variant == arm
        assert record.removed == {"free_shipping": (
            'guard no free_shipping when geo.country not in ["DE", "AT"]',
        )}  # fmt: skip
        assert "free_shipping" not in record.slots[0].candidates
        assert record.signals["page.cart_value"] == 120.0 and "cart.value" not in record.signals


async def test_guarded_arms_are_never_served() -> None:
    routes = {"/cart": cart(20.0, 1)}
    async with proxy_client(
        routes, policies={"o.sw": POLICY}, plugins="builtins", **PATIENT
    ) as proxy:
        seen = set()
        for _ in range(60):
            offer = (await proxy.client.get("/cart", headers={"CF-IPCountry": "US"})).json()
            seen.add(offer["offer"]["id"].partition(".")[2])
        assert seen <= {"none", "discount_5", "discount_10"}
        assert len(seen) == 3  # uniform over what the guards left
        record = (await _records(proxy))[0]
        assert set(record.removed) == {
            "discount_15", "discount_20", "discount_25", "bogo", "free_shipping"
        }  # fmt: skip
        assert record.removed["bogo"] == ("guard no bogo when cart.count < 2",)


async def test_control_keeps_the_upstream_offer_and_is_tracked() -> None:
    upstream_offer = {"id": "shop-1", "type": "discount", "value": 5}
    routes = {"/cart": cart(60.0, 2, upstream_offer)}
    async with proxy_client(
        routes, policies={"o.sw": HELD_OUT}, plugins="builtins", **PATIENT
    ) as proxy:
        body = (await proxy.client.get("/cart")).json()
        assert body["offer"] == upstream_offer
        assert body["impression_trackers"]  # the control's trackers, like a campaign's
        [record] = await _records(proxy)
        assert record.holdout and record.offer is None and not record.slots
        assert "none" in record.eligible["offer"]


def test_a_bad_offers_table_stops_serve_naming_the_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "slotwise.toml"
    config.write_text('[offers]\nbase_currency = "USD"\nrates = { eur = 1.1 }\n')
    argv = ["serve", "--upstream", "http://127.0.0.1:1", "--policies", str(tmp_path)]
    assert main([*argv, "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert "offers.rates: 'eur' is not an ISO 4217 code (e.g. EUR)" in err
    assert "Traceback" not in err
