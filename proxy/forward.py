"""Forwarding alone: a request no personalisation can apply to, proxied and nothing else.

slotwise.proxy.decide.handle sends here every request that the policy snapshot and the method
rule out before the upstream is asked (no policy set loaded, or one without campaigns, offers
or product lists, or a method other than GET and POST), once the request is within the proxy's
limits. Such a request needs none of the personalised path's state (the exchange, signals,
the document), so none is made: the upstream request goes out with the same hygiene
(slotwise.proxy.http_hygiene), the answer streams back through the same writer
(slotwise.proxy.http_body.stream), and it is counted as that path counts it (upstream latency,
the passthrough reason ``no_campaign``, the answer's status class and latency, 502/504 on an
upstream failure, admission's waiting count while the upstream answers).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Final

from slotwise.proxy.http_body import stream, upstream_failed, whole_answer
from slotwise.proxy.http_hygiene import client_response_headers, upstream_request
from slotwise.proxy.memo import remember
from slotwise.proxy.upstream import UpstreamError, UpstreamResponse
from slotwise.types import Scope, Send

if TYPE_CHECKING:
    from slotwise.proxy.decide import Engine


async def forward(engine: Engine, scope: Scope, body: bytes, send: Send, started: float) -> None:
    """Proxy one request whose answer is passed through as the upstream gives it."""
    target, headers = upstream_request(scope, engine.forwarding)
    method: str = scope["method"]
    metrics = engine.metrics
    admission = engine.admission
    admission.waiting += 1  # waiting for the upstream is not work in flight (admission)
    try:
        response = await engine.upstream.begin(method.encode(), target, headers, body)
    except UpstreamError as exc:
        admission.waiting -= 1
        return await upstream_failed(metrics, send, exc)
    except BaseException:
        admission.waiting -= 1
        raise
    metrics.upstream_latency.observe(time.perf_counter() - started)
    metrics.passthrough.inc("no_campaign")
    status = response.status
    try:  # still waiting: a slow download is I/O, not work in flight
        if response.complete and status != 204 and status != 304 and method != "HEAD":
            # the body came with the head (most small answers): sent whole, as stream would,
            # without its coroutines
            headers = _client_headers(response)
            start, whole = whole_answer(status, headers, response.whole(), metrics, started)
            await send(start)
            return await send(whole)
        return await stream(metrics, send, response, b"", started, method == "HEAD")
    finally:
        admission.waiting -= 1


# The client's headers of a head already seen, by the head's bytes (the same origin answers
# the same resource with the same head; see slotwise.proxy.upstream.connection): a pure
# function of the head, so a hit is exact. Bounded: emptied when full.
_CLIENT_HEADERS: dict[bytes, tuple[tuple[bytes, bytes], ...]] = {}
_CLIENT_HEADERS_ENTRIES: Final = 256
_CLIENT_HEADERS_KEY_BYTES: Final = 2048


def _client_headers(response: UpstreamResponse) -> list[tuple[bytes, bytes]]:
    """client_response_headers of the response, looked up when its head was seen before."""
    head = response.head
    kept = _CLIENT_HEADERS.get(head) if head else None
    if kept is None:
        kept = tuple(client_response_headers(response.headers))
        if head:
            remember(
                _CLIENT_HEADERS, head, kept, _CLIENT_HEADERS_ENTRIES, _CLIENT_HEADERS_KEY_BYTES
            )
    return list(kept)  # the answer's own: a Content-Length is appended to it
