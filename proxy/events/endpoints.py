"""The HTTP face of event collection: pixel, batch, validate, erasure and the SDK.

Mount under the proxy's ``/_sw`` prefix (see :func:`events_routes`). Every answer is JSON
except the pixel (a GIF) and the SDK (JavaScript); errors are
``{"error": {"code", "message", "rejections": [{"path", "reason"}]}}`` with a stable code.
A 2xx from ``/events`` or ``/px`` means the events are durably stored; while the store is
unreachable the answer is 503 with ``Retry-After``, never a 2xx that drops events.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import re
import time
import uuid
from collections.abc import Callable, Sequence
from importlib import resources
from typing import TYPE_CHECKING, Any

import msgspec
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route, Router

from slotwise.errors import EVENTS, SlotwiseError
from slotwise.plugins.builtin.configs import ConsentConfig
from slotwise.proxy.events.collector import EventCollector
from slotwise.proxy.events.consent import ConsentPolicy, stated_consent
from slotwise.proxy.events.profiles import MAX_PROFILE_BYTES, decode_profile, encode_profile
from slotwise.proxy.events.schema import (
    Event,
    Rejection,
    convert_event,
    decode_event,
    malformed,
)
from slotwise.proxy.events.throttle import FailureThrottle
from slotwise.proxy.http_hygiene import ForwardingPolicy
from slotwise.proxy.offer_money import UnknownCurrency, check_currency
from slotwise.proxy.offers_config import OffersConfig
from slotwise.proxy.state import StoreUnavailable, StoreWriteUncertain

if TYPE_CHECKING:
    from slotwise.proxy.catalogue import LiveCatalogue

# The smallest transparent 1x1 GIF.
PIXEL_GIF = (
    b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\x00\x00\x00!\xf9\x04\x01\x00\x00\x00\x00"
    b",\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;"
)
_NO_STORE = {"Cache-Control": "no-store, max-age=0"}
_JSON_TYPES = ("application/json", "text/plain", "")  # sendBeacon sends text/plain
_LOOPBACK = re.compile(r"^(127\.\d+\.\d+\.\d+|::1|::ffff:127\.\d+\.\d+\.\d+)$")
log = logging.getLogger("slotwise.events")
_REPORT_EVERY = 10.0  # seconds between two log lines about a failing store
_UNCERTAIN = (
    "the store did not confirm the write in time and it may still complete: resend the same "
    "request after Retry-After (event ids make a resend safe)"
)
_MAX_ID = 128  # schema.Identifier's limit
_USER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@/+=-]{0,127}$")
# Query parameters of the pixel: short aliases keep ad-server macros short.
_PIXEL_FIELDS = {
    "type": "type",
    "t": "type",
    "id": "id",
    "time": "time",
    "ts": "time",
    "user_id": "user_id",
    "uid": "user_id",
    "anonymous_id": "anonymous_id",
    "aid": "anonymous_id",
    "decision_id": "decision_id",
    "did": "decision_id",
}
_PIXEL_IGNORED = frozenset({"cb", "_", "consent", "gdpr", "gdpr_consent"})


class _Batch(msgspec.Struct, forbid_unknown_fields=True):
    events: list[msgspec.Raw]
    consent: str | None = None
    sent_at: float | None = None


_BATCH = msgspec.json.Decoder(_Batch | list[msgspec.Raw])
_ENCODE = msgspec.json.Encoder()


class _Refusal(SlotwiseError):
    """An answer other than success, raised from deep inside parsing."""

    area = EVENTS

    def __init__(
        self, status: int, code: str, message: str, rejections: Sequence[Rejection] = ()
    ) -> None:
        super().__init__(message, code=code)
        self.status = status
        self.rejections = list(rejections)

    def response(self) -> Response:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.rejections:
            body["rejections"] = self.rejections
        return Response(
            _ENCODE.encode({"error": body}),
            self.status,
            headers=_NO_STORE,
            media_type="application/json",
        )


def currency_problem(event: Event, offers: OffersConfig) -> str | None:
    """Why the event's currency cannot be converted to the base currency, or None."""
    currency = getattr(getattr(event, "properties", None), "currency", None)
    try:
        check_currency(currency, offers)
    except UnknownCurrency as error:
        return str(error)
    return None


def _bad_user_id() -> Response:
    return _Refusal(
        400, "invalid_user_id", "user ids are 1-128 of A-Z a-z 0-9 . _ : @ / + = -"
    ).response()


def _json(body: object, status: int = 200) -> Response:
    return Response(_ENCODE.encode(body), status, headers=_NO_STORE, media_type="application/json")


class EventEndpoints:
    """The handlers, bound to one collector; build with :func:`events_routes`."""

    def __init__(
        self,
        collector: EventCollector,
        consent: ConsentConfig | None = None,
        forwarding: ForwardingPolicy | None = None,
        dashboard: Callable[[], bytes] | None = None,
    ) -> None:
        self.collector = collector
        self.dashboard_page = dashboard
        self.forwarding = forwarding or ForwardingPolicy()
        self.admin_failures = FailureThrottle()
        self.config = collector.config
        self.consent = ConsentPolicy(
            consent, default=self.config.consent_default, honor_gpc=self.config.honor_gpc
        )
        self.sdk = resources.files("slotwise.proxy.events").joinpath("sdk.js").read_bytes()
        self.sdk_etag = '"' + hashlib.sha256(self.sdk).hexdigest()[:16] + '"'
        self._failures = 0
        self._next_report = 0.0

    # -- POST /events and /events/validate --------------------------------------------------

    async def batch(self, request: Request) -> Response:
        try:
            events, stated = await self._parse_batch(request)
            level, _reason = self._decide_consent(request, stated)
            result = await self.collector.collect(events, consent=level)
        except _Refusal as refusal:
            return refusal.response()
        except StoreUnavailable as error:
            return self._unavailable(error)
        return _json(
            {
                "accepted": result.accepted,
                "duplicates": result.duplicates,
                "suppressed": result.suppressed,
                "consent": level,
            }
        )

    async def validate(self, request: Request) -> Response:
        try:
            events, stated = await self._parse_batch(request)
            level, reason = self._decide_consent(request, stated)
        except _Refusal as refusal:
            return refusal.response()
        return _json({"valid": True, "events": len(events), "consent": level, "reason": reason})

    async def _parse_batch(self, request: Request) -> tuple[list[Event], str | None]:
        config = self.config
        _json_media(request)
        body = await _read_limited(request, config.max_batch_bytes, config.body_timeout)
        try:
            batch = _BATCH.decode(body)
        except msgspec.ValidationError as exc:
            reason, _, path = str(exc).partition(" - at `")
            rejection = Rejection(path.rstrip("`") or "$", reason)
            raise _Refusal(
                400,
                "invalid_batch",
                'a batch is {"events": [...], "consent": "personal"|"contextual"}',
                [rejection],
            ) from None
        except (msgspec.DecodeError, UnicodeDecodeError, RecursionError) as exc:
            raise _Refusal(
                400, "invalid_json", f"the body is not valid JSON: {malformed(exc)}"
            ) from None
        raw_events, stated_text = (
            (batch, None) if isinstance(batch, list) else (batch.events, batch.consent)
        )
        prefix = "$" if isinstance(batch, list) else "$.events"
        stated = stated_consent(stated_text)
        if stated_text is not None and stated is None:
            raise _Refusal(
                400,
                "invalid_batch",
                "consent must be personal or contextual",
                [Rejection("$.consent", f"unknown consent value {stated_text!r}")],
            )
        if len(raw_events) > config.max_batch_events:
            raise _Refusal(
                413,
                "too_many_events",
                f"the batch has {len(raw_events)} events; the limit is "
                f"{config.max_batch_events} per batch: split it",
            )
        if not raw_events:
            raise _Refusal(400, "invalid_batch", "the batch has no events")
        oversize = [
            Rejection(f"{prefix}[{i}]", f"{len(r)} bytes; the limit is {config.max_event_bytes}")
            for i, r in enumerate(raw_events)
            if len(r) > config.max_event_bytes
        ]
        if oversize:
            raise _Refusal(
                413,
                "event_too_large",
                f"{len(oversize)} event(s) exceed {config.max_event_bytes} bytes; "
                "nothing was stored",
                oversize,
            )
        events: list[Event] = []
        rejections: list[Rejection] = []
        for index, raw in enumerate(raw_events):
            decoded = decode_event(bytes(raw), f"{prefix}[{index}]")
            if isinstance(decoded, Rejection):
                rejections.append(decoded)
            else:
                events.append(decoded)
        if rejections:
            raise _Refusal(
                400,
                "invalid_events",
                f"{len(rejections)} of {len(raw_events)} events are invalid; nothing was stored",
                rejections,
            )
        self._check_currencies(events, prefix)
        return events, stated

    def _check_currencies(self, events: Sequence[Event], prefix: str) -> None:
        """Refuse amounts in a currency the offers configuration cannot convert: amounts
        are never mixed across currencies (slotwise.proxy.offer_money)."""
        offers = self.collector.offers
        if offers is None or not offers.base_currency:
            return
        unknown = [
            Rejection(f"{prefix}[{index}].properties.currency", problem)
            for index, event in enumerate(events)
            if (problem := currency_problem(event, offers)) is not None
        ]
        if unknown:
            raise _Refusal(
                400,
                "unknown_currency",
                f"{len(unknown)} event(s) name a currency without a rate to "
                f"{offers.base_currency}; nothing was stored",
                unknown,
            )

    # -- GET /px ----------------------------------------------------------------------------

    async def pixel(self, request: Request) -> Response:
        query = request.query_params
        try:
            fields, props = _pixel_fields(query.multi_items())
            if "id" not in fields:
                # an ad's tracking URL fires once per decision and type: that is its identity
                did, kind = fields.get("decision_id"), fields.get("type")
                derived = f"{did}.{kind}" if did and kind else uuid.uuid4().hex
                if len(derived) > _MAX_ID:  # a long decision id: still one id per (did, type)
                    derived = "px-" + hashlib.sha256(derived.encode()).hexdigest()
                fields["id"] = derived
            if props:
                fields["properties"] = props
            event = convert_event(fields, "$.query")
            if isinstance(event, Rejection):
                raise _Refusal(400, "invalid_event", "the pixel's parameters are invalid", [event])
            offers = self.collector.offers
            problem = currency_problem(event, offers) if offers is not None else None
            if problem is not None:
                where = Rejection("$.query.currency", problem)
                raise _Refusal(400, "unknown_currency", problem, [where])
            stated_text = query.get("consent")
            stated = stated_consent(stated_text)
            if stated_text is not None and stated is None:
                raise _Refusal(
                    400,
                    "invalid_event",
                    "consent must be personal or contextual",
                    [Rejection("$.query.consent", f"unknown consent value {stated_text!r}")],
                )
            level, _reason = self._decide_consent(request, stated)
            await self.collector.collect([event], consent=level)
        except _Refusal as refusal:
            return refusal.response()
        except StoreUnavailable as error:
            return self._unavailable(error)
        return Response(PIXEL_GIF, 200, headers=_NO_STORE, media_type="image/gif")

    # -- DELETE /admin/users/{user_id} ------------------------------------------------------

    async def erase_user(self, request: Request) -> Response:
        refused = self._admin_refusal(request)
        if refused is not None:
            return refused
        client = self._client(request)
        user_id = request.path_params["user_id"]
        if not _USER_ID.match(user_id):
            return _bad_user_id()
        try:
            result = await self.collector.erase(user_id, actor=client or "unknown")
        except StoreUnavailable as error:
            return self._unavailable(error)
        return _json(
            {
                "erased": True,
                "repeat": result.repeat,
                "keys": result.keys,
                "events": result.events,
                "decisions": result.decisions,
                "queued": result.queued,
            }
        )

    # -- GET /dashboard, POST /admin/guardrails/{campaign}/enable (docs/reports.md) ---------

    async def dashboard(self, request: Request) -> Response:
        refused = self._admin_refusal(request)
        if refused is not None:
            return refused
        if self.dashboard_page is None:
            return _Refusal(
                404,
                "no_dashboard",
                "no dashboard in this process (dashboard.enabled is false, or it has no store)",
            ).response()
        return Response(
            self.dashboard_page(), 200, headers=_NO_STORE, media_type="text/html; charset=utf-8"
        )

    async def enable_guardrail(self, request: Request) -> Response:
        from slotwise.proxy.guardrail import state

        refused = self._admin_refusal(request)
        if refused is not None:
            return refused
        campaign = request.path_params["campaign"]
        try:
            store = self.collector.store
            if not await state.enable(store, campaign, by=self._client(request) or "admin"):
                current = ", ".join(sorted(await state.reverted(store))) or "none"
                message = f"campaign {campaign!r} is not reverted (reverted: {current})"
                return _Refusal(404, "not_reverted", message).response()
        except StoreUnavailable as error:
            return self._unavailable(error)
        return _json({"enabled": True, "campaign": campaign})

    # -- PUT /admin/profiles/{user_id} ------------------------------------------------------

    async def put_profile(self, request: Request) -> Response:
        refused = self._admin_refusal(request)
        if refused is not None:
            return refused
        user_id = request.path_params["user_id"]
        if not _USER_ID.match(user_id):
            return _bad_user_id()
        try:
            _json_media(request)
            body = await _read_limited(
                request,
                MAX_PROFILE_BYTES,
                self.config.body_timeout,
                "profile_too_large",
                "a profile is a small record",
            )
        except _Refusal as refusal:
            return refusal.response()
        record = decode_profile(body)
        if isinstance(record, Rejection):
            return _Refusal(
                422, "invalid_profile", "the profile was refused; nothing was stored", [record]
            ).response()
        client = self._client(request)
        try:
            stored = await self.collector.set_profile(
                user_id, encode_profile(record), actor=client or "unknown"
            )
        except StoreUnavailable as error:
            return self._unavailable(error)
        if not stored:
            return _Refusal(
                409, "user_erased", "this user was erased; their profile is not stored again"
            ).response()
        return _json({"stored": True, "profile": record})

    def _client(self, request: Request) -> str:
        """The client's address under the trusted-proxy rules (proxy.trusted_proxies)."""
        peer = request.client.host if request.client else ""
        return self.forwarding.client_address(peer, request.scope["headers"])

    def _admin_refusal(self, request: Request) -> Response | None:
        """Why this admin request is refused (disabled, not loopback, throttled, bad token),
        or None. The client is the one the trusted-proxy rules give: behind a trusted load
        balancer on loopback, a remote client is not loopback."""
        config = self.config
        client = self._client(request)
        if config.admin_token is None:
            return _Refusal(
                404, "admin_disabled", "the admin API is off: set SLOTWISE_ADMIN_TOKEN"
            ).response()
        if config.admin_loopback_only and not _LOOPBACK.match(client):
            return _Refusal(
                403, "admin_loopback_only", "the admin API answers on loopback only"
            ).response()
        throttle = self.admin_failures
        wait = throttle.retry_after(client)
        if wait is not None:  # the token is not even compared: guessing gains nothing
            return Response(
                _ENCODE.encode(
                    {
                        "error": {
                            "code": "admin_throttled",
                            "message": f"{throttle.limit} failed admin token attempts within "
                            f"{throttle.window:g}s: retry after {wait}s",
                        }
                    }
                ),
                429,
                headers={"Retry-After": str(wait), **_NO_STORE},
                media_type="application/json",
            )
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        expected = config.admin_token.encode()
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.encode(), expected):
            throttle.failed(client)
            return Response(
                _ENCODE.encode(
                    {"error": {"code": "unauthorized", "message": "a valid admin token is needed"}}
                ),
                401,
                headers={"WWW-Authenticate": "Bearer", **_NO_STORE},
                media_type="application/json",
            )
        throttle.succeeded(client)
        return None

    # -- GET /sdk.js ------------------------------------------------------------------------

    async def sdk_js(self, request: Request) -> Response:
        headers = {"Cache-Control": "public, max-age=300", "ETag": self.sdk_etag}
        if request.headers.get("if-none-match") == self.sdk_etag:
            return Response(status_code=304, headers=headers)
        return Response(self.sdk, headers=headers, media_type="application/javascript")

    # -- shared -----------------------------------------------------------------------------

    def _decide_consent(self, request: Request, stated: str | None) -> tuple[str, str]:
        return self.consent.decide(
            headers={k.lower(): v for k, v in request.headers.items()},
            query=dict(request.query_params),
            cookies=request.cookies,
            stated=stated,
        )

    def _unavailable(self, error: StoreUnavailable) -> Response:
        # the client learns only "retry later"; the operator needs the cause (a full disk, a
        # read-only file, redis out of memory), at most once per interval however many fail
        self._failures += 1
        now = time.monotonic()
        if now >= self._next_report:
            log.warning(
                "events could not be stored (%d request(s) answered 503 since the last report): %s",
                self._failures,
                error,
            )
            self._failures, self._next_report = 0, now + _REPORT_EVERY
        return Response(
            _ENCODE.encode(
                {
                    "error": {
                        "code": "store_unavailable",
                        "message": _UNCERTAIN
                        if isinstance(error, StoreWriteUncertain)
                        else "events cannot be stored right now; nothing was stored, retry later",
                    }
                }
            ),
            503,
            headers={"Retry-After": str(self.config.retry_after), **_NO_STORE},
            media_type="application/json",
        )


def _json_media(request: Request) -> None:
    media = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if media not in _JSON_TYPES:
        raise _Refusal(
            415, "unsupported_media_type", f"send JSON (application/json), not {media!r}"
        )


async def _read_limited(
    request: Request,
    limit: int,
    timeout: float,
    code: str = "batch_too_large",
    hint: str = "send smaller batches",
) -> bytes:
    declared = request.headers.get("content-length", "")
    too_large = _Refusal(413, code, f"the body exceeds {limit} bytes; {hint}")
    if declared.isdigit() and int(declared) > limit:
        raise too_large
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(timeout):  # a body trickling in must not hold a worker
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise too_large
                chunks.append(chunk)
    except ClientDisconnect:
        # gone, or a body the server could not frame: the answer reaches nobody or tells why
        raise _Refusal(400, "incomplete_body", "the request body ended early") from None
    except TimeoutError:
        message = f"the request body did not arrive within {timeout:g}s"
        raise _Refusal(408, "body_timeout", message) from None
    return b"".join(chunks)


def _pixel_fields(
    items: Sequence[tuple[str, str]],
) -> tuple[dict[str, Any], dict[str, Any]]:
    fields: dict[str, Any] = {}
    props: dict[str, Any] = {}
    for name, value in items:
        if name in _PIXEL_FIELDS:
            fields[_PIXEL_FIELDS[name]] = value
        elif name.startswith("p.") and len(name) > 2:
            props[name[2:]] = value
        elif name not in _PIXEL_IGNORED:
            raise _Refusal(
                400,
                "invalid_event",
                "unknown pixel parameter; properties go in p.<name>",
                [Rejection(f"$.query.{name}", "unknown parameter")],
            )
    return fields, props


def events_routes(
    collector: EventCollector,
    consent: ConsentConfig | None = None,
    forwarding: ForwardingPolicy | None = None,
    catalogue: LiveCatalogue | None = None,
    dashboard: Callable[[], bytes] | None = None,
) -> list[BaseRoute]:
    """The routes, relative to the proxy's ``/_sw`` prefix (``Mount("/_sw", routes=...)``).

    Pass the proxy's ``[plugins.consent]`` config as ``consent`` so that a TCF string is
    judged against your IAB vendor id, exactly as for decisions, and its
    ``proxy.trusted_proxies`` as ``forwarding`` so that the admin API sees the client a
    trusted load balancer names (not the balancer's own loopback address).
    """
    from slotwise.proxy.triggers.admin import trigger_routes

    endpoints = EventEndpoints(collector, consent, forwarding, dashboard)
    extra: list[BaseRoute] = []
    if catalogue is not None:  # the catalogue's admin API, behind the same admin checks
        from slotwise.proxy.catalogue.admin import catalogue_routes

        extra = catalogue_routes(catalogue, endpoints)
    return [
        Route("/dashboard", endpoints.dashboard, methods=["GET"]),
        Route("/admin/guardrails/{campaign}/enable", endpoints.enable_guardrail, methods=["POST"]),
        *trigger_routes(endpoints),
        *extra,
        Route("/px", endpoints.pixel, methods=["GET"]),
        Route("/events", endpoints.batch, methods=["POST"]),
        Route("/events/validate", endpoints.validate, methods=["POST"]),
        Route("/admin/users/{user_id:path}", endpoints.erase_user, methods=["DELETE"]),
        Route("/admin/profiles/{user_id:path}", endpoints.put_profile, methods=["PUT"]),
        Route("/sdk.js", endpoints.sdk_js, methods=["GET", "HEAD"]),
    ]


def create_events_app(collector: EventCollector, consent: ConsentConfig | None = None) -> Router:
    """An ASGI app serving :func:`events_routes`; mount it at ``/_sw``."""
    return Router(routes=events_routes(collector, consent))
