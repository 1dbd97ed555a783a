"""The triggers' admin endpoints (admin token, loopback by default, like every /_sw/admin one):

- ``GET /_sw/admin/audiences``: ``{"audiences": [{"name": NAME, "kind": "trigger"|"segment",
  "users": N}]}``;
- ``GET /_sw/admin/audiences/{name}?format=json|jsonl|csv``: the users currently in that
  trigger's state or segment (``segment:NAME``; slotwise.proxy.triggers.audiences); 404
  ``unknown_audience`` for a name that is no trigger or segment of the serving policy;
- ``POST /_sw/admin/prices``: ``{"updates": [{"product_id", "old_price", "new_price",
  "currency"?}], "within": SECONDS?}``: each drop fires ``price_drop`` for the users who viewed
  or price-checked the product within ``within`` (default 7 days; slotwise.proxy.triggers.prices);
  answers ``{"updates": N, "drops": D, "fired": USERS}``.
"""

from __future__ import annotations

import csv
import io
import time
from typing import TYPE_CHECKING, Annotated, Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from slotwise.proxy.events.endpoints import _read_limited, _Refusal
from slotwise.proxy.events.schema import Currency, Identifier, Money, rejection
from slotwise.proxy.state import StoreUnavailable
from slotwise.proxy.triggers.audiences import SEGMENT, UnknownAudience, audience, fields, names
from slotwise.proxy.triggers.prices import drop_events, viewers

if TYPE_CHECKING:
    from slotwise.proxy.events.endpoints import EventEndpoints

MAX_PRICE_BODY = 256 * 1024
_NO_STORE = {"Cache-Control": "no-store, max-age=0"}
_WEEK = 7 * 86_400.0


class PriceUpdate(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    product_id: Identifier
    old_price: Money
    new_price: Money
    currency: Currency | None = None


class PriceUpdates(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    updates: Annotated[list[PriceUpdate], msgspec.Meta(min_length=1, max_length=1000)]
    within: Annotated[float, msgspec.Meta(gt=0, le=90 * 86_400.0)] = _WEEK


def _json(body: object) -> Response:
    return Response(
        msgspec.json.encode(body), 200, headers=_NO_STORE, media_type="application/json"
    )


class TriggerAdmin:
    """The handlers, sharing the event endpoints' admin check and collector."""

    def __init__(self, endpoints: EventEndpoints) -> None:
        self.endpoints = endpoints

    def _policy(self) -> Any:
        engine = self.endpoints.collector.triggers
        return engine.policy() if engine is not None else None

    async def list_audiences(self, request: Request) -> Response:
        refused = self.endpoints._admin_refusal(request)
        if refused is not None:
            return refused
        policy = self._policy()
        store, now = self.endpoints.collector.store, time.time()
        found = []
        try:
            for name in names(policy) if policy is not None else []:
                kind = "segment" if name.startswith(SEGMENT) else "trigger"
                users = len(await audience(store, policy, name, now=now))
                found.append({"name": name, "kind": kind, "users": users})
        except StoreUnavailable as error:
            return self.endpoints._unavailable(error)
        return _json({"audiences": found})

    async def export_audience(self, request: Request) -> Response:
        refused = self.endpoints._admin_refusal(request)
        if refused is not None:
            return refused
        name = request.path_params["name"]
        format = request.query_params.get("format", "json")
        if format not in ("json", "jsonl", "csv"):
            return _Refusal(400, "invalid_format", "format is json, jsonl or csv").response()
        policy = self._policy()
        try:
            if policy is None:
                raise UnknownAudience(name)
            members = await audience(self.endpoints.collector.store, policy, name, now=time.time())
        except UnknownAudience:
            known = ", ".join(names(policy)) if policy is not None else "none"
            return _Refusal(
                404,
                "unknown_audience",
                f"no trigger or segment named {name!r} (audiences: {known})",
            ).response()
        except StoreUnavailable as error:
            return self.endpoints._unavailable(error)
        rows = [m.row() for m in members]
        if format == "json":
            return _json({"audience": name, "users": rows})
        if format == "jsonl":
            text = b"".join(msgspec.json.encode(row) + b"\n" for row in rows)
            return Response(text, 200, headers=_NO_STORE, media_type="application/x-ndjson")
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=fields(name), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        return Response(buffer.getvalue(), 200, headers=_NO_STORE, media_type="text/csv")

    async def prices(self, request: Request) -> Response:
        refused = self.endpoints._admin_refusal(request)
        if refused is not None:
            return refused
        try:
            body = await _read_limited(
                request, MAX_PRICE_BODY, self.endpoints.config.body_timeout, "batch_too_large",
                "send fewer updates per request",
            )  # fmt: skip
        except _Refusal as refusal:
            return refusal.response()
        try:
            batch = msgspec.json.decode(body, type=PriceUpdates)
        except msgspec.ValidationError as exc:
            return _Refusal(
                400, "invalid_price_update", "the price updates were refused; nothing was fired",
                [rejection(exc, "$", None)],
            ).response()  # fmt: skip
        except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
            return _Refusal(400, "invalid_json", "the body is not JSON").response()
        collector, now = self.endpoints.collector, time.time()
        drops = fired = 0
        try:
            for update in batch.updates:
                if update.new_price >= update.old_price:
                    continue
                drops += 1
                users = await viewers(
                    collector.store, update.product_id, within=batch.within, now=now
                )
                events = drop_events(
                    update.product_id, update.old_price, update.new_price, update.currency,
                    users, now,
                )  # fmt: skip
                if events:
                    result = await collector.collect(events, consent="personal", received=now)
                    fired += result.accepted
        except StoreUnavailable as error:
            return self.endpoints._unavailable(error)
        return _json({"updates": len(batch.updates), "drops": drops, "fired": fired})


def trigger_routes(endpoints: EventEndpoints) -> list[BaseRoute]:
    """The routes, relative to the proxy's ``/_sw`` prefix."""
    admin = TriggerAdmin(endpoints)
    return [
        Route("/admin/audiences", admin.list_audiences, methods=["GET"]),
        Route("/admin/audiences/{name}", admin.export_audience, methods=["GET"]),
        Route("/admin/prices", admin.prices, methods=["POST"]),
    ]
