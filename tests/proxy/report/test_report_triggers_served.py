"""The triggers section of `slotwise report` over what `slotwise serve` really served: shoppers
add to cart, their next ad request shows the reminder or, for the trigger's holdout, the
generic ad; some buy with the decision's id; the report's triggered and holdout figures match
what was served and bought."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from slotwise.proxy.state import open_store
from tests.proxy.support import stored_json, wait_ready
from tests.proxy.triggers import test_served as served
from tests.support.notify import webhook_receiver

POLICY = """policy "cart recovery report" version 1

campaign spring_sale {
  applies when ad.campaign_id == "cmp-spring"
  slot headline at "$.creative.headline" { variant h1 "Spring deals are here" }
}

campaign cart_reminder {
  applies when ad.campaign_id == "cmp-spring"
  holdout 40%
  slot headline at "$.creative.headline" { variant back "Your cart is waiting" }
}

trigger cart_abandon {
  on event add_to_cart
  window 7d
  when consent.level == "personal"
  show campaign cart_reminder
}
"""
SHOPPERS = 24


def _cookie(user: str) -> dict[str, str]:
    return {"cookie": f"sw_uid={user}; sw_consent=personal"}


def _event(kind: str, eid: str, user: str, **extra: Any) -> dict[str, Any]:
    return {"type": kind, "id": eid, "time": time.time(), "user_id": user, **extra}


@pytest.mark.slow
async def test_the_report_compares_a_trigger_with_its_holdout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(served, "POLICY", POLICY)
    store = f"sqlite:///{tmp_path}/state.db?timeout=2"
    reminded: list[bool] = []
    with webhook_receiver() as hook:
        async with served._processes(tmp_path, store, hook) as base:
            async with httpx.AsyncClient(base_url=base, timeout=10) as client:
                await wait_ready(client)
                for i in range(SHOPPERS):
                    user = f"shopper-{i}"
                    cart = _event("add_to_cart", f"c{i}", user,
                                  properties={"product_id": "sku-1", "price": 35.0})  # fmt: skip
                    sent = await client.post(
                        "/_sw/events", json={"consent": "personal", "events": [cart]},
                        headers=_cookie(user),
                    )  # fmt: skip
                    assert sent.status_code == 200, sent.text
                    ad = await client.get("/ads/home-top", headers=_cookie(user))
                    headline = ad.json()["creative"]["headline"]
                    reminded.append(headline == "Your cart is waiting")
                # the trigger's decisions, in the order of the requests (one per shopper); the
                # proxy writes its decision log in the background: wait for the last ones
                deadline = time.monotonic() + 30
                while True:
                    async with open_store(store) as reader:
                        entries = await reader.log_read("decisions", count=1000)
                    records = [stored_json(e.data) for e in entries]
                    triggered = [r for r in records if r.get("trigger") == "cart_abandon"]
                    if len(triggered) >= SHOPPERS or time.monotonic() > deadline:
                        break
                    await asyncio.sleep(0.2)
                assert len(triggered) == SHOPPERS
                assert [not r["holdout"] for r in triggered] == reminded
                assert 0 < sum(reminded) < SHOPPERS  # both groups are there
                # two thirds of the shoppers buy, with the decision's id
                buyers = [i for i in range(SHOPPERS) if i % 3]
                orders = [
                    _event("purchase", f"o{i}", f"shopper-{i}",
                           decision_id=triggered[i]["id"],
                           properties={"order_id": f"o{i}", "value": 70.0, "currency": "EUR",
                                       "items": [{"product_id": "sku-1", "quantity": 2}]})
                    for i in buyers
                ]  # fmt: skip
                sent = await client.post(
                    "/_sw/events", json={"consent": "personal", "events": orders}
                )
                assert sent.status_code == 200, sent.text
    done = served._cli("report", "--store", store, "--format", "json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["triggers"]["status"] == "ok"
    (result,) = report["trigger_results"]
    assert result["name"] == "cart_abandon"
    shown = [i for i in range(SHOPPERS) if reminded[i]]
    held = [i for i in range(SHOPPERS) if not reminded[i]]
    assert (result["triggered"]["decisions"], result["holdout"]["decisions"]) == (
        len(shown), len(held)
    )  # fmt: skip
    converted = (sum(i % 3 > 0 for i in shown), sum(i % 3 > 0 for i in held))
    assert (result["triggered"]["converted"], result["holdout"]["converted"]) == converted
    rates = (converted[0] / len(shown), converted[1] / len(held))
    assert result["absolute"]["value"] == pytest.approx(rates[0] - rates[1])
    assert result["verdict"] == "not_enough_data"
