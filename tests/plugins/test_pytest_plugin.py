"""The fixtures slotwise ships to plugin authors (loaded through the pytest11 entry point)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Mapping
from typing import Any

from slotwise.plugins.gather import gather
from slotwise.plugins.provider import Provider, signal
from slotwise.plugins.registry import load_schema
from slotwise.plugins.request import RequestInfo
from slotwise.plugins.schema import SignalType, SignalValue
from slotwise.testing.proxy import Canned


class Mood(Provider[Any]):
    """A third-party-style provider: the visitor's mood, from a header."""

    name = "mood"
    inline = True
    signals = (signal("mood.now", SignalType.STRING, "mood", values=["happy", "sad"]),)

    async def fetch(self, request: RequestInfo) -> Mapping[str, SignalValue]:
        mood = request.header("x-mood")
        return {"mood.now": mood} if mood else {}


AD_SAD = "Something to smile about"
AD = {
    "placement": "home-top",
    "campaign_id": "cmp-mood",
    "creative": {"id": "cr-1", "headline": "Generic", "click_url": "https://shop.example/x"},
}
POLICY = """policy "mood" version 1

campaign cheer_up {
  applies when ad.campaign_id == "cmp-mood"
  slot headline at "$.creative.headline" {
    variant plain "Our offers"
    variant cheer "Something to smile about"
  }
  rule "cheer up the sad" when mood.now == "sad" then pin headline cheer
  rule "plain for the happy" when mood.now == "happy" then pin headline plain
  optimize clicks
  explore epsilon 5%
  holdout 0%
}
"""
# deadlines a loaded machine meets: a fail-open answer keeps the upstream's headline
PATIENT_DECISION = {"proxy_decision_deadline_ms": 2000.0}
PATIENT = {**PATIENT_DECISION, "proxy_signals_deadline_ms": 2000.0}


def test_register_provider_is_for_one_test_only(
    register_provider: Callable[[type[Provider[Any]]], object],
) -> None:
    register_provider(Mood)
    assert "mood.now" in load_schema()


def test_and_is_gone_afterwards() -> None:
    assert "mood.now" not in load_schema()


async def test_providers_and_requests(
    slotwise_providers: Any, signal_request: Callable[..., RequestInfo]
) -> None:
    async with slotwise_providers(Mood, "request") as providers:
        got = await gather(providers, signal_request("/", headers={"X-Mood": "sad"}))
    assert got.signals["mood.now"] == "sad"
    assert got.signals["request.path"] == "/"


async def test_proxy_client_over_asgi_with_a_fake_upstream(
    register_provider: Callable[[type[Provider[Any]]], object], slotwise_proxy: Any
) -> None:
    register_provider(Mood)
    routes = {"/ad.json": Canned.json(AD)}
    async with slotwise_proxy(routes, policies={"mood.sw": POLICY}, **PATIENT) as proxy:
        sad = await proxy.client.get("/ad.json", headers={"X-Mood": "sad"})
        happy = await proxy.client.get("/ad.json", headers={"X-Mood": "happy"})
        missing = await proxy.client.get("/nothing")
        assert [r.path for r in proxy.upstream.requests] == ["/ad.json", "/ad.json", "/nothing"]
    assert sad.status_code == 200
    assert json.loads(sad.content)["creative"]["headline"] == "Something to smile about"
    assert json.loads(happy.content)["creative"]["headline"] == "Our offers"
    assert missing.status_code == 404


class Stuck(Provider[Any]):
    """Never answers."""

    name = "stuck"
    deadline = 0.05
    signals = (signal("stuck.x", SignalType.STRING, "never"),)

    async def fetch(self, request: RequestInfo) -> Mapping[str, SignalValue]:
        await asyncio.sleep(3600)
        return {}


async def test_a_hung_provider_never_fails_a_proxied_request(
    register_provider: Callable[[type[Provider[Any]]], object], slotwise_proxy: Any
) -> None:
    register_provider(Mood)
    register_provider(Stuck)
    routes = {"/ad.json": Canned.json(AD)}
    # the decision's deadline only: the signals deadline stays the default a plugin author gets
    async with slotwise_proxy(routes, policies={"mood.sw": POLICY}, **PATIENT_DECISION) as proxy:
        started = time.perf_counter()
        response = await proxy.client.get("/ad.json", headers={"X-Mood": "sad"})
        elapsed = time.perf_counter() - started
        metrics = (await proxy.client.get("/_sw/metrics")).text
    assert response.status_code == 200
    assert json.loads(response.content)["creative"]["headline"] in ("Our offers", AD_SAD)
    assert elapsed < 2.0  # about its 50 ms deadline, with slack for a loaded machine (hung: 1 h)
    assert 'slotwise_signal_provider_misses_total{provider="stuck",cause="timeout"} 1' in metrics
