"""The event schema: one msgspec type per event type, validated with field paths.

Every event carries ``type``, ``id`` (client-generated, the deduplication key), ``time``
(seconds since the epoch; the server's receive time when absent), optional ``user_id``,
``anonymous_id`` and ``decision_id``, and typed ``properties`` for its type. Unknown fields are
rejected so that a typo is an error, not silently lost data; ``properties.extra`` holds a few
free-form scalars for site-specific needs.
"""

from __future__ import annotations

import math
import re
import time
from typing import Annotated, Any

import msgspec

from slotwise.types import EVENT_TYPES

_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:@/+=-]*$"
Identifier = Annotated[str, msgspec.Meta(min_length=1, max_length=128, pattern=_ID_PATTERN)]
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=256)]
Text = Annotated[str, msgspec.Meta(max_length=2048)]
Currency = Annotated[str, msgspec.Meta(pattern=r"^[A-Z]{3}$")]
Money = Annotated[float, msgspec.Meta(ge=0, le=1e12)]
Quantity = Annotated[int, msgspec.Meta(ge=1, le=100_000)]
Extra = Annotated[
    dict[Annotated[str, msgspec.Meta(max_length=64)], str | int | float | bool],
    msgspec.Meta(max_length=32),
]

# Events further than this in the future are a client clock bug, not a forecast.
MAX_CLOCK_AHEAD = 24 * 3600.0


class _Props(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, omit_defaults=True):
    extra: Extra | None = None


class SlotProps(_Props):
    """impression / click: which personalised slot and variant the user saw or clicked."""

    campaign: Name | None = None
    slot: Name | None = None
    variant: Name | None = None
    url: Text | None = None


class ConversionProps(_Props):
    value: Money = 0.0
    currency: Currency | None = None
    goal: Name | None = None


class PageProps(_Props):
    url: Text | None = None
    path: Text | None = None
    referrer: Text | None = None
    title: Text | None = None
    page_type: Name | None = None
    category: Name | None = None


class ProductProps(_Props):
    product_id: Identifier
    category: Name | None = None
    brand: Name | None = None
    price: Money | None = None
    currency: Currency | None = None
    quantity: Quantity = 1


class SearchProps(_Props):
    query: Annotated[str, msgspec.Meta(min_length=1, max_length=512)]
    results: Annotated[int, msgspec.Meta(ge=0)] | None = None


class PriceDropProps(_Props):
    product_id: Identifier
    old_price: Money
    new_price: Money
    currency: Currency | None = None


class Item(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, omit_defaults=True):
    product_id: Identifier
    quantity: Quantity = 1
    price: Money | None = None
    category: Name | None = None


class PurchaseProps(_Props):
    order_id: Identifier
    items: Annotated[list[Item], msgspec.Meta(max_length=500)]
    value: Money
    currency: Currency
    # the offer the shop applied (the ``id`` of the offer the proxy wrote: docs/offers.md),
    # what it cost when the shop says (order currency), the shipping it waived
    offer_id: Identifier | None = None
    discount: Money | None = None
    shipping: Money | None = None


class SessionProps(_Props):
    referrer: Text | None = None
    landing_url: Text | None = None
    utm_source: Name | None = None
    utm_medium: Name | None = None
    utm_campaign: Name | None = None


class _Event(
    msgspec.Struct, forbid_unknown_fields=True, kw_only=True, tag_field="type", omit_defaults=True
):
    id: Identifier
    time: Annotated[float, msgspec.Meta(gt=0)] | None = None
    user_id: Identifier | None = None
    anonymous_id: Identifier | None = None
    decision_id: Identifier | None = None


class ImpressionEvent(_Event, tag="impression"):
    properties: SlotProps = msgspec.field(default_factory=SlotProps)


class ClickEvent(_Event, tag="click"):
    properties: SlotProps = msgspec.field(default_factory=SlotProps)


class ConversionEvent(_Event, tag="conversion"):
    properties: ConversionProps = msgspec.field(default_factory=ConversionProps)


class PageViewEvent(_Event, tag="page_view"):
    properties: PageProps = msgspec.field(default_factory=PageProps)


class ProductViewEvent(_Event, tag="product_view"):
    properties: ProductProps


class AddToCartEvent(_Event, tag="add_to_cart"):
    properties: ProductProps


class RemoveFromCartEvent(_Event, tag="remove_from_cart"):
    properties: ProductProps


class SearchEvent(_Event, tag="search"):
    properties: SearchProps


class PriceCheckEvent(_Event, tag="price_check"):
    properties: ProductProps


class PriceDropEvent(_Event, tag="price_drop"):
    properties: PriceDropProps


class PurchaseEvent(_Event, tag="purchase"):
    properties: PurchaseProps


class SessionStartEvent(_Event, tag="session_start"):
    properties: SessionProps = msgspec.field(default_factory=SessionProps)


Event = (
    ImpressionEvent
    | ClickEvent
    | ConversionEvent
    | PageViewEvent
    | ProductViewEvent
    | AddToCartEvent
    | RemoveFromCartEvent
    | SearchEvent
    | PriceCheckEvent
    | PriceDropEvent
    | PurchaseEvent
    | SessionStartEvent
)
EVENT_CLASSES: dict[str, type[_Event]] = {
    str(cls.__struct_config__.tag): cls for cls in Event.__args__
}
assert set(EVENT_CLASSES) == EVENT_TYPES, "every shared event type needs a schema here"

_DECODER = msgspec.json.Decoder(Event)
_KNOWN = ", ".join(sorted(EVENT_TYPES))
_MSGSPEC_PATH = re.compile(r"^(?P<reason>.*?)(?: - at `(?P<path>[^`]*)`)?$", re.DOTALL)


class Rejection(msgspec.Struct, frozen=True):
    """Why one part of the input was refused: where (a JSON path) and what is wrong."""

    path: str
    reason: str


def rejection(exc: msgspec.MsgspecError, prefix: str, raw: Any) -> Rejection:
    match = _MSGSPEC_PATH.match(str(exc))
    reason = match.group("reason") if match else str(exc)
    path = (match.group("path") if match else None) or "$"
    if path == "$.type" and reason.startswith("Invalid value"):
        found = raw.get("type") if isinstance(raw, dict) else None
        reason = f"unknown event type {found!r}; expected one of: {_KNOWN}"
    elif reason == "Object missing required field `type`":
        path, reason = "$.type", f"missing event type; expected one of: {_KNOWN}"
    elif reason.startswith("Object contains unknown field"):
        field = reason.rpartition(" ")[2].strip("`")
        path, reason = f"{path}.{field}", "unknown field (check the spelling)"
    return Rejection(prefix + path[1:], reason)


def malformed(exc: Exception) -> str:
    """msgspec's reason, in the client's terms (it raises Python's own errors for these two)."""
    if isinstance(exc, UnicodeDecodeError):
        return f"not UTF-8 (byte {exc.object[exc.start]:#04x} at offset {exc.start})"
    if isinstance(exc, RecursionError):
        return "nested too deeply"
    return str(exc)


def decode_event(raw: bytes, prefix: str = "$") -> Event | Rejection:
    """Decode one JSON event; a Rejection with a path starting at ``prefix`` when invalid."""
    try:
        event: Event = _DECODER.decode(raw)
    except msgspec.ValidationError as exc:
        try:
            loose = msgspec.json.decode(raw)
        except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
            loose = None
        return rejection(exc, prefix, loose)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError) as exc:
        return Rejection(prefix, f"malformed JSON: {malformed(exc)}")
    return check_event(event, prefix)


def convert_event(fields: dict[str, Any], prefix: str = "$") -> Event | Rejection:
    """Build an event from loosely typed values (query parameters: numbers arrive as text)."""
    try:
        event: Event = msgspec.convert(fields, Event, strict=False)
    except msgspec.ValidationError as exc:
        return rejection(exc, prefix, fields)
    return check_event(event, prefix)


def check_event(event: Event, prefix: str = "$") -> Event | Rejection:
    """Checks msgspec cannot express: finite times not far in the future."""
    if event.time is not None:
        if not math.isfinite(event.time):
            return Rejection(f"{prefix}.time", "must be a finite number of seconds")
        if event.time > time.time() + MAX_CLOCK_AHEAD:
            return Rejection(
                f"{prefix}.time", "is more than 24 h in the future (seconds since the epoch?)"
            )
    return event


def event_type(event: Event) -> str:
    """The event's ``type`` tag."""
    tag = type(event).__struct_config__.tag
    assert isinstance(tag, str)
    return tag
