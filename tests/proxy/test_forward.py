"""Forwarding alone (slotwise.proxy.forward): a request no policy could apply to is proxied and
counted exactly as the personalised path would pass it through."""

from __future__ import annotations

from typing import Any

from slotwise.proxy.app import ProxyApp
from slotwise.proxy.config import Settings
from tests.proxy.support import Canned, running, upstream_server
from tests.support.servers import free_port

BIG = bytes(range(256)) * 4096  # 1 MiB: streams through, not whole with its head


def _app(url: str, **settings: Any) -> ProxyApp:
    return ProxyApp(
        Settings.of(upstream_url=url, proxy_policies="", proxy_metrics_public=True, **settings),
        load_plugins=False,
    )


async def test_forwarded_answers_are_counted_as_passthroughs() -> None:
    routes = {
        "/a": Canned(200, [("Content-Type", "application/json"), ("ETag", '"x"')], b"{}"),
        "/big": Canned(200, [("Content-Type", "application/octet-stream")], BIG),
        "/gone": Canned(404, [("Connection", "keep-alive")], b"no"),
    }
    async with upstream_server(routes) as server:
        app = _app(server.url)
        async with running(app) as client:
            for _ in range(3):  # the same head again: the same answer
                answer = await client.get("/a")
                assert answer.status_code == 200 and answer.content == b"{}"
                assert answer.headers["etag"] == '"x"'
                assert answer.headers["content-length"] == "2"
                assert "connection" not in answer.headers
            big = await client.get("/big")
            assert big.content == BIG and big.headers["content-length"] == str(len(BIG))
            gone = await client.get("/gone")
            assert gone.status_code == 404 and gone.content == b"no"
            head = await client.head("/a")
            assert head.status_code == 200 and head.content == b""
            assert head.headers["content-length"] == "2"  # the representation's length
            assert app.runtime is not None
            assert app.runtime.engine.admission.waiting == 0
        metrics = app.metrics
        assert metrics.passthrough.get("no_campaign") == 6
        assert metrics.requests.get("2xx") == 5 and metrics.requests.get("4xx") == 1
        assert metrics.upstream_latency.count == 6 and metrics.request_latency.count == 6


async def test_an_upstream_that_is_down_answers_502() -> None:
    app = _app(f"http://127.0.0.1:{free_port()}")
    async with running(app) as client:
        answer = await client.get("/a")
        assert answer.status_code == 502
        assert answer.json()["error"]["code"] == "upstream_connect"
    assert app.metrics.upstream_errors.get("connect") == 1
    assert app.metrics.requests.get("5xx") == 1
