"""Offers through real processes: `slotwise serve` writes an offer on a cart page, the shop's
purchase with that offer id joins the decision, `slotwise learn --once` learns the offer set
from it and the running proxy reloads the model; an unknown currency is refused at ingest."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.proxy.support import Canned, upstream_server
from tests.support.cli import run_slotwise, slotwise_serve

POLICY = """policy "checkout offers" version 1

offers checkout {
  slot at "$.offer"
  arms none, discount 10%, discount 20%, free_shipping
  optimize revenue - discount_cost
  guard discount <= 10% when cart.value < 50
}
"""
CONFIG = """
[offers]
base_currency = "USD"
rates = { EUR = 1.10 }
shipping_cost = 5.0
"""
CART = {
    "cart": {"subtotal": 120.0, "count": 2, "currency": "USD",
             "items": [{"product_id": "sku-1", "price": 60.0, "quantity": 2}]},
    "offer": None,
}  # fmt: skip


def _purchase(number: int, offer: dict[str, object], currency: str = "USD") -> dict[str, object]:
    discount = offer["value"] if offer["type"] == "discount" else 0
    assert isinstance(discount, int | float)
    return {
        "type": "purchase",
        "id": f"purchase-{number}",
        "user_id": f"u{number}",
        "properties": {
            "order_id": f"order-{number}",
            "items": [{"product_id": "sku-1", "price": 60.0, "quantity": 2}],
            "value": 120.0 * (1 - discount / 100),
            "currency": currency,
            "offer_id": offer["id"],
        },
    }


@pytest.mark.slow
async def test_a_cart_offer_is_served_bought_joined_and_learned(tmp_path: Path) -> None:
    store, models = f"sqlite:///{tmp_path}/state.db?timeout=2", tmp_path / "models"
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "checkout.sw").write_text(POLICY)
    config = tmp_path / "slotwise.toml"
    config.write_text(CONFIG)
    routes = {"/api/cart": Canned(200, [("Content-Type", "application/json")],
                                  json.dumps(CART).encode())}  # fmt: skip
    env = dict(os.environ, SLOTWISE_PLUGINS="builtins", SLOTWISE_BANDIT_RELOAD_INTERVAL="0.2")
    async with upstream_server(routes) as upstream:
        serve_args = ("--upstream", upstream.url, "--policies", str(policies), "--store", store,
                      "--models", str(models), "--config", str(config))  # fmt: skip
        async with slotwise_serve(env, *serve_args) as base:
            async with httpx.AsyncClient(base_url=base) as client:
                assert 'campaign="offers.checkout",version="v0"' in await _metrics(client)
                purchases = []
                kinds = set()
                started = time.monotonic()
                for i in range(30):
                    page = await client.get("/api/cart", headers={"cookie": f"sw_uid=u{i}"})
                    offer = page.json()["offer"]
                    assert page.json()["cart"] == CART["cart"]
                    assert set(offer) >= {"id", "type", "value", "label", "terms"}
                    kinds.add(offer["type"])
                    if i % 3:  # two thirds buy, with the offer they were shown
                        purchases.append(_purchase(i, offer))
                assert kinds >= {"discount", "none"}
                batch = {"events": purchases, "consent": "personal"}
                stored = await client.post("/_sw/events", json=batch)
                assert stored.status_code == 200, stored.text
                assert stored.json()["accepted"] == len(purchases)
                refused = await client.post(
                    "/_sw/events", json={"events": [_purchase(99, offer, "JPY")]}
                )
                assert refused.status_code == 400
                error = refused.json()["error"]
                assert error["code"] == "unknown_currency"
                assert error["rejections"][0]["path"] == "$.events[0].properties.currency"
                assert "JPY" in error["message"] or "JPY" in error["rejections"][0]["reason"]
                # the reward window covers every page and its purchase however slow this
                # machine was (0.5 s on a quiet one), and the learner runs once it is past
                window = f"{time.monotonic() - started + 0.5:.1f}"
                await asyncio.sleep(float(window) + 0.3)
                learn = await asyncio.create_subprocess_exec(
                    sys.executable, "-m", "slotwise", "learn", "--policies", str(policies),
                    "--store", store, "--models", str(models), "--window", window, "--once",
                    "--config", str(config), env=env,
                    stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
                )  # fmt: skip
                out, err = await asyncio.wait_for(learn.communicate(), 120)
                assert learn.returncode == 0, err.decode()
                assert "offers.checkout: published v1 (30 examples)" in out.decode(), out.decode()
                for _ in range(100):  # the proxy reloads within its interval
                    if 'campaign="offers.checkout",version="v1"' in await _metrics(client):
                        break
                    await asyncio.sleep(0.1)
                else:
                    raise AssertionError("the proxy did not reload the offer set's model")
                offer = (await client.get("/api/cart")).json()["offer"]
                assert offer["type"] in ("none", "discount", "free_shipping")
            # the same logs, exported, evaluate the offer set's model offline
            logs = {}
            for kind in ("decisions", "events"):
                logs[kind] = tmp_path / f"{kind}.jsonl"
                await run_slotwise(
                    env, "export", kind, "--store", store, "--config", str(config),
                    "-o", str(logs[kind]),
                )  # fmt: skip
            rewards = [json.loads(line) for line in logs["events"].read_text().splitlines()]
            assert len(rewards) == 3 * len(purchases)  # conversion, discount_cost, margin each
            assert {r["event"] for r in rewards} == {"conversion", "discount_cost", "margin"}
            out = await run_slotwise(
                env, "evaluate", str(logs["decisions"]), str(logs["events"]),
                "--campaign", "offers.checkout", "--candidate", "model", "--candidate", "uniform",
                "--models", str(models), "--policies", str(policies), "--allow-training-log",
                "--window", window, "--goal", "revenue=1,discount_cost=-1", "--format", "json",
            )  # fmt: skip
            report = json.loads(out)
            assert report["campaign"] == "offers.checkout" and report["decisions"] >= 30
            assert report["logged"]["rewarded"] == len(purchases)  # every purchase joined
            assert report["logged"]["value"] > 0  # what the shop took in, per decision
            assert len(report["candidates"]) == 2


async def _metrics(client: httpx.AsyncClient) -> str:
    return (await client.get("/_sw/metrics")).text
