"""The hot path: forward a request, personalise the response when a campaign applies.

``handle`` reads top to bottom as the request flows:

1. the proxy's own limits (431 / 413), then the upstream fetch starts;
2. meanwhile the signals are gathered (providers, with deadlines), unless no campaign applied
   to this path's last response and the policy selects on the response alone
   (``early_signals``): then they are gathered in 4, only if a campaign applies;
3. the response head arrives; only a complete, readable 200 JSON/XML body within the size
   limit is a candidate;
4. ``personalise`` (engine time, under the decision deadline): adapter finds the ad units,
   campaign selection, eligible variants, choice, rewrite with trackers;
5. the decision records go to the decision log (queued, no I/O here); the response goes out.

Whatever fails in 3-4 (an exception, the deadline, an unparsable body, a missing slot) sends the
upstream's status, end-to-end headers and body unchanged, counted by cause.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Coroutine
from dataclasses import dataclass, field
from email.utils import formatdate
from typing import TYPE_CHECKING, Any, Final

from slotwise.plugins.gather import Gathered, gather
from slotwise.plugins.loaded import ProviderSet
from slotwise.plugins.request import RequestInfo
from slotwise.proxy.adapters import AdapterError, AdUnit, Document, JsonFields, parse_response
from slotwise.proxy.adapters.json import DEFAULT_JSON_FIELDS
from slotwise.proxy.chooser import Chooser
from slotwise.proxy.decision_log import (
    DecisionRecord,
    decision_record,
    encode_record,
    failed,
    unserved_record,
)
from slotwise.proxy.early_signals import EarlySignals
from slotwise.proxy.events import DecisionLog
from slotwise.proxy.http_encoding import SUPPORTED_CODINGS, EncodingError, codings, decode, encode
from slotwise.proxy.http_hygiene import (
    ForwardingPolicy,
    client_response_headers,
    content_length,
    header,
    header_bytes,
    upstream_request_headers,
)
from slotwise.proxy.metrics import ProxyMetrics
from slotwise.proxy.policy_snapshot import PolicySnapshot
from slotwise.proxy.tracking import ClickSigner, new_decision_id
from slotwise.proxy.upstream import Upstream, UpstreamError, UpstreamResponse
from slotwise.types import Context, NoHistory, Receive, Scope, Send

if TYPE_CHECKING:
    from slotwise.dsl.compiled import CompiledCampaign, CompiledPolicySet

_PERSONALISED_METHODS: Final = frozenset({"GET", "POST"})
_MAX_UNITS: Final = 16  # ad units personalised per response (bids, VAST ads)
# validators and digests of the upstream body do not describe a rewritten one
_STALE_AFTER_REWRITE: Final = frozenset({b"etag", b"content-md5", b"digest", b"content-range"})
_NO_GATHER = Gathered(signals={}, personal=False, user_id=None, history=NoHistory())


@dataclass(frozen=True, slots=True)
class Limits:
    max_header_bytes: int = 16384
    max_body_bytes: int = 1 << 20
    body_timeout: float = 30.0  # seconds to receive a whole request body
    max_rewrite_bytes: int = 2 << 20
    decision_deadline: float = 0.010  # seconds of engine time
    signals_deadline: float = 0.050


@dataclass(slots=True)
class Engine:
    """What the hot path reads; built once in the app lifespan."""

    upstream: Upstream
    policies: PolicySnapshot
    chooser: Chooser
    decision_log: DecisionLog
    metrics: ProxyMetrics
    signer: ClickSigner
    providers: ProviderSet | None = None
    limits: Limits = field(default_factory=Limits)
    forwarding: ForwardingPolicy = field(default_factory=ForwardingPolicy)
    json_fields: JsonFields = DEFAULT_JSON_FIELDS
    public_url: str = ""
    user_cookie: str = "sw_uid"
    early_signals: EarlySignals = field(default_factory=EarlySignals)


# RFC 3986's host (registered name, IPv4 or bracketed IPv6) and optional port: the Host header
# becomes the origin of the tracker URLs the proxy writes, so nothing else may pass
_HOST = re.compile(
    rb"(?:[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?|\[[0-9A-Fa-f:.]{2,45}\])(?::[0-9]{1,5})?"
)


class _ClientGone(Exception):
    """The request body ended before it was whole (the client went, or its framing broke)."""


class _BodyStalled(Exception):
    """The request body did not arrive within ``Limits.body_timeout``."""


Records = list[tuple[DecisionRecord, str | None]]  # (decision record, subject)


class FailOpen(Exception):
    """Personalisation gave up; the upstream response goes out unchanged.

    ``records`` are the decisions already taken for this response, marked with the cause and
    without served slots (nothing was served): they are still logged.
    """

    def __init__(self, cause: str, records: Records | None = None) -> None:
        super().__init__(cause)
        self.cause = cause
        self.records = [(failed(record, cause), subject) for record, subject in records or ()]


@dataclass(slots=True)
class Outcome:
    """What ``personalise`` did: a new body (or None: unchanged) and the decision records."""

    body: bytes | None
    records: Records
    reason: str | None = None  # why nothing was decided (passthrough), when nothing failed


async def handle(engine: Engine, scope: Scope, receive: Receive, send: Send) -> None:
    """Proxy one HTTP request."""
    started = time.perf_counter()
    limits = engine.limits
    metrics = engine.metrics

    # 1. the proxy's own limits; then the upstream fetch starts before anything else
    if header_bytes(scope["headers"]) > limits.max_header_bytes:
        metrics.refused.inc("header_size")
        return await send_error(send, 431, "headers_too_large", "request headers are too large")
    try:
        body = await _read_body(scope, receive, limits.max_body_bytes, limits.body_timeout)
    except _ClientGone:
        # the body broke off (a half-close, chunking the server could not read): a client
        # still listening learns why; one that is gone never reads it
        metrics.refused.inc("incomplete_body")
        return await send_error(send, 400, "incomplete_body", "the request body ended early")
    except _BodyStalled:
        metrics.refused.inc("body_timeout")
        message = f"the request body did not arrive within {limits.body_timeout:g}s"
        return await send_error(send, 408, "body_timeout", message)
    if body is None:
        metrics.refused.inc("body_size")
        return await send_error(send, 413, "body_too_large", "request body is too large")
    client = scope.get("client")
    client_ip = client[0] if client else None
    headers = upstream_request_headers(scope["headers"], client_ip, engine.forwarding)
    method = scope["method"]
    target = scope.get("raw_path") or scope["path"].encode()
    if scope.get("query_string"):
        target += b"?" + scope["query_string"]
    policy = engine.policies.current  # one reference read: this request's policy snapshot
    candidate = policy is not None and bool(policy.campaigns) and method in _PERSONALISED_METHODS
    fetch = engine.upstream.begin(method.encode(), target, headers, body)

    # 2. meanwhile: signals, when a campaign could apply (early_signals: unless none applied
    # on this path last time; those gather after the response, if a campaign applies to it)
    gathered = _NO_GATHER
    providers = engine.providers if candidate else None
    path: str = scope["path"]
    early = (
        policy is not None and providers is not None and engine.early_signals.wanted(policy, path)
    )
    if early and providers is not None:
        metrics.signal_gathers.inc("early")
        try:
            gathered = await _signals(engine, providers, scope)
        except BaseException:  # cancelled (client gone): do not leave the exchange dangling
            _abandon(fetch)
            raise

    # 3. the response head; is this a response we may personalise?
    try:
        response = await fetch
    except UpstreamError as exc:
        return await _upstream_failed(metrics, send, exc)
    metrics.upstream_latency.observe(time.perf_counter() - started)
    reason = _not_personalisable(response, candidate)
    if reason is not None:
        metrics.passthrough.inc(reason)
        if providers is not None:
            engine.early_signals.observe(path, applied=False)
        return await _stream(engine, send, response, b"", started, method == "HEAD")
    try:
        raw, complete = await response.read_up_to(limits.max_rewrite_bytes)
    except UpstreamError as exc:  # the body broke off before anything was sent: say so
        return await _upstream_failed(metrics, send, exc)
    if not complete:
        metrics.passthrough.inc("body_too_large")
        if providers is not None:
            engine.early_signals.observe(path, applied=False)
        return await _stream(engine, send, response, raw, started)

    # 4. engine time: find slots, select, choose, rewrite, all under the decision deadline
    assert policy is not None
    engine_start = time.perf_counter()
    selected: bool | None = None  # did a campaign apply (None: the body could not be read)
    try:
        document, codings_applied = open_document(engine, response, raw, body)
        late = providers is not None and not early
        if document is None:
            outcome = Outcome(None, [], "content_type")
        elif late and not _applies(policy, document):
            metrics.signal_gathers.inc("skipped")
            outcome = Outcome(None, [], "no_campaign_applies")
        else:
            if late and providers is not None:
                waited = time.perf_counter()
                metrics.signal_gathers.inc("late")
                gathered = await _signals(engine, providers, scope)
                engine_start += time.perf_counter() - waited  # provider time is not engine time
            outcome = personalise(engine, policy, document, codings_applied, gathered, scope)
        selected = bool(outcome.records)
        if time.perf_counter() - engine_start > limits.decision_deadline:
            raise FailOpen("deadline", outcome.records)
    except FailOpen as exc:
        outcome = Outcome(None, exc.records)
        metrics.fail_opens.inc(exc.cause)
        if exc.records:
            selected = True
    except Exception:  # personalisation must never turn a good answer into an error
        outcome = Outcome(None, [])
        metrics.fail_opens.inc("engine_error")
    metrics.decision_latency.observe(time.perf_counter() - engine_start)
    if selected is not None and providers is not None:
        engine.early_signals.observe(path, applied=selected)

    # 5. log the decisions and answer
    if outcome.body is None and not outcome.records and outcome.reason:
        metrics.passthrough.inc(outcome.reason)
    for record, subject in outcome.records:
        if record.fail_open is None:
            counter = metrics.holdouts if record.holdout else metrics.decisions
            counter.inc(record.campaign)
        engine.decision_log.record(encode_record(record), decision_id=record.id, subject=subject)
    if outcome.body is None:
        return await _send_whole(
            send, response.status, client_response_headers(response.headers), raw, metrics, started
        )
    out_headers = [
        (name, value)
        for name, value in client_response_headers(response.headers)
        if name not in _STALE_AFTER_REWRITE
    ]
    return await _send_whole(send, response.status, out_headers, outcome.body, metrics, started)


def open_document(
    engine: Engine, response: UpstreamResponse, raw: bytes, request_body: bytes
) -> tuple[Document | None, list[bytes]]:
    """The response's ad units (None: a content type no adapter reads) and its codings.

    Raises FailOpen with the cause when the body cannot be read.
    """
    applied = codings(header(response.headers, b"content-encoding"))
    if any(c not in SUPPORTED_CODINGS for c in applied):
        raise FailOpen("unsupported_encoding")
    try:
        plain = decode(raw, applied, engine.limits.max_rewrite_bytes) if applied else raw
    except EncodingError:
        raise FailOpen("bad_encoding") from None
    try:
        document = parse_response(
            header(response.headers, b"content-type"), plain, request_body, engine.json_fields
        )
    except AdapterError:
        raise FailOpen("unparsable") from None
    return document, applied


def personalise(
    engine: Engine,
    policy: CompiledPolicySet,
    document: Document,
    applied: list[bytes],
    gathered: Gathered,
    scope: Scope,
) -> Outcome:
    """Engine time for one response: the rewritten body (None if unchanged) and records.

    Raises FailOpen with the cause when the response must go out unchanged.
    """
    now = time.time()
    records: Records = []
    changed = False
    base: str | None = None
    subject = gathered.subject
    for unit in document.units[:_MAX_UNITS]:
        ctx = gathered.context(now, unit.signals)
        try:
            campaign = policy.select(ctx)
            if campaign is None:
                continue
            eligibility = campaign.eligible(ctx)
        except Exception:
            raise FailOpen("policy_error", records) from None
        decision_id = new_decision_id()
        if _missing_slot(unit, campaign):
            records.append(
                (unserved_record(decision_id, now, policy, campaign, ctx), gathered.user_id)
            )
            raise FailOpen("missing_slot", records)
        try:
            choice = engine.chooser.choose(campaign, eligibility, ctx.signals, subject)
        except Exception:
            records.append(
                (unserved_record(decision_id, now, policy, campaign, ctx), gathered.user_id)
            )
            raise FailOpen("chooser_error", records) from None
        if not choice.holdout:
            for pick in choice.choices:
                if pick.variant is not None:
                    slot = campaign.slot(pick.slot)
                    unit.write(slot.location, slot.variant(pick.variant).value)
            if base is None:
                base = _public_base(engine, scope)
            unit.track(engine.signer.trackers(decision_id, base))
            changed = True
        record = decision_record(choice, decision_id, now, policy.version, format=document.format)
        records.append((record, gathered.user_id))
    if not changed:
        return Outcome(None, records, "no_campaign_applies")
    try:
        body = document.serialize()
        return Outcome(encode(body, applied) if applied else body, records)
    except Exception:
        raise FailOpen("rewrite_error", records) from None


# -- the steps' helpers --------------------------------------------------------------------------


def _applies(policy: CompiledPolicySet, document: Document) -> bool:
    """Does a campaign apply to one of the document's units (response signals alone)?"""
    now = time.time()
    try:
        return any(
            policy.select(Context(unit.signals, now)) is not None
            for unit in document.units[:_MAX_UNITS]
        )
    except Exception:
        raise FailOpen("policy_error") from None


def _missing_slot(unit: AdUnit, campaign: CompiledCampaign) -> bool:
    for slot in campaign.slots:
        if unit.read(slot.location) is None:
            return True
    return False


def _signals(engine: Engine, providers: ProviderSet, scope: Scope) -> Coroutine[Any, Any, Gathered]:
    # gather's own coroutine, not one wrapped around it: one frame less per request
    info = RequestInfo.from_scope(scope)
    user_id = info.cookies.get(engine.user_cookie) if info.cookies else None
    if user_id:
        info = info.with_user_id(user_id)
    # past the budget, the signals that arrived are used; late providers are counted by gather
    return gather(providers, info, budget=engine.limits.signals_deadline)


def _abandon(fetch: Awaitable[UpstreamResponse]) -> None:
    if isinstance(fetch, asyncio.Future):
        fetch.cancel()
    elif hasattr(fetch, "close"):
        fetch.close()  # never awaited: the response still arrives, the connection is reused


def _not_personalisable(response: UpstreamResponse, candidate: bool) -> str | None:
    if not candidate:
        return "no_campaign"
    if response.status != 200:
        return "status"
    media, _, parameters = (header(response.headers, b"content-type") or b"").partition(b";")
    media = media.strip().lower()
    if not (media.endswith(b"json") or media.endswith(b"xml")):
        return "content_type"
    if parameters and _charset(parameters) not in (b"utf-8", b"utf8", b"us-ascii", None):
        return "charset"  # our edits are UTF-8: they would not match the declared charset
    return None


def _charset(parameters: bytes) -> bytes | None:
    for parameter in parameters.split(b";"):
        name, _, value = parameter.partition(b"=")
        if name.strip().lower() == b"charset":
            return value.strip().strip(b'"').lower()
    return None


def _public_base(engine: Engine, scope: Scope) -> str:
    if engine.public_url:
        return engine.public_url
    host = header(scope["headers"], b"host")
    if not host or not _HOST.fullmatch(host):
        return ""  # no origin of its own: a Host that is not host[:port] goes into no URL
    scheme = scope.get("scheme", "http")
    return f"{scheme}://{host.decode('ascii')}"


async def _read_body(scope: Scope, receive: Receive, limit: int, timeout: float) -> bytes | None:
    headers = scope["headers"]
    declared = content_length(headers)
    if declared is not None and declared > limit:
        return None
    if declared == 0 or (declared is None and header(headers, b"transfer-encoding") is None):
        return await _receive_body(receive, limit)  # no body: the server answers at once
    try:
        async with asyncio.timeout(timeout):  # a body trickling in must not hold a worker
            return await _receive_body(receive, limit)
    except TimeoutError:
        raise _BodyStalled from None


async def _receive_body(receive: Receive, limit: int) -> bytes | None:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _ClientGone
        chunk = message.get("body", b"")
        if chunk:
            size += len(chunk)
            if size > limit:
                return None
            chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def _send_whole(
    send: Send,
    status: int,
    headers: list[tuple[bytes, bytes]],
    body: bytes,
    metrics: ProxyMetrics,
    started: float,
) -> None:
    headers.append((b"content-length", str(len(body)).encode()))
    metrics.requests.inc(f"{status // 100}xx")
    metrics.request_latency.observe(time.perf_counter() - started)
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _stream(
    engine: Engine,
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
        engine.metrics.requests.inc(f"{response.status // 100}xx")
        engine.metrics.request_latency.observe(time.perf_counter() - started)
        response.close()
        await send({"type": "http.response.start", "status": response.status, "headers": headers})
        await send({"type": "http.response.body", "body": b""})
        return
    if response.complete and not prefix:
        body, _ = await response.read_up_to(1 << 62)
        return await _send_whole(send, response.status, headers, body, engine.metrics, started)
    declared = content_length(response.headers)
    if declared is not None and header(response.headers, b"transfer-encoding") is None:
        headers.append((b"content-length", str(declared).encode()))
    engine.metrics.requests.inc(f"{response.status // 100}xx")
    engine.metrics.request_latency.observe(time.perf_counter() - started)
    try:
        await send({"type": "http.response.start", "status": response.status, "headers": headers})
        if prefix:
            await send({"type": "http.response.body", "body": prefix, "more_body": True})
        while chunk := await response.next_chunk():
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
    except UpstreamError as exc:
        # the head is out: nothing left but to cut the response short
        engine.metrics.upstream_errors.inc(exc.failure.value)
        raise
    finally:
        response.close()


async def _upstream_failed(metrics: ProxyMetrics, send: Send, exc: UpstreamError) -> None:
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
