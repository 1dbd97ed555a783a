"""The HTTP edges: tracker URLs behind a TLS-terminating load balancer, CORS on the event
endpoints, per-client rate limits counted in the shared store, and /_sw/metrics behind the
admin rules unless configured public."""

from __future__ import annotations

import json
from typing import Any

import pytest
import redis as redis_py

from slotwise.proxy.app import ProxyApp
from slotwise.proxy.config import Settings
from tests.conftest import REPO
from tests.proxy.support import SPRING_AD, Canned, running, upstream_server
from tests.support.servers import RedisServer

POLICIES = REPO / "examples" / "adserver" / "policies"
TOKEN = "admin-token-0123456789"
PIXEL = "/_sw/px?t=impression&did=d1"


@pytest.fixture(autouse=True)
def _builtin_providers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLOTWISE_PLUGINS", "builtins")


def _ad() -> Canned:
    return Canned(200, [("Content-Type", "application/json")], json.dumps(SPRING_AD).encode())


async def _click_url(headers: dict[str, str], **settings: Any) -> str:
    async with upstream_server({"/ads/home-top": _ad()}) as upstream:
        app = ProxyApp(
            Settings.of(
                upstream_url=upstream.url,
                proxy_policies=str(POLICIES),
                tracking_allowed_hosts=("ads.example",),
                proxy_decision_deadline_ms=2000.0,  # a loaded machine must not fail it open
                proxy_signals_deadline_ms=2000.0,
                **settings,
            )
        )
        async with running(app) as client:
            response = await client.get("/ads/home-top", headers={"host": "ads.example", **headers})
    url: str = response.json()["creative"]["click_url"]
    return url


async def test_a_trusted_load_balancer_names_the_trackers_scheme() -> None:
    balancer = {"proxy_trusted_proxies": ("203.0.113.0/24",)}  # the test client's network
    https = {"x-forwarded-proto": "https"}
    assert (await _click_url(https, **balancer)).startswith("https://ads.example/_sw/click?")
    forwarded = {"forwarded": "for=192.0.2.1;proto=https;host=ads.example"}
    assert (await _click_url(forwarded, **balancer)).startswith("https://ads.example/_sw/click?")
    # an untrusted peer's word is not taken; nor a scheme that is not http(s)
    assert (await _click_url(https)).startswith("http://ads.example/_sw/click?")
    odd = {"x-forwarded-proto": "javascript"}
    assert (await _click_url(odd, **balancer)).startswith("http://ads.example/_sw/click?")


def _app(**settings: Any) -> ProxyApp:
    return ProxyApp(
        Settings.of(upstream_url="http://127.0.0.1:9", proxy_policies="", **settings),
        load_plugins=False,
    )


async def test_cors_preflights_are_answered_for_configured_origins() -> None:
    preflight = {
        "origin": "https://shop.example",
        "access-control-request-method": "POST",
        "access-control-request-headers": "content-type",
    }
    async with running(_app(events_cors_origins=("https://shop.example",))) as client:
        answer = await client.options("/_sw/events", headers=preflight)
        assert answer.status_code == 200
        assert answer.headers["access-control-allow-origin"] == "https://shop.example"
        assert "POST" in answer.headers["access-control-allow-methods"]
        other = await client.options("/_sw/events", headers={**preflight, "origin": "https://x.io"})
        assert other.status_code == 400
        batch = {"events": [{"type": "page_view", "id": "e1", "anonymous_id": "a1"}]}
        sent = await client.post(
            "/_sw/events", json=batch, headers={"origin": "https://shop.example"}
        )
        assert sent.status_code == 200
        assert sent.headers["access-control-allow-origin"] == "https://shop.example"
        # the admin API is not the browser's: no CORS there
        admin = await client.options(
            "/_sw/admin/users/u1", headers={**preflight, "access-control-request-method": "DELETE"}
        )
        assert "access-control-allow-origin" not in admin.headers
    async with running(_app()) as client:  # none configured: no CORS at all
        assert (await client.options("/_sw/events", headers=preflight)).status_code == 405


async def test_a_client_past_its_rate_gets_429_with_retry_after() -> None:
    async with running(_app(events_rate_limit="3/minute")) as client:
        statuses = [(await client.get(PIXEL)).status_code for _ in range(4)]
        assert statuses == [200, 200, 200, 429]
        refused = await client.get(PIXEL)
        assert refused.json()["error"]["code"] == "rate_limited"
        assert 1 <= int(refused.headers["retry-after"]) <= 60
        assert (await client.get("/_sw/health")).status_code == 200  # only the event paths


@pytest.mark.redis
async def test_the_rate_is_counted_across_proxies_on_one_redis(redis: RedisServer) -> None:
    settings = {"store_url": f"redis://127.0.0.1:{redis.port}/9", "events_rate_limit": "4/minute"}
    async with running(_app(**settings)) as first, running(_app(**settings)) as second:
        statuses = []
        for client in (first, second, first, second, first):
            statuses.append((await client.get(PIXEL)).status_code)
        assert statuses == [200, 200, 200, 200, 429]
    # both proxies closed their connections at shutdown, the rate limit's too
    with redis_py.Redis(port=redis.port) as admin:
        assert [c for c in admin.client_list() if c["db"] == "9"] == []


async def test_metrics_answer_loopback_and_the_admin_token_unless_public() -> None:
    async with running(_app(events_admin_token=TOKEN)) as client:  # from 203.0.113.7
        refused = await client.get("/_sw/metrics")
        assert refused.status_code == 403 and refused.json()["error"]["code"] == "metrics_private"
        wrong = await client.get("/_sw/metrics", headers={"authorization": "Bearer nope"})
        assert wrong.status_code == 401
        good = await client.get("/_sw/metrics", headers={"authorization": f"Bearer {TOKEN}"})
        assert good.status_code == 200 and "slotwise_requests_total" in good.text
    # a load balancer on loopback does not make its remote clients local
    async with running(_app(proxy_trusted_proxies=("203.0.113.0/24",))) as client:
        local = await client.get("/_sw/metrics", headers={"x-forwarded-for": "127.0.0.1"})
        assert local.status_code == 200
        remote = await client.get("/_sw/metrics", headers={"x-forwarded-for": "198.51.100.4"})
        assert remote.status_code == 403
    async with running(_app(proxy_metrics_public=True)) as client:
        assert (await client.get("/_sw/metrics")).status_code == 200
