"""The hot path: forward a request, personalise the response when something in the policy applies.

``handle`` makes one :class:`~slotwise.proxy.exchange.Exchange` and drives it through these
steps, top to bottom, as the request flows:

1. the request within the proxy's own limits (431 / 413 / 408 / 400:
   slotwise.proxy.http_body.request_head, then receive_body); then the policy snapshot is
   read (once for the whole request): a request nothing in it could apply to is forwarded
   alone (slotwise.proxy.forward: no exchange, no signals); for the others ``_begin`` starts
   the upstream fetch;
2. meanwhile the signals are gathered (providers, with deadlines), unless no campaign applied
   to this path's last response and the policy selects on the response alone
   (``early_signals``): then they are gathered in 4, only if a campaign applies;
3. the response head arrives (``_personalisable``): only a complete, readable 200 JSON/XML
   body within the size limit is read whole, anything else streams through;
4. engine time, under the decision deadline: ``_open`` parses the document (its ad units);
   with product lists in the policy, ``_prepare_lists`` reads what they need first (one
   store read, not engine time: slotwise.proxy.recommend.runtime); then ``personalise``
   runs the policy's personalisers in their declared precedence
   (slotwise.proxy.personalisers: triggered campaigns, campaigns, offers, recommendations,
   re-ranks) and serialises the rewritten document;
5. ``_answer`` queues the decision records (no I/O here); the response goes out, with a
   fresh id cookie when the signals had personal consent and no id (``_identify``).

Whatever fails in 3-4 (an exception, the deadline, an unparsable body, a chooser error) sends
the upstream's status, end-to-end headers and body unchanged, counted by cause. A campaign
whose slots are not in the response is skipped (counted), not a failure.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Coroutine
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

import msgspec

from slotwise.plugins.gather import Gathered, gather
from slotwise.plugins.loaded import ProviderSet
from slotwise.plugins.request import RequestInfo, request_info_from_scope
from slotwise.proxy.adapters.base import AdapterError, Document
from slotwise.proxy.adapters.json import DEFAULT_JSON_FIELDS, JsonFields
from slotwise.proxy.adapters.parse import parse_response
from slotwise.proxy.admission import Admission
from slotwise.proxy.caps import CapCounter
from slotwise.proxy.chooser import Chooser
from slotwise.proxy.decision_codec import encode_stored
from slotwise.proxy.early_signals import EarlySignals
from slotwise.proxy.erased_request import without_personal
from slotwise.proxy.events import DecisionLog
from slotwise.proxy.exchange import MAX_UNITS, Exchange, FailOpen
from slotwise.proxy.forward import forward
from slotwise.proxy.guardrail.state import RevertSnapshot
from slotwise.proxy.http_body import (
    Refusal,
    receive_body,
    request_head,
    send_error,
    send_whole,
    stream,
    upstream_failed,
)
from slotwise.proxy.http_encoding import SUPPORTED_CODINGS, EncodingError, codings, decode, encode
from slotwise.proxy.http_hygiene import (
    ForwardingPolicy,
    client_response_headers,
    header,
    upstream_request,
)
from slotwise.proxy.identity import IdentityCookie, new_user_id
from slotwise.proxy.logs import FailOpenLog
from slotwise.proxy.metrics import ProxyMetrics
from slotwise.proxy.offer_chooser import OfferChooser
from slotwise.proxy.personalisers import Pipeline
from slotwise.proxy.personalisers.offers import has_offer_place
from slotwise.proxy.policy_snapshot import PolicySnapshot
from slotwise.proxy.tracking import ClickSigner
from slotwise.proxy.upstream import Upstream, UpstreamError, UpstreamResponse
from slotwise.types import Context, Receive, Scope, Send

if TYPE_CHECKING:
    from slotwise.dsl.compiled import CompiledPolicySet
    from slotwise.proxy.recommend.runtime import RecsRuntime

_PERSONALISED_METHODS: Final = frozenset({"GET", "POST"})


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
    allowed_hosts: frozenset[bytes] = frozenset()  # lower-case Host values (tracking.allowed_hosts)
    identity: IdentityCookie = field(default_factory=IdentityCookie)
    early_signals: EarlySignals = field(default_factory=EarlySignals)
    personalisers: Pipeline = field(default_factory=Pipeline)
    caps: CapCounter | None = None  # frequency cap counts (slotwise.proxy.caps), if a store
    offers: OfferChooser = field(default_factory=OfferChooser)
    recs: RecsRuntime | None = None  # with a catalogue: recommendations and re-ranks
    fail_open_log: FailOpenLog = field(default_factory=FailOpenLog)
    admission: Admission = field(default_factory=Admission)
    # the campaigns a guardrail reverted: a snapshot the background refreshes from the store
    guardrails: RevertSnapshot = field(default_factory=RevertSnapshot)

    def tracker_origin(self, exchange: Exchange) -> str:
        """The origin of the response's tracker URLs (every personaliser's, through here: the
        first to track a response fixes it, so all must name it alike)."""
        if not self.allowed_hosts:  # no Host may name it: the configured one, or relative
            return self.public_url
        return exchange.origin(self.public_url, self.allowed_hosts, self.forwarding)


async def handle(engine: Engine, scope: Scope, receive: Receive, send: Send) -> None:
    """Proxy one HTTP request: its exchange's steps, top to bottom (the module docstring)."""
    started = time.perf_counter()
    # 1. the proxy's own limits; then the upstream fetch starts before anything else
    limits = engine.limits
    body = request_head(scope, limits.max_header_bytes, limits.max_body_bytes)
    if body is None:  # a body to receive (most requests have none: no await for them)
        body = await receive_body(scope, receive, limits.max_body_bytes, limits.body_timeout)
    if isinstance(body, Refusal):
        engine.metrics.refused.inc(body.reason)
        return await send_error(send, body.status, body.code, body.message)
    policy = engine.policies.current  # one reference read for the whole request
    if policy is None or not _could_personalise(engine, policy, scope["method"]):
        return await forward(engine, scope, body, send, started)  # no exchange needed
    x = Exchange(scope, started, policy=policy)
    fetch = _begin(engine, x, body)
    # 2. meanwhile: signals, when a campaign could apply (early_signals says whether now)
    if x.early:
        try:
            x.gathered = await _signals(engine, x)
        except BaseException:  # cancelled (client gone): do not leave the exchange dangling
            _abandon(fetch)
            raise
        _identify(engine, x)
    # 3. the response head: a response we may personalise is read whole, others stream
    admission = engine.admission
    admission.waiting += 1  # waiting for the upstream is not work in flight (admission)
    try:
        response = x.response = await fetch
        admission.waiting -= 1
        whole = _personalisable(engine, x)
        if whole:
            x.raw, whole = await response.read_up_to(limits.max_rewrite_bytes)
    except UpstreamError as exc:  # also a body that broke off: nothing was sent yet, say so
        if x.response is None:
            admission.waiting -= 1
        return await upstream_failed(engine.metrics, send, exc)
    except BaseException:
        if x.response is None:
            admission.waiting -= 1
        raise
    if not whole:
        _stream_through(engine, x)
        admission.waiting += 1  # a slow download is I/O, not work in flight (admission)
        try:
            return await stream(
                engine.metrics, send, response, x.raw, x.started, x.method == "HEAD"
            )
        finally:
            admission.waiting -= 1
    # 4. engine time, under the decision deadline: the document, the personalisers, the rewrite
    engine_start = time.perf_counter()
    if _open(engine, x):  # a campaign applies and its signals were left until now
        engine_start += await _late_signals(engine, x)  # provider time is not engine time
    if x.lists and x.document is not None and x.cause is None and x.reason is None:
        engine_start += await _prepare_lists(engine, x)  # a store read, not engine time
    _decide(engine, x, engine_start)
    # 5. log the decisions and answer
    headers, answer = _answer(engine, x)
    return await send_whole(send, response.status, headers, answer, engine.metrics, x.started)


# -- the steps -----------------------------------------------------------------------------------


def _begin(engine: Engine, x: Exchange, body: bytes) -> Awaitable[UpstreamResponse]:
    """Start the upstream fetch of a request its policy snapshot may personalise."""
    scope = x.scope
    x.body = body
    target, headers = upstream_request(scope, engine.forwarding)
    x.request_id = headers[-1][1]  # X-Request-Id, last (slotwise.proxy.http_hygiene)
    method = x.method = scope["method"]
    x.path = scope["path"]
    policy = x.policy  # read by handle, once for the whole request
    # product lists (recommendations, re-ranks) need the visitor's signals on any JSON page
    x.lists = engine.recs is not None and policy is not None and policy.has_lists
    x.candidate = True  # handle forwarded the others alone (_could_personalise)
    # overload: personalisation goes first (slotwise.proxy.admission)
    if not engine.admission.admit():
        x.candidate = False
        x.reason = "shed"
    fetch = engine.upstream.begin(method.encode(), target, headers, x.body)
    if x.candidate and engine.providers is not None:
        x.providers = engine.providers
        assert policy is not None
        x.early = engine.early_signals.wanted(policy, x.path)
        if x.early:
            engine.metrics.signal_gathers.inc("early")
    return fetch


def _could_personalise(engine: Engine, policy: CompiledPolicySet | None, method: str) -> bool:
    """Whether anything in ``policy`` could apply to a request with this method: campaigns,
    offers, or product lists (with a catalogue served). When not, the request is forwarded
    alone (slotwise.proxy.forward)."""
    return (
        policy is not None
        and method in _PERSONALISED_METHODS
        and (
            bool(policy.campaigns)
            or bool(policy.offers)
            or (engine.recs is not None and policy.has_lists)
        )
    )


def _signals(engine: Engine, x: Exchange) -> Coroutine[Any, Any, Gathered]:
    # gather's own coroutine, not one wrapped around it: one frame less per request
    assert x.providers is not None
    # a bid request in the body is read; the id cookie's value is the user id
    info = request_info_from_scope(
        RequestInfo, x.scope, body=x.body, user_cookie=engine.identity.name
    )
    # past the budget, the signals that arrived are used; late providers are counted by gather
    return gather(x.providers, info, budget=engine.limits.signals_deadline)


def _identify(engine: Engine, x: Exchange) -> None:
    """With personal consent and no id cookie, or an erased one, a fresh id: the subject of
    this request's decisions, set on the answer (slotwise.proxy.identity). An erased id is
    never used again (none at all when the proxy issues no cookie). Nothing without consent."""
    gathered = x.gathered
    if not gathered.personal:
        return
    if gathered.user_id is None or gathered.signals.get("user.erased") is True:
        if gathered.user_id is not None and x.providers is not None:  # erased: cached or not,
            gathered = without_personal(x.providers, gathered)  # nothing of theirs is used
        x.issued = new_user_id() if engine.identity.issues else None
        if x.issued is not None or gathered.user_id is not None:
            x.gathered = msgspec.structs.replace(gathered, user_id=x.issued)


def _personalisable(engine: Engine, x: Exchange) -> bool:
    """The response head arrived: may it be personalised? If not, the reason is counted."""
    assert x.response is not None
    engine.metrics.upstream_latency.observe(time.perf_counter() - x.started)
    reason = _not_personalisable(x.response, x.candidate)
    if reason is None:
        return True
    x.reason = reason = x.reason or reason  # a shed request keeps its reason
    engine.metrics.passthrough.inc(reason)
    if x.providers is not None:
        engine.early_signals.observe(x.path, applied=False)
    return False


def _stream_through(engine: Engine, x: Exchange) -> None:
    """Before a response streams through: one larger than the rewrite limit is counted."""
    if x.reason is None:  # personalisable, but larger than the rewrite limit
        engine.metrics.passthrough.inc("body_too_large")
        if x.providers is not None:
            engine.early_signals.observe(x.path, applied=False)


def _open(engine: Engine, x: Exchange) -> bool:
    """Parse the response into its ad units; True when the signals are to be gathered now.

    Signals wait until here when early_signals skipped them: gathered only if a campaign
    applies to the document (on the response's signals alone), or the policy fills or
    reorders product lists (a path whose last answer was not personalised, such as an image
    or an HTML page behind the proxy, is not gathered for before its answer shows JSON).
    """
    try:
        assert x.response is not None and x.policy is not None
        document, x.codings = open_document(engine, x.response, x.raw, x.body)
        x.document = document
        if document is None:
            x.reason = "content_type"
        elif x.providers is not None and not x.early:
            if x.lists or _applies(x.policy, document):
                engine.metrics.signal_gathers.inc("late")
                return True
            engine.metrics.signal_gathers.inc("skipped")
            x.reason = "no_campaign_applies"
        if x.reason is not None:
            x.selected = False
    except FailOpen as exc:
        x.fail(exc.cause)
    except Exception:  # personalisation must never turn a good answer into an error
        x.fail("engine_error")
    return False


async def _late_signals(engine: Engine, x: Exchange) -> float:
    """Gather the signals after the response; the seconds it took."""
    waited = time.perf_counter()
    try:
        x.gathered = await _signals(engine, x)
        _identify(engine, x)
    except Exception:
        x.fail("engine_error")
    return time.perf_counter() - waited


async def _prepare_lists(engine: Engine, x: Exchange) -> float:
    """What the list steps read, before engine time (one store read); the seconds it took."""
    assert engine.recs is not None
    waited = time.perf_counter()
    try:
        await engine.recs.prepare(x, engine.limits.signals_deadline)
    except Exception:
        x.fail("engine_error")
    return time.perf_counter() - waited


def _decide(engine: Engine, x: Exchange, engine_start: float) -> None:
    """Engine time: the personalisers and the rewrite, unless opening settled it already."""
    metrics = engine.metrics
    try:
        if x.reason is None and x.cause is None:
            personalise(engine, x)
            x.selected = x.applied
        if x.cause is None and time.perf_counter() - engine_start > engine.limits.decision_deadline:
            raise FailOpen("deadline", x.records)
    except FailOpen as exc:
        x.fail(exc.cause, exc.records)
        if exc.records:
            x.selected = True
    except Exception:  # personalisation must never turn a good answer into an error
        x.fail("engine_error")
    if x.cause is not None:
        metrics.fail_opens.inc(x.cause)
        engine.fail_open_log.note(x)  # sampled: per cause, one line a minute at most
    metrics.decision_latency.observe(time.perf_counter() - engine_start)
    if x.selected is not None and x.providers is not None:
        engine.early_signals.observe(x.path, applied=x.selected)


def personalise(engine: Engine, x: Exchange) -> None:
    """Run the policy's personalisers on the document, then serialise it into ``x.out``.

    Needs ``x.policy``, ``x.document``, ``x.codings`` and ``x.gathered``. Sets ``x.reason``
    when nothing was decided; raises FailOpen with the cause when the response must go out
    unchanged.
    """
    assert x.policy is not None and x.document is not None
    plan = engine.personalisers.plan(x.policy)
    x.shared = plan.shared
    x.now = time.time()
    for step in plan.steps:
        step.personalise(engine, x)
    if not x.changed:  # nothing decided: every decision, control included, adds trackers
        x.reason = "missing_slot" if x.applied else "no_campaign_applies"
        return
    try:
        body = x.document.serialize()
        x.out = encode(body, x.codings) if x.codings else body
    except Exception:
        raise FailOpen("rewrite_error", x.records) from None


def _answer(engine: Engine, x: Exchange) -> tuple[list[tuple[bytes, bytes]], bytes]:
    """Queue the decision records (no I/O here); the answer's headers and body.

    The upstream's end-to-end headers go out; a rewritten body drops those about its bytes.
    """
    metrics = engine.metrics
    if x.out is None and not x.records and x.reason is not None:
        metrics.passthrough.inc(x.reason)
    for record, subject in x.records or ():
        if record.fail_open is None:
            counter = metrics.holdouts if record.holdout else metrics.decisions
            counter.inc(record.campaign)
        engine.decision_log.record(encode_stored(record), decision_id=record.id, subject=subject)
    assert x.response is not None
    out = x.out
    headers = client_response_headers(x.response.headers, rewritten=out is not None)
    if x.issued is not None:  # a header append only for a consenting visitor without an id
        headers.append(engine.identity.set_cookie(x.issued))
    return headers, x.raw if out is None else out


# -- the steps' helpers --------------------------------------------------------------------------


def open_document(
    engine: Engine, response: UpstreamResponse, raw: bytes, request_body: bytes
) -> tuple[Document | None, list[bytes]]:
    """The response's ad units (None: a content type no adapter reads) and its codings.

    Raises FailOpen with the cause when the body cannot be read.
    """
    encoding = header(response.headers, b"content-encoding")
    applied = codings(encoding) if encoding else []  # most answers name none: no Python call
    if applied and any(c not in SUPPORTED_CODINGS for c in applied):
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


def _applies(policy: CompiledPolicySet, document: Document) -> bool:
    """Does a campaign apply to one of the document's units (response signals alone), or has
    it the place of an offer set?"""
    now = time.time()
    try:
        for unit in document.units[:MAX_UNITS]:
            if policy.select(Context(unit.signals, now)) is not None:
                return True
    except Exception:
        raise FailOpen("policy_error") from None
    return bool(policy.offers) and has_offer_place(policy, document)


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
