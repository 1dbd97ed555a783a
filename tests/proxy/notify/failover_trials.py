"""Failover trials: two ``slotwise notify serve`` processes on one Redis, the active one killed
with SIGKILL while it sends; every notification must reach the webhook receiver, and none is
accepted twice by its idempotency key (redeliveries under the same key are counted).

Shared by the short default-run test (test_failover.py) and the 20-trial benchmark
(tests/benchmarks/test_notify_failover.py).
"""

from __future__ import annotations

import asyncio
import math
import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from slotwise.plugins.registry import load_schema
from slotwise.proxy.events import EventCollector
from slotwise.proxy.events.schema import AddToCartEvent, ProductProps
from slotwise.proxy.notify.lease import LEASE_PREFIX
from slotwise.proxy.notify.outbox import OUTBOX_LOG, decode
from slotwise.proxy.policy_snapshot import compile_directory
from slotwise.proxy.state import open_store
from slotwise.proxy.triggers import TriggerEngine
from tests.support.notify import webhook_receiver
from tests.support.servers import redis_server

POLICY = """policy "failover" version 1

campaign reminder {
  slot banner at "$.banner.text" {
    variant plain "Your cart is waiting"
  }
}

trigger cart_abandon {
  on event add_to_cart
  wait 2s
  window 1d
  show campaign reminder
  notify webhook "crm"
}
"""
AOF = ("--appendonly", "yes", "--appendfsync", "always")
LEASE = 1.0


@dataclass
class Trial:
    enqueued: int
    delivered: int  # distinct keys the receiver accepted
    missing: int  # enqueued, never accepted: must be 0
    redelivered: int  # requests for a key already accepted (the receiver drops them by id)
    takeover: float  # seconds from the kill to the next accepted notification


class SenderProcess:
    def __init__(self, directory: Path, config: Path, env: dict[str, str], name: str) -> None:
        self.log = directory / f"{name}.log"
        with open(self.log, "wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "slotwise", "notify", "serve", "--config",
                 str(config), "--log-level", "warning"],
                stdout=out, stderr=subprocess.STDOUT, env=env,
            )  # fmt: skip

    def owner(self, timeout: float = 20.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.log.read_text().splitlines():
                if line.startswith("slotwise notify: sender "):
                    return line.split()[3]
            if self.process.poll() is not None:
                raise AssertionError(f"sender exited: {self.log.read_text()}")
            time.sleep(0.05)
        raise AssertionError("the sender did not start")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


async def _active_owner(url: str) -> str | None:
    async with open_store(url) as store:
        raw = await store.get(f"{LEASE_PREFIX}{math.floor(time.time() / LEASE)}")
    return raw.decode() if raw else None


async def failover_trial(directory: Path, rng: random.Random, count: int = 150) -> Trial:
    directory.mkdir(parents=True, exist_ok=True)
    slow = lambda msg_id, attempt: (time.sleep(0.01), "ok")[1]  # noqa: E731 (sends in flight)
    with redis_server(directory / "redis", *AOF) as redis, webhook_receiver(fault=slow) as rx:
        config = directory / "slotwise.toml"
        config.write_text(
            f'[store]\nurl = "{redis.url}"\n'
            f"[notify]\nlease_seconds = {LEASE}\npoll_interval = 0.05\nretry_base = 0.1\n"
            "retry_max = 0.5\ntimeout = 2.0\nconcurrency = 4\n"
            f'[webhooks.crm]\nurl = "{rx.url}"\nsecrets_env = ["TRIAL_HOOK_SECRET"]\n'
        )
        policies = directory / "policies"
        policies.mkdir()
        (policies / "p.sw").write_text(POLICY)
        config.write_text(config.read_text() + f'[proxy]\npolicies = "{policies}"\n')
        env = {**os.environ, "TRIAL_HOOK_SECRET": rx.secret}
        env.pop("SLOTWISE_CONFIG", None)
        senders = [SenderProcess(directory, config, env, name) for name in ("a", "b")]
        try:
            owners = {s.owner(): s for s in senders}
            # the notifications come from the trigger engine, as in production: add_to_cart
            # events whose `wait` ends over the next three seconds, collected into the store
            start = time.time()
            policy_set = compile_directory(policies, load_schema())
            events = [
                AddToCartEvent(
                    id=f"atc-{i}",
                    user_id=f"user-{i}",
                    time=start - rng.uniform(0.0, 2.0),
                    properties=ProductProps(product_id="sku-1", price=20.0),
                )
                for i in range(count)
            ]
            async with open_store(redis.url) as store, EventCollector(store) as collector:
                collector.triggers = TriggerEngine(store, lambda: policy_set)
                await collector.collect(events, consent="personal")
                keys = {decode(e.data).key for e in await store.log_read(OUTBOX_LOG, count=count)}
            assert len(keys) == count
            await asyncio.sleep(rng.uniform(0.3, 2.5))
            active = None
            while active is None:  # the lease may be between two windows: ask again
                active = owners.get(await _active_owner(redis.url) or "")
                await asyncio.sleep(0.02)
            before = len(rx.accepted)
            active.process.send_signal(signal.SIGKILL)
            active.process.wait()
            killed_at = time.monotonic()
            takeover = 0.0
            deadline = time.monotonic() + 60
            while len(rx.accepted) < count and time.monotonic() < deadline:
                if not takeover and len(rx.accepted) > before:
                    takeover = time.monotonic() - killed_at
                await asyncio.sleep(0.02)
        finally:
            for sender in senders:
                sender.stop()
        delivered = set(rx.accepted)
        return Trial(
            enqueued=count,
            delivered=len(delivered & keys),
            missing=len(keys - delivered),
            redelivered=rx.duplicates,
            takeover=takeover,
        )
