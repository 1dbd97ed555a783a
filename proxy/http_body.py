"""The client's side of an exchange: its request body in, the proxy's answer out.

``head_refusal`` checks a request's head (header size, one Host, a valid request target) for
every path, the proxy's own ``/_sw/`` endpoints included; ``read_request`` does that and then
receives the body under the proxy's limits (body size, time), or says why the proxy refuses
it. The writers send
an answer whole with its Content-Length (``send_whole``), pass an upstream response through as
it arrives (``stream``), or answer with one of the proxy's own JSON errors (``send_error``,
``upstream_failed``). Each counts the answer's status class and latency where the request
ends, so every answer is counted exactly once.
"""

from __future__ import annotations

import asyncio
import re
import time
from email.utils import formatdate
from typing import Any, Final, NamedTuple

from slotwise.proxy.http_hygiene import (
    client_response_headers,
    content_length,
    header,
)
from slotwise.proxy.memo import remember
from slotwise.proxy.metrics import ProxyMetrics
from slotwise.proxy.upstream import UpstreamError, UpstreamResponse
from slotwise.types import Receive, Scope, Send

Message = dict[str, Any]


class ClientGone(Exception):
    """The request body ended before it was whole (the client went, or its framing broke)."""


class Refusal(NamedTuple):
    """A request the proxy answers itself: status, stable code, message; ``reason`` counts it."""

    status: int
    code: str
    message: str
    reason: str


_TOO_LARGE = Refusal(413, "body_too_large", "request body is too large", "body_size")
_HEADERS_TOO_LARGE = Refusal(
    431, "headers_too_large", "request headers are too large", "header_size"
)
_NO_HOST = Refusal(400, "bad_host", "an HTTP/1.1 request needs one Host header", "bad_host")
_HOSTS = Refusal(400, "bad_host", "the request has several Host headers; send one", "bad_host")
# a byte no request target may hold on the wire: controls, space, "#", DEL, non-ASCII
_TARGET_BYTE: Final = re.compile(rb"[^\x21\x22\x24-\x7e]")
# such a byte, or the start of a possible dot segment: a path with neither (nearly all) is
# settled in one scan. Not `b"/." in path`: bytes.__contains__ first tries its operand as an
# int and raises (and clears) a TypeError for every bytes operand
_SUSPECT: Final = re.compile(rb"[^\x21\x22\x24-\x7e]|/\.|%2[eE]")


def head_refusal(scope: Scope, max_header_bytes: int) -> Refusal | None:
    """Why the proxy refuses this request's head, or None: the checks of every path.

    431 for a header block over ``max_header_bytes``; 400 ``bad_host`` for an HTTP/1.1 request
    with no Host header, an empty one or several (RFC 9112 section 3.2); 400
    ``bad_request_target`` for a target that is not a path (``*``, an authority), holds a byte
    no URI may hold, or has a ``.`` or ``..`` segment (plain or percent-encoded): the upstream
    would resolve another path than the one the proxy (and its policies) saw, so the proxy
    refuses rather than guess.
    """
    size = hosts = 0
    host = b""
    for name, value in scope["headers"]:
        size += len(name) + len(value) + 4  # as on the wire: name, ": ", value, CRLF
        if name == b"host":
            hosts += 1
            host = value
    return _head_refusal(scope, max_header_bytes, size, hosts, host)


def _head_refusal(
    scope: Scope, max_header_bytes: int, size: int, hosts: int, host: bytes
) -> Refusal | None:
    """head_refusal, given what its pass over the headers found."""
    if size > max_header_bytes:
        return _HEADERS_TOO_LARGE
    # granian hands a request without Host one with an empty Host: both are refused (an
    # http(s) target always has an authority, so an empty Host is never right either)
    if (hosts != 1 or not host) and scope.get("http_version") == "1.1":
        return _HOSTS if hosts > 1 else _NO_HOST
    raw = scope.get("raw_path")
    if raw is not None:
        problem = _target_problem(raw, scope.get("query_string", b""))
        if problem is not None:
            return Refusal(400, "bad_request_target", problem, "bad_target")
    return None


def _target_problem(path: bytes, query: bytes) -> str | None:
    sound = path in _SOUND_PATHS
    if not sound and not path.startswith(b"/"):
        return "the request target must be a path starting with /"
    if query and _TARGET_BYTE.search(query):
        return _UNENCODED
    if not sound:
        problem = _path_problem(path)
        if problem is not None:
            return problem
        remember(_SOUND_PATHS, path, True, _SOUND_PATHS_ENTRIES, _SOUND_PATH_BYTES)
    return None


def _path_problem(path: bytes) -> str | None:
    if _SUSPECT.search(path) is None:
        return None
    if _TARGET_BYTE.search(path):
        return _UNENCODED
    for segment in path.split(b"/"):  # a "/." or "%2e": its segments, one by one
        if segment.lower().replace(b"%2e", b".") in (b".", b".."):
            return "the request target has a . or .. segment: send the resolved path"
    return None


_UNENCODED: Final = "the request target holds a character that must be percent-encoded"
# Paths already found sound, by their bytes (slotwise.proxy.memo): a site's paths repeat (ad
# placements, API routes), and the scan is the costliest check of a head (a regular
# expression's search, about 3,500 instructions; a lookup, about 200).
_SOUND_PATHS: Final[dict[bytes, bool]] = {}
_SOUND_PATHS_ENTRIES: Final = 4096
_SOUND_PATH_BYTES: Final = 256


_FRAMED_BY_LENGTH: Final = frozenset({"1.0", "1.1"})  # no length, no chunking: no body


def request_head(
    scope: Scope, max_header_bytes: int, max_body_bytes: int
) -> bytes | Refusal | None:
    """What the head alone settles: a refusal, ``b""`` for an HTTP/1 request whose framing
    says it has no body (no Content-Length or ``0``, no Transfer-Encoding: RFC 9112 section
    6.3; nothing to receive, so no ``receive`` call and no await), or None: receive the body
    (:func:`read_request`)."""
    # head_refusal's checks, content_length and the Transfer-Encoding lookup in one pass over
    # the headers (every proxied request comes here)
    size = hosts = 0
    host = b""
    declared: int | None = None
    length_seen = chunked = False
    # typed: compiled code then walks the list and its pairs directly, not by the iterator
    # protocol (ASGI servers hand a list of byte pairs)
    fields: list[tuple[bytes, bytes]] = scope["headers"]
    for name, value in fields:
        size += len(name) + len(value) + 4  # as on the wire: name, ": ", value, CRLF
        if name == b"host":
            hosts += 1
            host = value
        elif len(name) == 14 and not length_seen and name.lower() == b"content-length":
            length_seen = True  # the first one counts (content_length)
            stripped = value.strip()
            declared = int(stripped) if stripped.isdigit() else None
        elif name == b"transfer-encoding":
            chunked = True
    refused = _head_refusal(scope, max_header_bytes, size, hosts, host)
    if refused is not None:
        return refused
    if declared is not None and declared > max_body_bytes:
        return _TOO_LARGE
    if not declared and not chunked and scope.get("http_version") in _FRAMED_BY_LENGTH:
        return b""
    return None


async def read_request(
    scope: Scope, receive: Receive, max_header_bytes: int, max_body_bytes: int, timeout: float
) -> bytes | Refusal:
    """The request body, or the refusal when the request breaks the proxy's limits.

    The head's refusals first (:func:`request_head`), then :func:`receive_body`.
    """
    settled = request_head(scope, max_header_bytes, max_body_bytes)
    if settled is not None:
        return settled
    return await receive_body(scope, receive, max_body_bytes, timeout)


async def receive_body(
    scope: Scope, receive: Receive, max_body_bytes: int, timeout: float
) -> bytes | Refusal:
    """The body of a request whose head :func:`request_head` let through (it answered None):
    413 for a body over ``max_body_bytes`` as streamed, 408 for a body that took longer than
    ``timeout``, 400 for one that broke off."""
    headers = scope["headers"]
    declared = content_length(headers)
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
    start, whole = whole_answer(status, headers, body, metrics, started)
    await send(start)
    await send(whole)


def whole_answer(
    status: int,
    headers: list[tuple[bytes, bytes]],
    body: bytes,
    metrics: ProxyMetrics,
    started: float,
) -> tuple[Message, Message]:
    """:func:`send_whole`'s two messages, the answer counted (for a caller that sends them
    itself, without a coroutine more)."""
    headers.append((b"content-length", str(len(body)).encode()))
    metrics.requests.inc(STATUS_CLASS[status // 100])
    metrics.request_latency.observe(time.perf_counter() - started)
    return (
        {"type": "http.response.start", "status": status, "headers": headers},
        {"type": "http.response.body", "body": body},
    )


# the label of an answer's status class, by status // 100 (100-599: no f-string per answer)
STATUS_CLASS: Final = ("0xx", "1xx", "2xx", "3xx", "4xx", "5xx")


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
        metrics.requests.inc(STATUS_CLASS[response.status // 100])
        metrics.request_latency.observe(time.perf_counter() - started)
        response.close()
        await send({"type": "http.response.start", "status": response.status, "headers": headers})
        await send({"type": "http.response.body", "body": b""})
        return
    if response.complete and not prefix:  # arrived whole with its head (most small answers)
        return await send_whole(send, response.status, headers, response.whole(), metrics, started)
    declared = content_length(response.headers)
    if declared is not None and header(response.headers, b"transfer-encoding") is None:
        headers.append((b"content-length", str(declared).encode()))
    metrics.requests.inc(STATUS_CLASS[response.status // 100])
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
    metrics.requests.inc(STATUS_CLASS[exc.failure.status // 100])
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
