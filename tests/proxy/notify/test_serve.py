"""Through `slotwise serve` (two granian workers on one store): notifications the trigger
engine puts in the outbox arrive once, signed at the webhook receiver and as e-mail at a real
SMTP server (STARTTLS, AUTH); an erased user's pending notification never does; /_sw/metrics
counts the sends."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from slotwise.proxy.loopback import free_port, wait_for_port
from slotwise.proxy.notify.outbox import enqueue
from slotwise.proxy.state import open_store
from tests.proxy.notify.failover_trials import POLICY
from tests.proxy.notify.helpers import note
from tests.proxy.notify.test_email import write_templates
from tests.support.notify import smtp_server, webhook_receiver

pytestmark = pytest.mark.slow


async def test_serve_sends_what_the_outbox_holds(tmp_path: Path) -> None:
    with webhook_receiver() as rx, smtp_server(tmp_path) as sink:
        policies = tmp_path / "policies"
        policies.mkdir()
        (policies / "p.sw").write_text(POLICY)
        store_url = f"sqlite:///{tmp_path / 'state.db'}"
        config = tmp_path / "slotwise.toml"
        config.write_text(
            f"[notify]\nlease_seconds = 1.0\npoll_interval = 0.05\n"
            f'smtp_host = "127.0.0.1"\nsmtp_port = {sink.port}\nsmtp_from = "shop@example.com"\n'
            f'smtp_username = "{sink.username}"\nsmtp_password_env = "SERVE_SMTP_PASSWORD"\n'
            f'smtp_ca_file = "{sink.ca_file}"\n'
            f'templates_dir = "{write_templates(tmp_path / "templates")}"\n'
            f'[webhooks.crm]\nurl = "{rx.url}"\nsecrets_env = ["SERVE_HOOK_SECRET", '
            '"SERVE_HOOK_OLD_SECRET"]\n'
            f'[events]\nadmin_token = "test-admin-token-0123456789"\n'
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
            base = f"http://127.0.0.1:{port}"
            later = time.time() + 2.0
            async with open_store(store_url) as store:
                mail = note(
                    "u3",
                    channel="email",
                    template="cart-reminder",
                    traits={"name": "Ada", "email": "ada@example.com"},
                )
                await enqueue(
                    store, [note("u1", traits={"tier": "gold"}), note("u2", due=later), mail]
                )
            async with httpx.AsyncClient(base_url=base) as client:
                erased = await client.delete(
                    "/_sw/admin/users/u2",
                    headers={"authorization": "Bearer test-admin-token-0123456789"},
                )
                assert erased.status_code == 200, erased.text
                deadline = time.monotonic() + 30
                while not rx.accepted and time.monotonic() < deadline:
                    await asyncio.sleep(0.05)
                await asyncio.sleep(max(0.0, later - time.time()) + 1.0)
                [delivery] = rx.accepted.values()
                assert delivery.body["data"]["user_id"] == "u1"
                assert delivery.body["data"]["traits"] == {"tier": "gold"}
                assert rx.duplicates == 0 and rx.rejected == 0
                assert len(rx.attempts) == 1  # u2 was erased before it was due
                sink.wait_for(1, timeout=20)
                [message] = sink.messages
                assert message["To"] == "ada@example.com"
                assert message["X-Slotwise-Notification"] == mail.key
                metrics = (await client.get("/_sw/metrics")).text
                assert "slotwise_notifications_sent_total 2" in metrics
                assert "slotwise_notifications_dead_lettered_total 0" in metrics
        finally:
            process.terminate()
            process.wait(timeout=20)
