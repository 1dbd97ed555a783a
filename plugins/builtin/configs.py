"""The configurations of the built-in providers (``[plugins.NAME]``), as msgspec validates them.

They live apart from their providers because the providers run on every request and are
compiled with mypyc (slotwise/native.py), and msgspec misreads the annotations of a Struct
defined in a compiled module ("Expected `type`, got `int`"); this module stays pure Python.
Each provider's module re-exports its configuration under the same name as before.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec

# request: the page types a path rule may name, and the default rules
PAGE_TYPES = ("home", "category", "product", "search", "cart", "checkout", "account", "other")
_DEFAULT_PAGE_RULES: dict[str, str] = {
    r"^/?$": "home",
    r"^/(c|category|categories|collections?)/": "category",
    r"^/(p|product|products|item|dp)/": "product",
    r"^/search": "search",
    r"^/(cart|basket|bag)": "cart",
    r"^/checkout": "checkout",
    r"^/(account|my-account|profile|orders)": "account",
}

# geo: the CDN headers read per field, by default
_DEFAULT_HEADERS: dict[str, list[str]] = {
    "country": ["cf-ipcountry", "cloudfront-viewer-country", "x-country-code"],
    "region": ["cf-region-code", "cloudfront-viewer-country-region", "x-region-code"],
    "city": ["cf-ipcity", "cloudfront-viewer-city", "x-city"],
    "timezone": ["cf-timezone", "cloudfront-viewer-time-zone", "x-timezone"],
    "latitude": ["cf-iplatitude", "cloudfront-viewer-latitude"],
    "longitude": ["cf-iplongitude", "cloudfront-viewer-longitude"],
}
GEO_FIELDS = ("country", "region", "city", "timezone", "latitude", "longitude")


class ProfileConfig(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """``[plugins.profile]``: how far back events are read, when a user counts as new."""

    history_days: float = 30.0
    new_user_max_visits: int = 1

    def __post_init__(self) -> None:
        if self.history_days <= 0:
            raise ValueError("history_days must be positive")


class GeoConfig(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """``[plugins.geo]``: the database path and which CDN headers to trust."""

    database: str | None = None
    trust_cdn_headers: bool = True
    headers: dict[str, list[str]] = msgspec.field(
        default_factory=lambda: {k: list(v) for k, v in _DEFAULT_HEADERS.items()}
    )

    def __post_init__(self) -> None:
        unknown = sorted(set(self.headers) - set(GEO_FIELDS))
        if unknown:
            raise ValueError(f"headers: unknown field(s) {unknown}; use {', '.join(GEO_FIELDS)}")
        if self.database is not None and not Path(self.database).is_file():
            raise ValueError(f"database: no such file {self.database!r}")


class ConsentConfig(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """``[plugins.consent]``: our IAB vendor id, the purposes we need, cookie names, defaults."""

    vendor_id: int | None = None
    required_purposes: list[int] = msgspec.field(default_factory=lambda: [1, 3, 4])
    max_age_days: float = 390.0  # IAB recommends re-asking after 13 months
    honor_gpc: bool = True
    tcf_cookie: str = "euconsent-v2"
    tcf_param: str = "gdpr_consent"
    gdpr_param: str = "gdpr"
    site_cookie: str | None = "sw_consent"
    site_grants: list[str] = msgspec.field(
        default_factory=lambda: ["personal", "all", "granted", "yes", "true", "1"]
    )
    site_denies: list[str] = msgspec.field(
        default_factory=lambda: ["contextual", "necessary", "denied", "no", "false", "0"]
    )
    default_level: Literal["personal", "contextual"] = "contextual"

    def __post_init__(self) -> None:
        if self.vendor_id is not None and not 1 <= self.vendor_id <= 65_535:
            raise ValueError(f"vendor_id must be an IAB vendor id 1..65535, not {self.vendor_id}")
        bad = [p for p in self.required_purposes if not 1 <= p <= 24]
        if bad:
            raise ValueError(f"required_purposes must be TCF purpose ids 1..24, not {bad}")
        if self.max_age_days <= 0:
            raise ValueError("max_age_days must be positive")


class RequestConfig(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """``[plugins.request]``: where placement, page type and category are found."""

    placement_param: str = "placement"
    placement_header: str = "x-sw-placement"
    category_param: str = "category"
    # Ordered `regex = page type`, first match wins; unmatched paths are "other".
    page_types: dict[str, str] = msgspec.field(default_factory=lambda: dict(_DEFAULT_PAGE_RULES))

    def __post_init__(self) -> None:
        for pattern, page_type in self.page_types.items():
            if page_type not in PAGE_TYPES:
                raise ValueError(f"page_types: {page_type!r} is not one of {', '.join(PAGE_TYPES)}")
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"page_types: bad regular expression {pattern!r}: {exc}") from None


class TimeConfig(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """``[plugins.time]``: the zone used when the user's is unknown (an IANA name)."""

    default_timezone: str = "UTC"

    def __post_init__(self) -> None:
        time_zone(self.default_timezone)


def time_zone(name: str) -> ZoneInfo:
    """The IANA zone ``name``; ValueError when there is none of that name."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown time zone {name!r} (use an IANA name like Europe/Berlin)"
        ) from None
