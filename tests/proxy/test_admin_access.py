"""The admin API's client is the one the trusted-proxy rules give; failed tokens are throttled
per client address."""

from __future__ import annotations

from typing import Any

import httpx

from slotwise.proxy.app import ProxyApp
from slotwise.proxy.config import Settings
from slotwise.proxy.events.throttle import FailureThrottle
from slotwise.proxy.http_hygiene import ForwardingPolicy
from tests.proxy.support import running, upstream_server

TOKEN = "admin-token-0123456789"
_GOOD = {"Authorization": f"Bearer {TOKEN}"}
_BAD = {"Authorization": "Bearer not-the-token-at-all"}


def _app(url: str, **settings: Any) -> ProxyApp:
    return ProxyApp(
        Settings.of(
            upstream_url=url,
            proxy_policies="",
            proxy_trusted_proxies=["127.0.0.1/32"],
            events_admin_token=TOKEN,
            **settings,
        ),
        load_plugins=False,
    )


def _client(app: ProxyApp, peer: str) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(peer, 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://proxy.test")


def test_the_client_address_under_the_trusted_proxy_rules() -> None:
    rules = ForwardingPolicy.parse(["127.0.0.1/32", "10.0.0.0/8"])

    def client(peer: str, *xff: bytes) -> str:
        return rules.client_address(peer, [(b"x-forwarded-for", v) for v in xff])

    assert client("127.0.0.1") == "127.0.0.1"  # a local client, no balancer in between
    assert client("127.0.0.1", b"198.51.100.9") == "198.51.100.9"
    assert client("127.0.0.1", b"127.0.0.1, 198.51.100.9") == "198.51.100.9"  # a forged start
    assert client("127.0.0.1", b"198.51.100.9, 10.0.0.4") == "198.51.100.9"  # two balancers
    assert client("127.0.0.1", b"127.0.0.1", b"10.1.1.1") == "127.0.0.1"  # all trusted
    assert client("127.0.0.1", b"unknown") == "unknown"
    assert client("203.0.113.7", b"127.0.0.1") == "203.0.113.7"  # an untrusted peer's word
    assert ForwardingPolicy().client_address("127.0.0.1", [(b"x-forwarded-for", b"1.2.3.4")]) == (
        "127.0.0.1"
    )


async def test_a_remote_client_behind_a_local_balancer_is_not_loopback() -> None:
    async with upstream_server({}) as server:
        app = _app(server.url)
        async with running(app), _client(app, "127.0.0.1") as local:
            url = "/_sw/admin/users/u1"
            assert (await local.delete(url, headers=_GOOD)).status_code == 200
            for forwarded in ("198.51.100.9", "127.0.0.1, 198.51.100.9", "::1, 198.51.100.9"):
                remote = await local.delete(url, headers={**_GOOD, "X-Forwarded-For": forwarded})
                assert remote.status_code == 403, forwarded
                assert remote.json()["error"]["code"] == "admin_loopback_only"
            via_local = await local.delete(url, headers={**_GOOD, "X-Forwarded-For": "127.0.0.1"})
            assert via_local.status_code == 200  # the balancer says the client is local
            async with _client(app, "203.0.113.7") as outside:
                forged = await outside.delete(url, headers={**_GOOD, "X-Forwarded-For": "::1"})
                assert forged.status_code == 403  # not a trusted proxy: its header is no proof


async def test_failed_tokens_are_throttled_per_client() -> None:
    async with upstream_server({}) as server:
        app = _app(server.url, events_admin_loopback_only=False)
        async with running(app), _client(app, "127.0.0.1") as balancer:
            url = "/_sw/admin/users/u1"
            one = {"X-Forwarded-For": "198.51.100.1"}
            for _ in range(5):
                assert (await balancer.delete(url, headers={**_BAD, **one})).status_code == 401
            for headers in (_BAD, _GOOD):  # throttled: even the right token waits
                throttled = await balancer.delete(url, headers={**headers, **one})
                assert throttled.status_code == 429
                assert throttled.json()["error"]["code"] == "admin_throttled"
                assert 0 < int(throttled.headers["retry-after"]) <= 60
            profile = await balancer.put("/_sw/admin/profiles/u1", headers={**_GOOD, **one})
            assert profile.status_code == 429  # every admin endpoint
            other = {"X-Forwarded-For": "198.51.100.2"}
            assert (await balancer.delete(url, headers={**_GOOD, **other})).status_code == 200


def test_the_throttle_window_success_and_bounded_memory() -> None:
    now = [1000.0]
    throttle = FailureThrottle(limit=3, window=60.0, max_clients=100, clock=lambda: now[0])
    for _ in range(3):
        assert throttle.retry_after("a") is None
        throttle.failed("a")
    assert throttle.retry_after("a") == 60
    now[0] += 59.5
    assert throttle.retry_after("a") == 1
    now[0] += 0.5
    assert throttle.retry_after("a") is None  # the window passed
    throttle.failed("b")
    throttle.failed("b")
    throttle.succeeded("b")
    throttle.failed("b")
    throttle.failed("b")
    assert throttle.retry_after("b") is None  # a valid token forgot the earlier failures
    for i in range(1000):
        throttle.failed(f"10.0.{i // 256}.{i % 256}")
    assert len(throttle) == 100  # a flood of addresses costs bounded memory
