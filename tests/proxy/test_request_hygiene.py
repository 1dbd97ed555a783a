"""RFC 9112 request hygiene on every path: one Host, a valid request target, the header limit
on the proxy's own endpoints too, and /_sw/ routing on the target as sent."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Any

import httpx

from slotwise.proxy import http_body
from slotwise.proxy.app import ProxyApp
from slotwise.proxy.config import Settings
from slotwise.proxy.http_body import Refusal, head_refusal
from tests.proxy.support import Canned, running, upstream_server, wait_ready
from tests.support.servers import free_port

_OK = Canned(200, [("Content-Type", "text/plain")], b"upstream\n")


def _app(url: str, **settings: Any) -> ProxyApp:
    return ProxyApp(
        Settings.of(upstream_url=url, proxy_policies="", **settings), load_plugins=False
    )


def _scope(raw_path: bytes, headers: list[tuple[bytes, bytes]], **extra: Any) -> dict[str, Any]:
    return {
        "type": "http",
        "http_version": "1.1",
        "method": "GET",
        "path": raw_path.decode("latin-1"),
        "raw_path": raw_path,
        "query_string": b"",
        "headers": headers,
        "client": ("203.0.113.7", 50000),
        **extra,
    }


async def _call(app: ProxyApp, scope: dict[str, Any]) -> tuple[int, bytes]:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:])


_HOST = (b"host", b"proxy.test")


def test_the_head_checks() -> None:
    def code(raw: bytes, headers: list[tuple[bytes, bytes]] | None = None, **kw: Any) -> str:
        refused = head_refusal(_scope(raw, [_HOST] if headers is None else headers, **kw), 512)
        return refused.code if isinstance(refused, Refusal) else "ok"

    assert code(b"/ad/slot.json?x=1") == "ok"
    assert code(b"/a/..b/.c/c..") == "ok"  # dots inside a segment are a name
    assert code(b"/a%2Fb") == "ok"  # an encoded slash is data, not a segment
    assert code(b"/") == "ok"
    assert code(b"/", []) == "bad_host"
    assert code(b"/", [(b"host", b"")]) == "bad_host"  # granian's way of saying "no Host"
    assert code(b"/", [_HOST, (b"host", b"evil.example")]) == "bad_host"
    assert code(b"/", [], http_version="1.0") == "ok"  # HTTP/1.0 has no Host requirement
    assert code(b"/", [_HOST, (b"x-big", b"a" * 600)]) == "headers_too_large"
    for bad in (b"*", b"example.com:443", b"/a/../b", b"/..", b"/a/./b", b"/a/%2e%2E/b",
                b"/a/%2E/b", b"/a b", b"/a\x01", b"/caf\xc3\xa9", b"/a#frag"):  # fmt: skip
        assert code(bad) == "bad_request_target", bad
    assert code(b"/", query_string=b"q=a b") == "bad_request_target"

    def message(raw: bytes, query: bytes = b"") -> str:
        refused = head_refusal(_scope(raw, [_HOST], query_string=query), 512)
        return refused.message if isinstance(refused, Refusal) else "ok"

    # a byte that must be encoded is named before a dot segment, wherever either is
    encode = "the request target holds a character that must be percent-encoded"
    dots = "the request target has a . or .. segment: send the resolved path"
    assert message(b"/a/../b c") == message(b"/a b/%2E/") == encode
    assert message(b"/a/../b", b"q=a b") == encode
    assert message(b"/a/./b", b"q=1") == message(b"/x%2e/%2e%2E") == dots
    assert message(b"/a/.b%2ex/", b"q=a.b") == "ok"


def test_sound_paths_are_remembered_and_refused_ones_never() -> None:
    def code(raw: bytes, query: bytes = b"") -> str:
        refused = head_refusal(_scope(raw, [_HOST], query_string=query), 512)
        return refused.code if isinstance(refused, Refusal) else "ok"

    http_body._SOUND_PATHS.clear()
    for _ in range(2):  # checked again (remembered the second time): the same answers
        assert code(b"/ads/home-top") == "ok"
        assert code(b"/ads/home-top", b"q=a b") == "bad_request_target"  # the query each time
        assert code(b"/a/../b") == code(b"/a b") == code(b"*") == "bad_request_target"
    assert set(http_body._SOUND_PATHS) == {b"/ads/home-top"}
    assert code(b"/" + b"a" * 300) == "ok" and len(http_body._SOUND_PATHS) == 1  # long: not kept
    for n in range(5000):  # bounded: emptied when full
        assert code(b"/p/%d" % n) == "ok"
    assert 0 < len(http_body._SOUND_PATHS) <= 4096


async def test_one_host_header_or_400_and_nothing_goes_upstream() -> None:
    async with upstream_server({"/": _OK}) as server:
        app = _app(server.url)
        async with running(app):
            assert await _call(app, _scope(b"/", [])) == (
                400,
                b'{"error":{"code":"bad_host",'
                b'"message":"an HTTP/1.1 request needs one Host header"}}',
            )
            two = _scope(b"/", [_HOST, (b"host", b"evil.example")])
            assert (await _call(app, two))[0] == 400
            assert (await _call(app, _scope(b"/_sw/health", [])))[0] == 400  # ours too
            assert await _call(app, _scope(b"/", [_HOST])) == (200, b"upstream\n")
        assert len(server.requests) == 1
        assert app.metrics.refused.get("bad_host") == 3


async def test_dot_segments_and_invalid_targets_are_refused_not_forwarded() -> None:
    async with upstream_server({"/": _OK, "/b": _OK}) as server:
        app = _app(server.url)
        async with running(app):
            for target in (b"/a/../b", b"/a/%2E%2E/b", b"/a/./b", b"/a\x7fb", b"*"):
                status, body = await _call(app, _scope(target, [_HOST]))
                assert status == 400 and b'"code":"bad_request_target"' in body, target
            assert (await _call(app, _scope(b"/b", [_HOST])))[0] == 200
        assert [r[0] for r in server.requests] == [b"/b"]
        assert app.metrics.refused.get("bad_target") == 5


async def test_the_header_limit_applies_to_the_proxys_own_endpoints() -> None:
    async with upstream_server({}) as server:
        app = _app(server.url, proxy_max_header_bytes=512)
        async with running(app) as client:
            for path in ("/_sw/health", "/_sw/ready", "/_sw/px?t=impression&did=a", "/_sw/x"):
                response = await client.get(path, headers={"X-Big": "a" * 600})
                assert response.status_code == 431, path
                assert response.json()["error"]["code"] == "headers_too_large"
            assert (await client.get("/_sw/health")).status_code == 200
        assert app.metrics.refused.get("header_size") == 4


async def test_an_encoded_slash_is_not_the_proxys_route() -> None:
    # /_sw%2fhealth decodes to /_sw/health; routing reads the target as sent, so it is the
    # upstream's path like any other, forwarded as written
    async with upstream_server({"/_sw%2fhealth": _OK, "/_sw%2Fready": _OK}) as server:
        app = _app(server.url)
        async with running(app) as client:
            for path in ("/_sw%2fhealth", "/_sw%2Fready"):
                response = await client.get(path)
                assert response.status_code == 200 and response.text == "upstream\n", path
            assert (await client.get("/_sw/health")).text == "ok\n"
        assert [r[0] for r in server.requests] == [b"/_sw%2fhealth", b"/_sw%2Fready"]


async def _raw(port: int, request: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        return await asyncio.wait_for(reader.read(65536), 10)
    finally:
        writer.close()


async def test_on_granian(tmp_path: Path) -> None:
    """What the server hands the app (raw_path, duplicate fields) is what the checks read."""
    port = free_port()
    async with upstream_server({"/_sw%2fhealth": _OK, "/x": _OK}) as upstream:
        env = dict(os.environ, SLOTWISE_PLUGINS="builtins")
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "slotwise", "serve", "--upstream", upstream.url,
            "--policies", str(tmp_path), "--port", str(port), env=env,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
                await wait_ready(client)
            two = await _raw(port, b"GET /x HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n")
            assert two.startswith(b"HTTP/1.1 400") and b"bad_host" in two, two
            none = await _raw(port, b"GET /x HTTP/1.1\r\nConnection: close\r\n\r\n")
            assert none.startswith(b"HTTP/1.1 400") and b"bad_host" in none, none
            dots = await _raw(port, b"GET /a/../x HTTP/1.1\r\nHost: a\r\n\r\n")
            assert dots.startswith(b"HTTP/1.1 400") and b"bad_request_target" in dots, dots
            encoded = await _raw(port, b"GET /_sw%2fhealth HTTP/1.1\r\nHost: a\r\n\r\n")
            assert encoded.startswith(b"HTTP/1.1 200") and encoded.endswith(b"upstream\n")
            big = b"GET /_sw/health HTTP/1.1\r\nHost: a\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n"
            assert (await _raw(port, big)).startswith(b"HTTP/1.1 431")
            fine = await _raw(port, b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n")
            assert fine.startswith(b"HTTP/1.1 200"), fine
        finally:
            process.terminate()
            await asyncio.wait_for(process.wait(), 10)
        assert [r[0] for r in upstream.requests] == [b"/_sw%2fhealth", b"/x"]
