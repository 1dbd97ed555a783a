"""End to end through `slotwise serve` in front of the example ad server (real processes, SQLite):
add_to_cart -> the very next ad request shows the reminder with the ladder's offer for that cart;
a purchase within the `unless` window -> the next request is generic again. The store then
answers `slotwise explain --user` and `slotwise audiences` for the same user."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from slotwise.proxy.notify.outbox import OUTBOX_LOG, decode
from slotwise.proxy.state import open_store
from tests.conftest import REPO
from tests.proxy.support import wait_ready
from tests.support.notify import WebhookReceiver, webhook_receiver
from tests.support.servers import free_port
from tests.support.timing import PATIENT_DEADLINES

POLICY = """policy "cart recovery e2e" version 1

campaign spring_sale {
  applies when ad.campaign_id == "cmp-spring"
  slot headline at "$.creative.headline" { variant h1 "Spring deals are here" }
}

campaign cart_reminder {
  applies when ad.campaign_id == "cmp-spring"
  slot headline at "$.creative.headline" { variant back "Your cart is waiting" }
}

trigger cart_abandon {
  on event add_to_cart
  unless event purchase within 2h
  window 7d
  when consent.level == "personal"
  offer by cart.value {
    0..<50 => free_shipping
    50..<100 => discount 10%
    100.. => discount 15%
  }
  show campaign cart_reminder
  notify webhook "crm"
}
"""
CONFIG = """
[plugins.profile]
deadline_ms = 2000
"""
COOKIE = {"cookie": "sw_uid=shopper-1; sw_consent=personal"}


@asynccontextmanager
async def _processes(tmp: Path, store: str, hook: WebhookReceiver) -> AsyncIterator[str]:
    """The example ad server and `slotwise serve` in front of it, sending the trigger's
    notifications to ``hook``; the proxy's base URL."""
    policies = tmp / "policies"
    policies.mkdir()
    (policies / "cart.sw").write_text(POLICY, encoding="utf-8")
    config = tmp / "slotwise.toml"
    webhook = f'[webhooks.crm]\nurl = "{hook.url}"\nsecrets_env = ["TRIGGER_HOOK_SECRET"]\n'
    config.write_text(CONFIG + "[notify]\npoll_interval = 0.05\n" + webhook, encoding="utf-8")
    ad_port, proxy_port = free_port(), free_port()
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
        SLOTWISE_PLUGINS="builtins",
        SLOTWISE_TRACKING_PUBLIC_URL=f"http://127.0.0.1:{proxy_port}",
        # a loaded test machine must not fail a response open: this test is about triggers
        **PATIENT_DEADLINES,
        TRIGGER_HOOK_SECRET=hook.secret,
    )
    argvs = [
        [sys.executable, "-m", "granian", "--interface", "asgi", "--port", str(ad_port),
         "--log-level", "warning", "examples.adserver.app:app"],
        [sys.executable, "-m", "slotwise", "serve", "--upstream", f"http://127.0.0.1:{ad_port}",
         "--policies", str(policies), "--port", str(proxy_port), "--store", store,
         "--config", str(config)],
    ]  # fmt: skip
    logs = [(tmp / name).open("wb") for name in ("adserver.log", "proxy.log")]
    started = [
        subprocess.Popen(argv, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
        for argv, log in zip(argvs, logs, strict=True)
    ]
    try:
        yield f"http://127.0.0.1:{proxy_port}"
    finally:
        for process in started:
            process.terminate()
        for process in started:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for log in logs:
            log.close()


def _event(kind: str, eid: str, **properties: Any) -> dict[str, Any]:
    return {
        "type": kind, "id": eid, "time": time.time(), "user_id": "shopper-1",
        "properties": properties,
    }  # fmt: skip


async def _ad(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.get("/ads/home-top", headers=COOKIE)
    assert response.status_code == 200
    document: dict[str, Any] = response.json()
    return document


async def _send(client: httpx.AsyncClient, *events: dict[str, Any]) -> None:
    batch = {"consent": "personal", "events": list(events)}
    response = await client.post("/_sw/events", json=batch, headers=COOKIE)
    assert response.status_code == 200, response.text
    assert response.json()["accepted"] == len(events)


def _cli(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "slotwise", *argv], cwd=REPO, capture_output=True, text=True,
        timeout=60, env=dict(os.environ, SLOTWISE_PLUGINS="builtins"),
    )  # fmt: skip


@pytest.mark.slow
async def test_add_to_cart_then_the_next_ad_shows_the_reminder_and_a_purchase_ends_it(
    tmp_path: Path,
) -> None:
    # a generous read timeout: this test is about triggers, not a loaded machine's latency
    store = f"sqlite:///{tmp_path}/state.db?timeout=2"
    with webhook_receiver() as hook:
        await _served(tmp_path, store, hook)


async def _served(tmp_path: Path, store: str, hook: WebhookReceiver) -> None:
    async with _processes(tmp_path, store, hook) as base:
        async with httpx.AsyncClient(base_url=base, timeout=10) as client:
            await wait_ready(client)
            before = await _ad(client)
            assert before["creative"]["headline"] == "Spring deals are here"
            assert "offer" not in before
            # two units at 35: a cart of 70, the ladder's 50..<100 step
            await _send(
                client, _event("add_to_cart", "c1", product_id="sku-1", price=35.0, quantity=2)
            )
            reminded = await _ad(client)  # the very next request
            assert reminded["creative"]["headline"] == "Your cart is waiting"
            offer = reminded["offer"]
            assert (offer["type"], offer["value"], offer["label"]) == (
                "discount", 10, "10% off your order"
            )  # fmt: skip
            assert offer["id"].endswith(".discount_10")
            # its notification is in the outbox, due now (no wait), with the ladder's offer
            async with open_store(store) as reader:
                (entry,) = await reader.log_read(OUTBOX_LOG)
            notification = decode(entry.data)
            assert (notification.subject, notification.trigger, notification.channel) == (
                "shopper-1", "cart_abandon", "webhook"
            )  # fmt: skip
            assert notification.offer is not None and notification.offer["value"] == 10
            # and the sender (in the proxy, by its lease) delivers it once, signed
            deadline = time.monotonic() + 30
            while not hook.accepted and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            [delivery] = hook.accepted.values()
            assert delivery.id == notification.key and delivery.verified
            assert delivery.body["data"]["offer"]["value"] == 10
            # the user's trigger state, from the store, by user id
            policies = str(tmp_path / "policies")
            explained = _cli(
                "explain", "--user", "shopper-1", "--store", store, "--policies", policies,
                "--format", "json",
            )  # fmt: skip
            assert explained.returncode == 0, explained.stderr
            (state,) = json.loads(explained.stdout)["triggers"]
            assert (state["trigger"], state["phase"], state["fires"]) == (
                "cart_abandon", "armed", True
            )  # fmt: skip
            listed = _cli(
                "audiences", "export", "cart_abandon", "--format", "jsonl", "--store", store,
                "--policies", policies,
            )  # fmt: skip
            assert listed.returncode == 0, listed.stderr
            assert [json.loads(line)["user_id"] for line in listed.stdout.splitlines()] == [
                "shopper-1"
            ]
            purchase = _event(
                "purchase", "o1", order_id="o1", items=[{"product_id": "sku-1", "quantity": 2}],
                value=70.0, currency="EUR",
            )  # fmt: skip
            await _send(client, purchase)
            after = await _ad(client)
            assert after["creative"]["headline"] == "Spring deals are here"
            assert "offer" not in after
            await asyncio.sleep(0)
