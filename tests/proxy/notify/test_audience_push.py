"""Scheduled audience pushes (``[audience_pushes.NAME]``): the users in a trigger state POSTed,
signed as notifications are, to a real local webhook receiver by the notification sender;
consent respected, erased users absent, once per period, refused at start when misconfigured.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from slotwise.dsl.loader import compile_sources
from slotwise.plugins.registry import load_schema
from slotwise.proxy.cli import main
from slotwise.proxy.config import Settings
from slotwise.proxy.events import EventCollector
from slotwise.proxy.events.schema import decode_event
from slotwise.proxy.notify.audience_push import done_key
from slotwise.proxy.notify.runtime import build_sender
from slotwise.proxy.state import open_store
from slotwise.proxy.triggers import TriggerEngine
from tests.proxy.notify.helpers import SECRET_VAR, run_until, settings
from tests.support.notify import new_secret, webhook_receiver
from tests.support.timing import clear_of_boundary

POLICY = """policy "push" version 1

campaign reminder {
  slot banner at "$.banner.text" { variant plain "Your cart is waiting" }
}

trigger cart_abandon {
  on event add_to_cart
  unless event purchase within 1h
  wait 1h
  window 1d
  show campaign reminder
}
"""


def _event(kind: str, user: str, eid: str) -> Any:
    import msgspec

    fields = {"type": kind, "id": eid, "time": time.time(), "user_id": user,
              "properties": {"product_id": "sku-1", "price": 20.0, "quantity": 1}}  # fmt: skip
    if kind == "purchase":
        fields["properties"] = {"order_id": eid, "value": 20.0, "currency": "EUR",
                                "items": [{"product_id": "sku-1"}]}  # fmt: skip
    return decode_event(msgspec.json.encode(fields))


async def _fill(url: str, policy: Any) -> None:
    """u1, u2 and u4 enter the trigger with personal consent, u3 only with contextual consent
    (no user id is kept), u4 buys (cancelled), u2 is erased."""
    async with open_store(url) as store, EventCollector(store) as collector:
        collector.triggers = TriggerEngine(store, lambda: policy)
        for user in ("u1", "u2", "u4"):
            await collector.collect([_event("add_to_cart", user, f"a-{user}")], consent="personal")
        await collector.collect([_event("add_to_cart", "u3", "a-u3")], consent="contextual")
        await collector.collect([_event("purchase", "u4", "p-u4")], consent="personal")
        await collector.erase("u2", actor="test")


def _compiled() -> Any:
    policy, _ = compile_sources([("push.sw", POLICY)], load_schema())
    return policy


def _with_push(hook_url: str, interval: float) -> Settings:
    base = settings(hook_url)
    push = {"audience": "cart_abandon", "webhook": "crm", "interval": interval}
    return base.replace(audience_pushes={"abandoners": push})


async def test_the_sender_pushes_the_audience_once_per_period(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    policy = _compiled()
    url = f"sqlite:///{tmp_path / 'state.db'}"
    await _fill(url, policy)
    await clear_of_boundary(3600.0)  # the takeover below falls in the same hour
    with webhook_receiver() as rx:
        monkeypatch.setenv(SECRET_VAR, rx.secret)
        async with open_store(url) as store:
            sender = build_sender(_with_push(rx.url, 3600), store, policy=lambda: policy)
            await run_until(sender, lambda: len(rx.accepted) == 1)
            [delivery] = rx.accepted.values()
            assert delivery.verified and rx.rejected == 0
            # the period the sender pushed for: this hour, or the last if one just began
            period = int(delivery.id.split(":")[2])
            assert period in (int(time.time() // 3600) - 1, int(time.time() // 3600))
            assert delivery.id == f"audience:abandoners:{period}:1"
            assert delivery.body["type"] == "slotwise.audience"
            data = delivery.body["data"]
            assert data["audience"] == "cart_abandon" and data["count"] == 1
            assert data["page"] == data["pages"] == 1
            # u2 erased, u3 without personal consent, u4 cancelled by the purchase
            assert [m["user_id"] for m in data["members"]] == ["u1"]
            assert data["members"][0]["phase"] == "waiting"
            assert await store.get(done_key("abandoners")) == str(period).encode()
            # another sender (a takeover) in the same period pushes nothing again
            again = build_sender(_with_push(rx.url, 3600), store, policy=lambda: policy)
            await run_until(again, lambda: again.active)
            await asyncio.sleep(0.3)
            assert sum(rx.attempts.values()) == 1


async def test_a_segment_audience_is_pushed_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``audience = "segment:NAME"``: the users whose stored signals satisfy the segment."""
    policy, _ = compile_sources(
        [("push.sw", POLICY + "\nsegment carted: cart.count >= 1\n")], load_schema()
    )
    url = f"sqlite:///{tmp_path / 'state.db'}"
    await _fill(url, policy)
    push = {"audience": "segment:carted", "webhook": "crm", "interval": 3600.0}
    with webhook_receiver() as rx:
        monkeypatch.setenv(SECRET_VAR, rx.secret)
        configured = settings(rx.url).replace(audience_pushes={"carted": push})
        async with open_store(url) as store:
            sender = build_sender(configured, store, policy=lambda: policy)
            await run_until(sender, lambda: len(rx.accepted) == 1)
            [delivery] = rx.accepted.values()
            data = delivery.body["data"]
            # u2 erased, u3 without personal consent, u4's purchase emptied the cart
            assert data["audience"] == "segment:carted"
            assert data["members"] == [
                {"user_id": "u1", "audience": "segment:carted", "kind": "segment"}
            ]


async def test_a_failed_push_is_retried_under_the_same_id_and_the_next_period_pushes_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    policy = _compiled()
    url = f"sqlite:///{tmp_path / 'state.db'}"
    await _fill(url, policy)
    with webhook_receiver(fault=lambda msg_id, attempt: "500" if attempt == 1 else "ok") as rx:
        monkeypatch.setenv(SECRET_VAR, rx.secret)
        async with open_store(url) as store:
            sender = build_sender(_with_push(rx.url, 1.0), store, policy=lambda: policy)
            await run_until(sender, lambda: len(rx.accepted) >= 2, timeout=30)
            first, second = sorted(rx.accepted)[:2]
            assert rx.attempts[first] == 2  # answered 500, then delivered under the same id
            assert first.rsplit(":", 2)[1] != second.rsplit(":", 2)[1]  # two periods
            assert rx.duplicates == 0


def test_bad_tables_stop_the_start_with_their_code(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PUSH_SECRET", new_secret())
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "p.sw").write_text(POLICY)
    hook = '[webhooks.crm]\nurl = "http://127.0.0.1:9/x"\nsecrets_env = ["PUSH_SECRET"]\n'
    cases = {
        'audience = "nobody"\nwebhook = "crm"\ninterval = 60\n': "unknown_audience: audience "
        "'nobody' is not a trigger or segment of the policies (audiences: cart_abandon)",
        'audience = "cart_abandon"\nwebhook = "cms"\ninterval = 60\n': "unknown_endpoint: "
        "webhook must name a [webhooks.NAME] table (configured: crm)",
        'audience = "cart_abandon"\nwebhook = "crm"\ninterval = 0\n': "interval must be a "
        "number of seconds, at least 1",
        'audience = "cart_abandon"\nwebhook = "crm"\nevery = 60\n': "unknown key 'every'",
    }
    for table, expected in cases.items():
        config = tmp_path / "slotwise.toml"
        config.write_text(hook + "[audience_pushes.abandoners]\n" + table)
        store = f"sqlite:///{tmp_path / 'state.db'}"
        argv = ["notify", "serve", "--store", store, "--policies", str(policies)]
        assert main([*argv, "--config", str(config)]) == 1
        err = capsys.readouterr().err
        assert "[audience_pushes.abandoners]" in err and expected in err, err


@pytest.mark.slow
async def test_slotwise_notify_serve_pushes_the_audience(tmp_path: Path) -> None:
    """As operators run it: `slotwise notify serve` with the table in slotwise.toml."""
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "p.sw").write_text(POLICY)
    url = f"sqlite:///{tmp_path / 'state.db'}"
    await _fill(url, _compiled())
    await clear_of_boundary(3600.0, 60.0)  # one hour's push while it runs, not two
    with webhook_receiver() as rx:
        config = tmp_path / "slotwise.toml"
        config.write_text(
            "[notify]\nlease_seconds = 1.0\npoll_interval = 0.05\n"
            f'[webhooks.crm]\nurl = "{rx.url}"\nsecrets_env = ["PUSH_HOOK_SECRET"]\n'
            '[audience_pushes.abandoners]\naudience = "cart_abandon"\nwebhook = "crm"\n'
            "interval = 3600\n"
        )
        env = {**os.environ, "PUSH_HOOK_SECRET": rx.secret}
        env.pop("SLOTWISE_CONFIG", None)
        args = [sys.executable, "-m", "slotwise", "notify", "serve", "--config", str(config),
                "--store", url, "--policies", str(policies), "--log-level", "error"]  # fmt: skip
        with open(tmp_path / "notify.log", "wb") as log:
            process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env)
        try:
            rx.wait_for(1, timeout=30)
        finally:
            process.terminate()
            process.wait(timeout=20)
        assert len(rx.accepted) == 1, (tmp_path / "notify.log").read_text()
        [delivery] = rx.accepted.values()
        assert [m["user_id"] for m in delivery.body["data"]["members"]] == ["u1"]


@pytest.mark.slow
async def test_slotwise_serve_pushes_the_audience(tmp_path: Path) -> None:
    """As a user of `slotwise serve` meets it: events and an erasure through its endpoints
    (two workers on one store), the table in slotwise.toml, the sender inside serve pushing
    each period once (the lease: one worker pushes), signed, with the users in the trigger
    state only."""
    import httpx

    from slotwise.proxy.loopback import free_port, wait_for_port

    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "p.sw").write_text(POLICY)
    token = "test-admin-token-0123456789"
    admin = {"authorization": f"Bearer {token}"}
    with webhook_receiver() as rx:
        config = tmp_path / "slotwise.toml"
        config.write_text(
            "[notify]\nlease_seconds = 1.0\npoll_interval = 0.05\n"
            f'[webhooks.crm]\nurl = "{rx.url}"\nsecrets_env = ["PUSH_HOOK_SECRET"]\n'
            '[audience_pushes.abandoners]\naudience = "cart_abandon"\nwebhook = "crm"\n'
            f'interval = 1\n[events]\nadmin_token = "{token}"\n'
        )
        env = {**os.environ, "PUSH_HOOK_SECRET": rx.secret}
        env.pop("SLOTWISE_CONFIG", None)
        port = free_port()
        args = [
            sys.executable, "-m", "slotwise", "serve", "--config", str(config),
            "--upstream", f"http://127.0.0.1:{free_port()}", "--policies", str(policies),
            "--store", f"sqlite:///{tmp_path / 'state.db'}?timeout=2", "--port", str(port),
            "--workers", "2", "--log-level", "error",
        ]  # fmt: skip
        with open(tmp_path / "serve.log", "wb") as log:
            process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env)
        try:
            wait_for_port(port, timeout=30)
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:

                async def send(consent: str, kind: str, user: str, eid: str) -> None:
                    event = {"type": kind, "id": eid, "time": time.time(), "user_id": user,
                             "properties": {"product_id": "sku-1", "price": 20.0}}  # fmt: skip
                    if kind == "purchase":
                        event["properties"] = {"order_id": eid, "value": 20.0, "currency": "EUR",
                                               "items": [{"product_id": "sku-1"}]}  # fmt: skip
                    batch = {"consent": consent, "events": [event]}
                    response = await client.post("/_sw/events", json=batch)
                    assert response.status_code == 200, response.text

                for user in ("u1", "u2", "u4"):
                    await send("personal", "add_to_cart", user, f"a-{user}")
                await send("contextual", "add_to_cart", "u3", "a-u3")
                await send("personal", "purchase", "u4", "p-u4")
                erased = await client.delete("/_sw/admin/users/u2", headers=admin)
                assert erased.status_code == 200, erased.text
                done = time.time()

                def after_the_events() -> list[Any]:
                    # a push of a period that began once every event was answered
                    pushed = list(rx.accepted.items())  # the receiver's thread adds to it
                    return [d for i, d in pushed if int(i.split(":")[2]) > done]

                deadline = time.monotonic() + 30
                while len(after_the_events()) < 2 and time.monotonic() < deadline:
                    await asyncio.sleep(0.05)
        finally:
            process.terminate()
            process.wait(timeout=20)
        pushes = after_the_events()
        assert len(pushes) >= 2, (tmp_path / "serve.log").read_text()
        for delivery in pushes:
            assert delivery.verified and delivery.body["type"] == "slotwise.audience"
            data = delivery.body["data"]
            assert data["push"] == "abandoners" and data["audience"] == "cart_abandon"
            # u2 erased, u3 without personal consent, u4 cancelled by the purchase
            assert [m["user_id"] for m in data["members"]] == ["u1"], data
        assert rx.duplicates == 0 and rx.rejected == 0  # each period pushed by one worker
