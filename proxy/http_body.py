"""The client's side of an exchange: its request body in, the proxy's answer out.

``read_request`` receives a request body under the proxy's limits (header size, body size,
time), or says why the proxy refuses it. The writers send
an answer whole with its Content-Length (``send_whole``), pass an upstream response through as
it arrives (``stream``), or answer with one of the proxy's own JSON errors (``send_error``,
``upstream_failed``). Each counts the answer's status class and latency where the request
ends, so every answer is counted exactly once.
"""

from __future__ import annotations

import asyncio
import time
from email.utils import formatdate
from typing import NamedTuple

from slotwise.proxy.http_hygiene import (
    client_response_headers,
    content_length,
    header,
    header_bytes,
)
from slotwise.proxy.metrics import ProxyMetrics
from slotwise.proxy.upstream import UpstreamError, UpstreamResponse
from slotwise.types import Receive, Scope, Send


class ClientGone(Exception):
    """The request body ended before it was whole (the client went, or its framing broke)."""


class Refusal(NamedTuple):
    """A request the proxy answers itself: status, stable code, message; ``reason`` counts it."""

    status: int
    code: str
    message: str
    reason: str


_TOO_LARGE = Refusal(413, "body_too_large", "request body is too large", "body_size")


async def read_request(
    scope: Scope, receive: Receive, max_header_bytes: int, max_body_bytes: int, timeout: float
) -> bytes | Refusal:
    """The request body, or the refusal when the request breaks the proxy's limits.

    431 for a header block over ``max_header_bytes``, 413 for a body over ``max_body_bytes``
    (declared or streamed), 408 for a body that took longer than ``timeout``, 400 for one that
    broke off.
    """
    headers = scope["headers"]
    if header_bytes(headers) > max_header_bytes:
        return Refusal(431, "headers_too_large", "request headers are too large", "header_size")
    declared = content_length(headers)
    if declared is not None and declared > max_body_bytes:
        return _TOO_LARGE
    try:
        if declared == 0 or (declared is None and header(headers, b"transfer-encoding") is None):
            body = await _receive_body(receive, max_body_bytes)  # no body: answered at once
        else:
            try:
                async with asyncio.timeout(timeout):  # a body trickling in must not hold a worker
                    body = await _receive_body(receive, max_body_bytes)
            except TimeoutError:
                message = f"the request body did not arrive within {timeout:g}s"
                return Refusal(408, "body_timeout", message, "body_timeout")
    except ClientGone:
        # the body broke off (a half-close, chunking the server could not read): a client
        # still listening learns why; one that is gone never reads it
        return Refusal(400, "incomplete_body", "the request body ended early", "incomplete_body")
    return _TOO_LARGE if body is None else body


async def _receive_body(receive: Receive, limit: int) -> bytes | None:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        chunk = message.get("body", b"")
        if chunk:
            size += len(chunk)
            if size > limit:
                return None
            chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def send_whole(
    send: Send,
    status: int,
    headers: list[tuple[bytes, bytes]],
    body: bytes,
    metrics: ProxyMetrics,
    started: float,
) -> None:
    """Answer with ``body`` whole, its Content-Length appended to ``headers``."""
    headers.append((b"content-length", str(len(body)).encode()))
    metrics.requests.inc(f"{status // 100}xx")
    metrics.request_latency.observe(time.perf_counter() - started)
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def stream(
    metrics: ProxyMetrics,
    send: Send,
    response: UpstreamResponse,
    prefix: bytes,
    started: float,
    head: bool = False,
) -> None:
    """Pass the upstream response through as it arrives (never buffered whole)."""
    headers = client_response_headers(response.headers)
    if head or response.status in (204, 304):
        # no body; HEAD and 304 keep the length the upstream declared for the representation
        declared = content_length(response.headers)
        if declared is not None and response.status != 204:
            headers.append((b"content-length", str(declared).encode()))
        metrics.requests.inc(f"{response.status // 100}xx")
        metrics.request_latency.observe(time.perf_counter() - started)
        response.close()
        await send({"type": "http.response.start", "status": response.status, "headers": headers})
        await send({"type": "http.response.body", "body": b""})
        return
    if response.complete and not prefix:
        body, _ = await response.read_up_to(1 << 62)
        return await send_whole(send, response.status, headers, body, metrics, started)
    declared = content_length(response.headers)
    if declared is not None and header(response.headers, b"transfer-encoding") is None:
        headers.append((b"content-length", str(declared).encode()))
    metrics.requests.inc(f"{response.status // 100}xx")
    metrics.request_latency.observe(time.perf_counter() - started)
    try:
        await send({"type": "http.response.start", "status": response.status, "headers": headers})
        if prefix:
            await send({"type": "http.response.body", "body": prefix, "more_body": True})
        while chunk := await response.next_chunk():
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
    except UpstreamError as exc:
        # the head is out: nothing left but to cut the response short
        metrics.upstream_errors.inc(exc.failure.value)
        raise
    finally:
        response.close()


async def upstream_failed(metrics: ProxyMetrics, send: Send, exc: UpstreamError) -> None:
    """The client's answer when the upstream failed before anything was sent: 502 or 504."""
    metrics.upstream_errors.inc(exc.failure.value)
    metrics.requests.inc(f"{exc.failure.status // 100}xx")
    await send_error(send, exc.failure.status, f"upstream_{exc.failure.value}", exc.detail)


async def send_error(
    send: Send,
    status: int,
    code: str,
    message: str,
    headers: tuple[tuple[bytes, bytes], ...] = (),
) -> None:
    """An answer of the proxy's own: ``{"error": {"code", "message"}}`` with a stable code."""
    body = b'{"error":{"code":"%s","message":"%s"}}' % (
        code.encode(),
        message.replace("\\", "\\\\").replace('"', '\\"').encode("utf-8", "replace"),
    )
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"x-slotwise-error", code.encode()),
                (b"date", formatdate(usegmt=True).encode()),  # the proxy answers itself
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
