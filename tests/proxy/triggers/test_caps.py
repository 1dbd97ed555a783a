"""Frequency caps (`cap N per D`) served: two proxies on one SQLite store share the counters,
so a campaign capped at 2 per day shows twice to one user whichever proxy answers; a trigger's
cap limits its campaign the same way; other users are not affected."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from slotwise.dsl.compiled import FrequencyCap
from slotwise.proxy.app import ProxyApp
from slotwise.proxy.caps import cap_key
from slotwise.proxy.config import Settings
from slotwise.proxy.state import open_store
from tests.proxy.support import SPRING_AD, Canned, running, upstream_server
from tests.support.servers import RedisServer
from tests.support.timing import clear_of_boundary

POLICY = """policy "caps" version 1
campaign spring_sale {
  applies when ad.campaign_id == "cmp-spring"
  slot headline at "$.creative.headline" { variant h1 "Spring deals are here" }
  cap 2 per 1d
}
campaign cart_reminder {
  applies when ad.campaign_id == "cmp-spring"
  slot cta at "$.creative.cta" { variant back "Back to your cart" }
}
trigger cart_abandon {
  on event add_to_cart
  window 7d
  show campaign cart_reminder
  cap 1 per 1h
}
"""


@pytest.fixture(autouse=True)
def _builtin_providers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLOTWISE_PLUGINS", "builtins")


@asynccontextmanager
async def _proxies(
    tmp: Path, count: int, store: str | None = None
) -> AsyncIterator[list[httpx.AsyncClient]]:
    (tmp / "policies").mkdir()
    (tmp / "policies" / "caps.sw").write_text(POLICY, encoding="utf-8")
    routes = {
        "/ad": Canned(200, [("Content-Type", "application/json")], json.dumps(SPRING_AD).encode())
    }
    async with upstream_server(routes) as server, AsyncExitStack() as stack:
        clients = []
        for _ in range(count):
            settings = Settings.of(
                upstream_url=server.url,
                proxy_policies=str(tmp / "policies"),
                store_url=store or f"sqlite:///{tmp}/state.db?timeout=2",  # a loaded machine
                proxy_decision_deadline_ms=2000.0,
                proxy_signals_deadline_ms=5000.0,
                proxy_metrics_public=True,  # scraped in-process (no loopback client address)
                plugins={name: {"deadline_ms": 5000.0} for name in ("consent", "profile")},
            )
            clients.append(await stack.enter_async_context(running(ProxyApp(settings))))
        yield clients


def _cookie(user: str) -> dict[str, str]:
    return {"cookie": f"sw_uid={user}; sw_consent=personal"}


async def _ad(client: httpx.AsyncClient, user: str) -> dict[str, Any]:
    response = await client.get("/ad", headers=_cookie(user))
    assert response.status_code == 200
    ad: dict[str, Any] = response.json()
    return ad


async def _counted(tmp: Path, user: str, label: str, cap: FrequencyCap, expected: int) -> None:
    """Wait until the store's counter says ``expected`` (it is flushed every 20 ms)."""
    async with open_store(f"sqlite:///{tmp}/state.db?timeout=2") as store:
        for _ in range(200):
            if await store.counter(cap_key(user, label, cap, time.time())) >= expected:
                return
            await asyncio.sleep(0.05)
    raise AssertionError(f"{label} of {user} never counted {expected}")


async def test_a_campaign_cap_holds_across_two_proxies(tmp_path: Path) -> None:
    await clear_of_boundary(86_400.0)  # every ad in one day's window
    async with _proxies(tmp_path, 2) as (one, two):
        cap, label = FrequencyCap(2, 86_400.0), "campaign:spring_sale"
        headlines = []
        for n, client in enumerate((one, two, one, two), start=1):
            headlines.append((await _ad(client, "u1"))["creative"]["headline"])
            await _counted(tmp_path, "u1", label, cap, min(n, 2))
        assert headlines == ["Spring deals are here"] * 2 + ["Spring collection"] * 2
        assert (await _ad(two, "u2"))["creative"]["headline"] == "Spring deals are here"
        metrics = (await one.get("/_sw/metrics")).text
        assert 'slotwise_campaigns_skipped_total{campaign="spring_sale",reason="capped"}' in metrics


async def test_a_trigger_cap_limits_its_campaign(tmp_path: Path) -> None:
    await clear_of_boundary(3600.0)  # both ads in one hour's window
    async with _proxies(tmp_path, 2) as (one, two):
        event = {"type": "add_to_cart", "id": "c1", "time": time.time(), "user_id": "u1",
                 "properties": {"product_id": "sku-1", "price": 20.0}}  # fmt: skip
        sent = await one.post(
            "/_sw/events", json={"consent": "personal", "events": [event]}, headers=_cookie("u1")
        )
        assert sent.status_code == 200, sent.text
        first = await _ad(two, "u1")
        assert first["creative"]["cta"] == "Back to your cart"
        assert "offer" not in first  # no ladder, no offer
        await _counted(tmp_path, "u1", "trigger:cart_abandon", FrequencyCap(1, 3600.0), 1)
        second = await _ad(one, "u1")
        assert second["creative"]["cta"] == "Shop"  # capped: 1 per hour


async def test_an_event_on_one_proxy_arms_the_trigger_on_another_over_redis(
    tmp_path: Path, redis: RedisServer
) -> None:
    url = redis.url.rsplit("/", 1)[0] + "/3?timeout=2"  # a database of its own
    async with _proxies(tmp_path, 2, url) as (one, two):
        properties = {"product_id": "sku-1", "price": 20.0}
        event = {"type": "add_to_cart", "id": f"c-{time.time_ns()}", "time": time.time(),
                 "user_id": "u-redis", "properties": properties}  # fmt: skip
        sent = await one.post(
            "/_sw/events", json={"consent": "personal", "events": [event]},
            headers=_cookie("u-redis"),
        )  # fmt: skip
        assert sent.status_code == 200, sent.text
        response = await two.get("/ad", headers=_cookie("u-redis"))  # the very next request
        assert response.json()["creative"]["cta"] == "Back to your cart"
