"""HTTP hygiene through the app: hop-by-hop fields, X-Forwarded-For, limits, upstream errors."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from slotwise.proxy.app import ProxyApp
from slotwise.proxy.config import Settings
from slotwise.proxy.http_hygiene import (
    ForwardingPolicy,
    client_response_headers,
    narrow_accept_encoding,
    upstream_request_headers,
)
from tests.proxy.support import Canned, running, upstream_server
from tests.support.servers import free_port


def _app(url: str, **settings: Any) -> ProxyApp:
    return ProxyApp(
        Settings.of(upstream_url=url, proxy_policies="", proxy_metrics_public=True, **settings),
        load_plugins=False,
    )


def test_request_headers_drop_hop_by_hop_and_connection_named() -> None:
    headers = [
        (b"Connection", b"keep-alive, X-Private"),
        (b"X-Private", b"secret"),
        (b"Keep-Alive", b"timeout=5"),
        (b"TE", b"trailers"),
        (b"Upgrade", b"h2c"),
        (b"Proxy-Authorization", b"Basic x"),
        (b"Host", b"evil.example"),
        (b"Content-Length", b"3"),
        (b"Accept", b"*/*"),
    ]
    out = upstream_request_headers(headers, "198.51.100.1", ForwardingPolicy())
    request_id = out.pop()  # always last: the client's, or a fresh one
    assert request_id[0] == b"x-request-id" and len(request_id[1]) == 16
    assert out == [
        (b"accept", b"*/*"),
        (b"via", b"1.1 slotwise"),
        (b"x-forwarded-for", b"198.51.100.1"),
    ]


def test_a_request_id_is_kept_when_sane_else_replaced() -> None:
    def sent(value: bytes) -> bytes:
        headers = [(b"X-Request-Id", value), (b"x-request-id", b"second")][: 2 if value else 1]
        out = upstream_request_headers(headers, "198.51.100.1", ForwardingPolicy())
        assert [name for name, _ in out].count(b"x-request-id") == 1
        assert out[-1][0] == b"x-request-id"
        return out[-1][1]

    assert sent(b"3f2c-44a1:trace/7") == b"3f2c-44a1:trace/7"
    for bad in (b"", b"has space", b"x" * 129, "é".encode()):
        fresh = sent(bad)
        assert fresh != bad and len(fresh) == 16, bad
    ids = {sent(b"") for _ in range(100)}
    assert len(ids) == 100


def test_x_forwarded_for_trusted_only_from_configured_proxies() -> None:
    headers = [(b"x-forwarded-for", b"1.2.3.4")]
    trusted = ForwardingPolicy.parse(["10.0.0.0/8"])
    assert (b"x-forwarded-for", b"1.2.3.4, 10.1.2.3") in upstream_request_headers(
        headers, "10.1.2.3", trusted
    )
    assert (b"x-forwarded-for", b"192.0.2.9") in upstream_request_headers(
        headers, "192.0.2.9", trusted
    )
    with pytest.raises(ValueError, match="not an IP"):
        ForwardingPolicy.parse(["nope"])


def test_accept_encoding_narrowed_to_what_the_proxy_decodes() -> None:
    assert narrow_accept_encoding(b"gzip, zstd;q=1.0, deflate") == b"gzip, deflate"
    assert narrow_accept_encoding(b"zstd") == b"identity"


def test_response_headers_keep_end_to_end_order() -> None:
    headers = [
        (b"server", b"up"),
        (b"connection", b"x-hop"),
        (b"x-hop", b"1"),
        (b"transfer-encoding", b"chunked"),
        (b"set-cookie", b"a=1"),
        (b"set-cookie", b"b=2"),
    ]
    assert client_response_headers(headers) == [
        (b"server", b"up"),
        (b"set-cookie", b"a=1"),
        (b"set-cookie", b"b=2"),
    ]


async def test_both_directions_through_the_app() -> None:
    def echo(target: bytes, headers: dict[str, str], body: bytes) -> Canned:
        return Canned(
            200,
            [
                ("Content-Type", "text/plain"),
                ("Connection", "keep-alive, X-Upstream-Private"),
                ("X-Upstream-Private", "1"),
                ("Keep-Alive", "timeout=5"),
                ("Server", "adserver"),
                ("Date", "Sun, 22 Nov 2026 05:00:00 GMT"),
            ],
            body,
        )

    async with upstream_server({"/echo": echo}) as server, running(_app(server.url)) as client:
        response = await client.post(
            "/echo?x=1",
            content=b"hello",
            headers={"Connection": "X-Client-Private", "X-Client-Private": "s", "X-Keep": "k"},
        )
        assert response.status_code == 200 and response.content == b"hello"
        assert "x-upstream-private" not in response.headers
        assert "keep-alive" not in response.headers
        assert response.headers.get_list("server") == ["adserver"]
        assert len(response.headers.get_list("date")) == 1
        target, sent, body = server.requests[-1]
        assert target == b"/echo?x=1" and body == b"hello"
        assert "x-client-private" not in sent and sent["x-keep"] == "k"
        assert sent["host"] == f"127.0.0.1:{server.port}"  # from config, not the request
        assert sent["x-forwarded-for"] == "203.0.113.7"
        assert sent["via"] == "1.1 slotwise"
        assert "via" not in response.headers  # responses keep the upstream's headers exactly


async def test_limits_answer_431_and_413() -> None:
    async with upstream_server({"/": Canned(200, [], b"ok")}) as server:
        app = _app(server.url, proxy_max_header_bytes=512, proxy_max_body_bytes=100)
        async with running(app) as client:
            big_header = await client.get("/", headers={"X-Big": "a" * 600})
            assert big_header.status_code == 431
            assert big_header.json()["error"]["code"] == "headers_too_large"
            big_body = await client.post("/", content=b"x" * 101)
            assert big_body.status_code == 413

            async def stream():  # type: ignore[no-untyped-def]
                for _ in range(5):
                    yield b"y" * 30

            assert (await client.post("/", content=stream())).status_code == 413
            assert (await client.post("/", content=b"x" * 100)).status_code == 200
        assert not any(b"x" * 101 in r[2] for r in server.requests)
        assert app.metrics.refused.get("body_size") == 2


async def test_a_body_that_trickles_in_answers_408() -> None:
    async with upstream_server({"/": Canned(200, [], b"ok")}) as server:
        app = _app(server.url, proxy_body_timeout=0.2)
        async with running(app) as client:

            async def trickle():  # type: ignore[no-untyped-def]
                yield b"y" * 10
                await asyncio.sleep(5)  # the timeout is over long before
                yield b"y"

            stalled = await client.post("/", content=trickle())
            assert stalled.status_code == 408
            assert stalled.json()["error"]["code"] == "body_timeout"
            assert (await client.post("/", content=b"x" * 10)).status_code == 200
            assert (await client.get("/")).status_code == 200  # no body: nothing to wait for
        assert len(server.requests) == 2 and app.metrics.refused.get("body_timeout") == 1


async def test_a_body_that_breaks_off_answers_400_not_nothing() -> None:
    # the server reports a broken body (half-closed, bad chunking) as a disconnect; returning
    # without an answer made it send its own 500
    async with upstream_server({"/": Canned(200, [], b"ok")}) as server:
        app = _app(server.url)
        async with running(app):
            scope = {
                "type": "http",
                "method": "POST",
                "path": "/",
                "raw_path": b"/",
                "query_string": b"",
                "headers": [(b"host", b"proxy.test"), (b"content-length", b"100")],
                "client": ("203.0.113.7", 50000),
            }
            parts = iter([{"type": "http.request", "body": b"ab", "more_body": True}])
            sent: list[dict[str, Any]] = []

            async def receive() -> dict[str, Any]:
                return next(parts, {"type": "http.disconnect"})

            async def send(message: dict[str, Any]) -> None:
                sent.append(message)

            await app(scope, receive, send)
        assert sent[0]["status"] == 400
        assert b'"code":"incomplete_body"' in sent[1]["body"]
        assert not server.requests and app.metrics.refused.get("incomplete_body") == 1


async def test_refused_upstream_is_502_and_hang_is_504() -> None:
    async with running(_app(f"http://127.0.0.1:{free_port()}")) as client:
        response = await client.get("/anything")
        assert response.status_code == 502
        assert response.json()["error"]["code"] == "upstream_connect"
    async with upstream_server({"/slow": Canned(200, [], b"x", delay=3)}) as server:
        app = _app(server.url, upstream_timeout=0.2)
        async with running(app) as client:
            response = await client.get("/slow")
            assert response.status_code == 504
            assert response.json()["error"]["code"] == "upstream_timeout"
            assert len(response.headers.get_list("date")) == 1
        assert app.metrics.upstream_errors.get("timeout") == 1


async def test_own_endpoints() -> None:
    async with upstream_server({}) as server, running(_app(server.url)) as client:
        assert (await client.get("/_sw/health")).text == "ok\n"
        assert (await client.get("/_sw/ready")).status_code == 200
        metrics = await client.get("/_sw/metrics")
        assert metrics.headers["content-type"].startswith("text/plain; version=0.0.4")
        assert "# TYPE slotwise_upstream_latency_seconds histogram" in metrics.text
        pixel = await client.get("/_sw/px?t=impression&did=abc")
        assert pixel.status_code == 200 and pixel.headers["content-type"] == "image/gif"
        assert (await client.get("/_sw/nothing-here")).status_code == 404
        assert server.requests == []  # none of these went upstream


async def test_bodiless_responses_keep_their_framing() -> None:
    routes = {
        "/doc": Canned(200, [("Content-Type", "application/json")], b'{"a": 1}'),
        "/empty": Canned(204, [("X-A", "1")], b""),
    }
    async with upstream_server(routes) as server, running(_app(server.url)) as client:
        head = await client.head("/doc")
        assert head.status_code == 200 and head.content == b""
        assert head.headers["content-length"] == "8"  # the GET's length, as the upstream said
        empty = await client.get("/empty")
        assert empty.status_code == 204 and "content-length" not in empty.headers
        assert empty.headers["x-a"] == "1"
