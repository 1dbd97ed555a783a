"""Through `slotwise serve` (two granian workers on one store), from the event to the inbox:
add_to_cart events arm triggers, and after their `wait` exactly one signed notification per
episode arrives at the webhook receiver and one e-mail at a real SMTP server (STARTTLS, AUTH);
a purchase within the `unless` window cancels the user's notifications, an erased user's never
arrive; /_sw/metrics counts the sends."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from slotwise.proxy.loopback import free_port, wait_for_port
from tests.support.notify import smtp_server, webhook_receiver

pytestmark = pytest.mark.slow

# the cart batch, the purchase and the erasure below must all land within it (a loaded machine)
WAIT = 4.0
POLICY = """policy "notify e2e" version 1

campaign reminder {
  slot banner at "$.banner.text" { variant plain "Your cart is waiting" }
}

trigger cart_abandon {
  on event add_to_cart
  unless event purchase within 1h
  wait 4s
  window 1d
  when consent.level == "personal"
  offer by cart.value {
    0..<50 => free_shipping
    50.. => discount 10%
  }
  show campaign reminder
  notify webhook "crm"
}

trigger cart_mail {
  on event add_to_cart
  unless event purchase within 1h
  wait 4s
  window 1d
  show campaign reminder
  notify email "cart-reminder"
}
"""
TOKEN = "test-admin-token-0123456789"
ADMIN = {"authorization": f"Bearer {TOKEN}"}


def _templates(directory: Path) -> Path:
    directory.mkdir()
    (directory / "cart-reminder.subject.txt").write_text("Your cart is waiting\n")
    (directory / "cart-reminder.txt").write_text(
        "Hello {{ traits.email }}, your cart holds {{ traits['cart.value'] }}.\n"
    )
    (directory / "cart-reminder.html").write_text("<p>Hello {{ traits.email }}</p>\n")
    return directory


def _add_to_cart(user: str, eid: str, price: float) -> dict[str, Any]:
    return {
        "type": "add_to_cart", "id": eid, "time": time.time(), "user_id": user,
        "properties": {"product_id": "sku-1", "price": price, "quantity": 1},
    }  # fmt: skip


async def _send(client: httpx.AsyncClient, *events: dict[str, Any]) -> None:
    batch = {"consent": "personal", "events": list(events)}
    response = await client.post("/_sw/events", json=batch)
    assert response.status_code == 200, response.text
    assert response.json()["accepted"] == len(events)


async def test_events_arm_triggers_and_each_episode_is_notified_once(tmp_path: Path) -> None:
    with webhook_receiver() as rx, smtp_server(tmp_path) as sink:
        policies = tmp_path / "policies"
        policies.mkdir()
        (policies / "p.sw").write_text(POLICY)
        store_url = f"sqlite:///{tmp_path / 'state.db'}?timeout=2"
        config = tmp_path / "slotwise.toml"
        config.write_text(
            f"[notify]\nlease_seconds = 1.0\npoll_interval = 0.05\n"
            f'smtp_host = "127.0.0.1"\nsmtp_port = {sink.port}\nsmtp_from = "shop@example.com"\n'
            f'smtp_username = "{sink.username}"\nsmtp_password_env = "SERVE_SMTP_PASSWORD"\n'
            f'smtp_ca_file = "{sink.ca_file}"\n'
            f'templates_dir = "{_templates(tmp_path / "templates")}"\n'
            f'[webhooks.crm]\nurl = "{rx.url}"\nsecrets_env = ["SERVE_HOOK_SECRET", '
            '"SERVE_HOOK_OLD_SECRET"]\n'
            f'[events]\nadmin_token = "{TOKEN}"\n'
        )
        port = free_port()
        env = {
            **os.environ,
            "SERVE_HOOK_SECRET": rx.secret,
            "SERVE_SMTP_PASSWORD": sink.password,
            "SERVE_HOOK_OLD_SECRET": "whsec_" + "b2xkLXNlY3JldC1iZWluZy1yb3RhdGVkLW91dA==",
        }
        env.pop("SLOTWISE_CONFIG", None)
        args = [
            sys.executable, "-m", "slotwise", "serve", "--config", str(config),
            "--upstream", f"http://127.0.0.1:{free_port()}", "--policies", str(policies),
            "--store", store_url, "--port", str(port), "--workers", "2",
            "--log-level", "error",
        ]  # fmt: skip
        with open(tmp_path / "serve.log", "wb") as log:
            process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env)
        try:
            wait_for_port(port, timeout=30)
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
                profile = {"email": "ada@example.com", "time_zone": "Europe/Paris"}
                put = await client.put("/_sw/admin/profiles/u1", json=profile, headers=ADMIN)
                assert put.status_code in (200, 201), put.text
                sent_at = time.time()
                await _send(
                    client,
                    _add_to_cart("u1", "a1", 70.0),
                    _add_to_cart("u2", "a2", 20.0),
                    _add_to_cart("u3", "a3", 20.0),
                )
                purchase = {
                    "type": "purchase", "id": "p3", "time": time.time(), "user_id": "u3",
                    "properties": {"order_id": "o3", "value": 20.0, "currency": "EUR",
                                   "items": [{"product_id": "sku-1", "price": 20.0}]},
                }  # fmt: skip
                await _send(client, purchase)
                erased = await client.delete("/_sw/admin/users/u2", headers=ADMIN)
                assert erased.status_code == 200, erased.text
                assert time.time() - sent_at < WAIT, "the machine stalled past the trigger's wait"
                deadline = time.monotonic() + 30
                while not rx.accepted and time.monotonic() < deadline:
                    await asyncio.sleep(0.05)
                sink.wait_for(1, timeout=20)
                await asyncio.sleep(WAIT)  # anything else that was due has had its chance
                [delivery] = rx.accepted.values()
                assert delivery.at - sent_at >= WAIT - 0.05  # not before the wait
                data = delivery.body["data"]
                assert data["user_id"] == "u1" and data["trigger"] == "cart_abandon"
                assert data["offer"]["type"] == "discount" and data["offer"]["value"] == 10
                assert rx.duplicates == 0 and rx.rejected == 0 and len(rx.attempts) == 1
                [message] = sink.messages
                assert message["To"] == "ada@example.com"
                plain = next(p for p in message.walk() if p.get_content_type() == "text/plain")
                assert "70" in plain.get_payload(decode=True).decode()
                metrics = (await client.get("/_sw/metrics")).text
                assert "slotwise_notifications_sent_total 2" in metrics
                assert "slotwise_notifications_dead_lettered_total 0" in metrics
        finally:
            process.terminate()
            process.wait(timeout=20)
