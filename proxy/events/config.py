"""``[events]`` configuration: limits, retention, deduplication window and the admin token.

The ``[events]`` section of slotwise's configuration model (slotwise.proxy.config): each key's
default, bounds and help are written here once; the loader reads them from ``slotwise.toml``,
``SLOTWISE_EVENTS_*`` variables (the admin token: ``SLOTWISE_ADMIN_TOKEN``) and flags.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Annotated, Any, Literal

import msgspec

_DAY = 86_400.0
Seconds = Annotated[float, msgspec.Meta(gt=0)]
Positive = Annotated[int, msgspec.Meta(gt=0)]


def _help(
    text: str, env: str | None = None, check: Callable[[Any], object] | None = None
) -> msgspec.Meta:
    """A key's one line of help; ``env`` when its variable is not SLOTWISE_EVENTS_NAME."""
    extra = {name: v for name, v in (("env", env), ("check", check)) if v is not None}
    return msgspec.Meta(description=text, extra=extra or None)


def _token(token: str | None) -> None:
    if token is not None and len(token) < 16:
        raise ValueError("must be at least 16 characters (use a random string)")


def _rate(text: str) -> None:
    from slotwise.proxy.events.rate_limit import check_rate

    check_rate(text)


def _cors_origins(origins: tuple[str, ...]) -> None:
    for origin in origins:
        scheme, sep, rest = origin.partition("://")
        if origin != "*" and (
            scheme not in ("http", "https") or not sep or not rest or "/" in rest
        ):
            raise ValueError(
                f"{origin!r} is not an origin: write scheme://host[:port], e.g. "
                "https://shop.example (no path), or *"
            )


# The event types whose properties slotwise's own readers of a user's history use: the cart
# (slotwise.plugins.profile_source, slotwise.proxy.triggers.engine), price drops
# (slotwise.proxy.triggers.prices), recommendations (slotwise.proxy.recommend). Issue 22: the
# rest (page views' URLs, impressions' slots...) took half of a history's bytes, unread.
HISTORY_PROPERTIES: tuple[str, ...] = (
    "product_view",
    "price_check",
    "add_to_cart",
    "remove_from_cart",
    "purchase",
)


def _event_types(names: tuple[str, ...]) -> None:
    for name in names:
        if name != "*" and not name.replace("_", "").isalnum():
            raise ValueError(f"{name!r} is not an event type (e.g. page_view), nor *")


class EventsConfig(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """Everything the event endpoints need to know; validated once at start-up."""

    max_event_bytes: Annotated[Positive, _help("largest event (413 `event_too_large` beyond)")] = (
        32 * 1024
    )
    max_batch_bytes: Annotated[Positive, _help("largest batch body (413 `batch_too_large`)")] = (
        500 * 1024
    )
    max_batch_events: Annotated[
        Positive, _help("most events per batch (413 `too_many_events`)")
    ] = 500
    body_timeout: Annotated[Seconds, _help("seconds to receive a whole body (408 beyond)")] = 30.0
    dedup_window: Annotated[
        Seconds, _help("seconds an event id is remembered: the same id is stored once")
    ] = _DAY
    event_retention: Annotated[
        Seconds, _help("seconds raw events and decisions are kept (90 days)")
    ] = 90 * _DAY
    audit_retention: Annotated[
        Seconds,
        _help(
            "seconds audit records (erasures and profile imports, by the user id's hash) are "
            "kept (a year)"
        ),
    ] = 365 * _DAY
    user_state_ttl: Annotated[
        Seconds, _help("seconds per-user histories live after the user's last activity (30 days)")
    ] = 30 * _DAY
    history_max_len: Annotated[
        int, msgspec.Meta(ge=0), _help("events kept per user history (0: no histories)")
    ] = 200
    history_properties: Annotated[
        tuple[str, ...],
        _help(
            "event types whose properties each user's history keeps (the others: type and "
            "time); the default is what slotwise reads (carts, price drops, recommendations); "
            "`*`: every event's (a plugin reading others' properties from the history)",
            check=_event_types,
        ),
    ] = HISTORY_PROPERTIES
    retention_interval: Annotated[Seconds, _help("seconds between retention passes")] = 3600.0
    retry_after: Annotated[
        Positive, _help("the `Retry-After` seconds of a 503 while the store is unreachable")
    ] = 5
    admin_token: Annotated[
        str | None,
        _help(
            "bearer token of the admin API, at least 16 characters (none: the admin API is off)",
            env="SLOTWISE_ADMIN_TOKEN",
            check=_token,
        ),
    ] = None
    admin_loopback_only: Annotated[
        bool,
        _help(
            "the admin API answers only clients on loopback addresses (the client "
            "`proxy.trusted_proxies` gives)"
        ),
    ] = True
    rate_limit: Annotated[
        str,
        _help(
            "per-client limit on `/_sw/px`, `/_sw/events` and `/_sw/events/validate`, e.g. "
            "`100/second;2000/minute` (429 with `Retry-After` beyond); counted in the store when "
            "it is Redis (across every proxy), else per worker; empty: no limit",
            check=_rate,
        ),
    ] = ""
    cors_origins: Annotated[
        tuple[str, ...],
        _help(
            "origins (`https://shop.example`) whose pages may send events to the event "
            "endpoints from the browser (CORS; preflights answered); `*`: any; empty: none",
            check=_cors_origins,
        ),
    ] = ()
    consent_default: Annotated[
        Literal["personal", "contextual"], _help("consent level when there is no consent record")
    ] = "contextual"
    honor_gpc: Annotated[bool, _help("obey `Sec-GPC: 1` (contextual consent only)")] = True
    events_log: Annotated[str, _help("name of the events log in the store")] = "events"
    decisions_log: Annotated[str, _help("name of the decisions log in the store")] = "decisions"
    audit_log: Annotated[str, _help("name of the audit log (erasures, profile imports)")] = "audit"

    def __post_init__(self) -> None:
        if self.admin_token is not None and len(self.admin_token) < 16:
            raise ValueError("admin_token must be at least 16 characters")
        if self.max_event_bytes > self.max_batch_bytes:
            raise ValueError("max_event_bytes cannot exceed max_batch_bytes")

    @classmethod
    def load(
        cls, section: Mapping[str, object] | None = None, env: Mapping[str, str] | None = None
    ) -> EventsConfig:
        """From a ``[events]`` table plus the environment (``SLOTWISE_EVENTS_*``,
        ``SLOTWISE_ADMIN_TOKEN``); ValueError names the field. Through the configuration
        loader: ``load_settings`` reads this section with the rest."""
        from slotwise.proxy.config import ConfigError, settings_from_document

        environ = os.environ if env is None else env
        try:
            return settings_from_document(
                {"events": dict(section or {})}, "[events]", environ
            ).events
        except ConfigError as exc:
            raise ValueError(str(exc)) from None
