"""The client's side of an exchange: the request within the proxy's limits, the proxy's own
errors. Through a running proxy: tests/proxy/test_hygiene.py."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from slotwise.proxy.http_body import Refusal, read_request, send_error


def _receiver(*messages: dict[str, Any]) -> Any:
    queue = list(messages)

    async def receive() -> dict[str, Any]:
        if not queue:
            await asyncio.sleep(10)
        return queue.pop(0)

    return receive


async def test_a_request_within_the_limits_is_its_body() -> None:
    scope = {"headers": [(b"content-length", b"5")]}
    receive = _receiver(
        {"type": "http.request", "body": b"ab", "more_body": True},
        {"type": "http.request", "body": b"cde"},
    )
    assert await read_request(scope, receive, 100, 100, 1.0) == b"abcde"


async def test_each_limit_is_a_refusal_with_its_status_code_and_counter() -> None:
    long = {"headers": [(b"x", b"y" * 200)]}
    big = {"headers": [(b"content-length", b"500")]}
    chunked = {"headers": [(b"transfer-encoding", b"chunked")]}
    gone = _receiver({"type": "http.disconnect"})
    refusals = [
        await read_request(long, _receiver(), 100, 100, 1.0),
        await read_request(big, _receiver(), 1000, 100, 1.0),
        await read_request(chunked, gone, 1000, 100, 1.0),
        await read_request(chunked, _receiver(), 1000, 100, 0.05),
    ]
    assert [(r.status, r.code, r.reason) for r in refusals if isinstance(r, Refusal)] == [
        (431, "headers_too_large", "header_size"),
        (413, "body_too_large", "body_size"),
        (400, "incomplete_body", "incomplete_body"),
        (408, "body_timeout", "body_timeout"),
    ]


async def test_the_proxys_own_error_is_json_with_a_stable_code() -> None:
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await send_error(send, 404, "not_found", 'no "endpoint"', ((b"allow", b"GET"),))
    start, body = sent
    headers = dict(start["headers"])
    assert start["status"] == 404 and headers[b"x-slotwise-error"] == b"not_found"
    assert headers[b"allow"] == b"GET" and b"date" in headers
    assert json.loads(body["body"]) == {"error": {"code": "not_found", "message": 'no "endpoint"'}}
    assert headers[b"content-length"] == str(len(body["body"])).encode()


def test_the_head_alone_settles_a_request_without_a_body() -> None:
    from slotwise.proxy.http_body import request_head

    get = {"http_version": "1.1", "headers": [(b"host", b"proxy")]}
    empty = {"http_version": "1.1", "headers": [(b"host", b"proxy"), (b"content-length", b"0")]}
    # nothing to receive: no receive call, no await (the proxied request's common case)
    assert request_head(get, 100, 100) == b"" and request_head(empty, 100, 100) == b""
    # a body to receive: a declared length, chunking, or HTTP/2 (a body without a length)
    posted = {"http_version": "1.1", "headers": [(b"host", b"p"), (b"content-length", b"5")]}
    chunked = {"http_version": "1.1", "headers": [(b"host", b"p"), (b"transfer-encoding", b"x")]}
    h2 = {"http_version": "2", "headers": [(b"host", b"proxy")]}
    assert [request_head(s, 100, 100) for s in (posted, chunked, h2)] == [None, None, None]
    # the refusals of the head as read_request's
    big = {"http_version": "1.1", "headers": [(b"host", b"p"), (b"content-length", b"500")]}
    refused = request_head(big, 1000, 100)
    assert isinstance(refused, Refusal) and refused.status == 413
