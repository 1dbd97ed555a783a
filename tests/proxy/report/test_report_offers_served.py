"""The offers section of `slotwise report` over what `slotwise serve` really served: cart pages
get offers (or the holdout's nothing), the shop's purchases redeem some, ignore others, and the
report's figures per arm and for the control match a computation from what was served and
bought."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.proxy.offers.test_offers_end_to_end import CART, CONFIG
from tests.proxy.support import Canned, upstream_server
from tests.support.cli import run_slotwise, slotwise_serve

POLICY = """policy "checkout offers" version 1

offers checkout {
  slot at "$.offer"
  arms none, discount 10%, discount 20%, free_shipping
  holdout 30%
  optimize revenue - discount_cost
}
"""
DID = re.compile(r"did=([A-Za-z0-9_-]+)")


def _purchase(number: int, value: float, **ids: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "type": "purchase", "id": f"purchase-{number}", "user_id": f"u{number}",
        "properties": {
            "order_id": f"order-{number}", "value": value, "currency": "USD",
            "items": [{"product_id": "sku-1", "price": 60.0, "quantity": 2}],
        },
    }  # fmt: skip
    if "offer_id" in ids:
        event["properties"]["offer_id"] = ids["offer_id"]
    if "decision_id" in ids:
        event["decision_id"] = ids["decision_id"]
    return event


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


@pytest.mark.slow
async def test_the_report_shows_what_the_served_offers_did(tmp_path: Path) -> None:
    store, models = f"sqlite:///{tmp_path}/state.db?timeout=2", tmp_path / "models"
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "checkout.sw").write_text(POLICY)
    config = tmp_path / "slotwise.toml"
    config.write_text(CONFIG)
    routes = {"/api/cart": Canned(200, [("Content-Type", "application/json")],
                                  json.dumps(CART).encode())}  # fmt: skip
    env = dict(os.environ, SLOTWISE_PLUGINS="builtins")
    # per arm ("control": the holdout) the (revenue, discount cost) of each decision
    expected: dict[str, list[tuple[float, float]]] = {}
    async with upstream_server(routes) as upstream:
        serve_args = ("--upstream", upstream.url, "--policies", str(policies), "--store", store,
                      "--models", str(models), "--config", str(config))  # fmt: skip
        async with slotwise_serve(env, *serve_args) as base:
            async with httpx.AsyncClient(base_url=base) as client:
                purchases = []
                for i in range(60):
                    page = await client.get("/api/cart", headers={"cookie": f"sw_uid=u{i}"})
                    (decision_id,) = set(DID.findall(page.text))
                    offer = page.json()["offer"]
                    if offer is None:  # the holdout: half of them buy, at full price
                        bought = i % 2 == 0
                        if bought:
                            purchases.append(_purchase(i, 120.0, decision_id=decision_id))
                        expected.setdefault("control", []).append((120.0 * bought, 0.0))
                        continue
                    arm = offer["id"].partition(".")[2]
                    row = expected.setdefault(arm, [])
                    if i % 3 == 1:  # redeemed: paid the price less the offer
                        cost = {"discount": 120.0 * (offer["value"] or 0) / 100,
                                "free_shipping": 5.0}.get(offer["type"], 0.0)  # fmt: skip
                        paid = 120.0 - (cost if offer["type"] == "discount" else 0.0)
                        purchases.append(_purchase(i, paid, offer_id=offer["id"]))
                        row.append((paid + cost, cost))
                    elif i % 3 == 2:  # shown, not redeemed: full price, no discount cost
                        purchases.append(_purchase(i, 120.0, decision_id=decision_id))
                        row.append((120.0, 0.0))
                    else:
                        row.append((0.0, 0.0))
                assert "control" in expected and len(expected) >= 3
                stored = await client.post(
                    "/_sw/events", json={"events": purchases, "consent": "personal"}
                )
                assert stored.status_code == 200, stored.text
    out = await run_slotwise(
        env, "report", "--store", store, "--config", str(config), "--format", "json"
    )
    report = json.loads(out)
    assert report["offers"]["status"] == "ok"
    (checkout,) = report["offer_sets"]
    everyone = checkout["segments"][0]
    assert everyone["segment"] == "all"
    arms = {a["arm"]: a for a in everyone["arms"]}
    assert set(arms) == set(expected)
    for name, rows in expected.items():
        got = arms[name]
        assert got["decisions"] == len(rows), name
        assert got["converted"] == sum(1 for revenue, _ in rows if revenue > 0), name
        assert got["revenue"] == pytest.approx(sum(r for r, _ in rows)), name
        assert got["discount"] == pytest.approx(sum(c for _, c in rows)), name
        net = _mean([r - c for r, c in rows])
        assert got["net_per_decision"]["value"] == pytest.approx(net), name
        if name != "control":
            control = _mean([r - c for r, c in expected["control"]])
            assert got["net_lift"]["value"] == pytest.approx(net - control), name
    text = await run_slotwise(env, "report", "--store", store, "--config", str(config))
    assert "offer set checkout" in text
