"""End to end: an OpenRTB exchange POSTs a bid request through the proxy; the decision for the
bid response's ad unit is made from the bid request's device, geo and consent, not from the
exchange's own HTTP request (issue 15: an iPhone / DEU / gdpr=1 bid was logged as a desktop,
nowhere, with the default consent)."""

from __future__ import annotations

import copy
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from slotwise.proxy.app import ProxyApp
from slotwise.proxy.config import Settings
from tests.plugins.openrtb_requests import (
    CONSENTING,
    EXCHANGE_AGENT,
    VENDOR,
    iphone_in_germany,
    published,
)
from tests.proxy.support import Canned, running, stored_json, upstream_server

POLICY = """policy "rtb" version 1

segment german_phone: geo.country == "DE" and device.type == "mobile" and device.os == "ios"

campaign rtb_video {
  applies when ad.campaign_id == "cmp-rtb"

  slot title at "vast:AdTitle" {
    variant plain "Sample VAST"
    variant de "Beispiel"
  }

  rule "German iPhones" when german_phone and consent.level == "personal" then pin title de
  rule "others" when not german_phone or consent.level == "contextual" then exclude title de
}
"""
# the real TC string was last updated in 2020: accept its age, the consent is what is tested
PLUGINS = {"consent": {"vendor_id": VENDOR, "max_age_days": 36_500}}
AUCTION = "/openrtb2/auction"


def _bid_response() -> bytes:
    """The specification's VAST bid response (6.3.2), bidding on the mobile example's imp."""
    response = copy.deepcopy(published("openrtb2.6_07"))
    bid = response["seatbid"][0]["bid"][0]
    bid["impid"] = "1"
    bid["cid"] = "cmp-rtb"
    return json.dumps(response).encode()


RESPONSE = _bid_response()


@pytest.fixture(autouse=True)
def _nothing_sent_yet() -> None:
    SENT.clear()


@asynccontextmanager
async def _proxy(policies: Path) -> AsyncIterator[tuple[ProxyApp, httpx.AsyncClient]]:
    """The proxy, with the built-in providers, in front of an exchange answering one bid."""
    (policies / "rtb.sw").write_text(POLICY)
    routes = {AUCTION: Canned(200, [("Content-Type", "application/json")], RESPONSE)}
    async with upstream_server(routes) as exchange:
        settings = Settings.of(
            upstream_url=exchange.url,
            proxy_policies=str(policies),
            proxy_decision_deadline_ms=2000.0,  # a loaded test machine must not fail it open
            tracking_secret="s" * 32,
            plugins=PLUGINS,
            proxy_metrics_public=True,  # scraped from the test client's address
        )
        app = ProxyApp(settings)
        async with running(app) as client:
            yield app, client
        assert [json.loads(body) for _, _, body in exchange.requests] == SENT


async def _records(app: ProxyApp) -> list[dict[str, Any]]:
    assert app.runtime is not None
    await app.runtime.engine.decision_log.flush()
    return [stored_json(entry.data) for entry in await app.runtime.store.log_read("decisions")]


SENT: list[dict[str, Any]] = []


async def _bid(client: httpx.AsyncClient, request: dict[str, Any]) -> dict[str, Any]:
    SENT.append(request)
    response = await client.post(
        AUCTION,
        content=json.dumps(request).encode(),
        headers={"Content-Type": "application/json", "User-Agent": EXCHANGE_AGENT},
    )
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def _title(answer: dict[str, Any]) -> str:
    adm = answer["seatbid"][0]["bid"][0]["adm"]
    return adm.split("<AdTitle>", 1)[1].split("</AdTitle>", 1)[0]


async def test_an_iphone_in_germany_is_decided_from_its_bid_request(tmp_path: Path) -> None:
    async with _proxy(tmp_path) as (app, client):
        answer = await _bid(client, iphone_in_germany())
        (record,) = await _records(app)
    assert "Beispiel" in _title(answer)
    assert record["personal"] is True and record["format"] == "openrtb"
    signals = record["signals"]
    assert (signals["device.type"], signals["device.os"], signals["device.browser"]) == (
        "mobile",
        "ios",
        "safari",
    )
    assert (signals["geo.country"], signals["geo.region"], signals["geo.city"]) == (
        "DE",
        "BE",
        "Berlin",
    )
    assert (signals["consent.level"], signals["consent.reason"]) == ("personal", "granted")
    assert signals["ortb.channel"] == "app" and signals["ad.campaign_id"] == "cmp-rtb"


async def test_the_same_with_gpp_and_a_malformed_string_is_a_counted_contextual_fallback(
    tmp_path: Path,
) -> None:
    with_gpp = iphone_in_germany(gpp=f"DBABMA~{CONSENTING['tc']}", gpp_sid=[2], consent=None)
    malformed = iphone_in_germany(gdpr=1, consent=CONSENTING["tc"][:17])
    async with _proxy(tmp_path) as (app, client):
        by_gpp = await _bid(client, with_gpp)
        by_malformed = await _bid(client, malformed)
        first, second = await _records(app)
        metrics = (await client.get("/_sw/metrics")).text
    assert "Beispiel" in _title(by_gpp) and first["personal"] is True
    assert first["signals"]["consent.reason"] == "granted"
    # served, not failed: contextual, so the German copy is not shown
    assert "Sample VAST" in _title(by_malformed)
    assert second["personal"] is False
    assert second["signals"]["consent.reason"] == "tcf_malformed"
    assert second["signals"]["device.os"] == "ios" and second["signals"]["geo.country"] == "DE"
    fallback = 'slotwise_signal_provider_fallbacks_total{provider="consent",cause="tcf_malformed"}'
    assert f"{fallback} 1" in metrics
