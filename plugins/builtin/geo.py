"""The ``geo`` provider: country, region, city and time zone of the client.

From a MaxMind-format database (GeoLite2/GeoIP2 City or Country, or any ``.mmdb`` with the same
record layout) when ``database`` is configured; else from CDN headers (Cloudflare's
``CF-IPCountry``, CloudFront's ``CloudFront-Viewer-*``...) when ``trust_cdn_headers`` is on;
else the signals are absent. A database answer wins over headers field by field.

Only turn ``trust_cdn_headers`` on behind a CDN that sets (and overwrites) those headers:
a client can send them itself.

For an OpenRTB bid request, ``device.geo`` says where the user's device is (the HTTP request
comes from the exchange): its country (ISO 3166-1 alpha-3, ``DEU``, given as alpha-2 ``DE``),
region, city and coordinates win field by field; the database looks up ``device.ip`` (or
``device.ipv6``) instead of the exchange's address; CDN headers fill what is left.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from math import isfinite
from typing import Any, Final

import maxminddb

from slotwise.plugins.bid_request import Geo
from slotwise.plugins.builtin.configs import GEO_FIELDS, GeoConfig
from slotwise.plugins.builtin.countries import alpha2
from slotwise.plugins.provider import Provider, signal
from slotwise.plugins.request import RequestInfo, bid_request_of, headers_of
from slotwise.types import SignalType, SignalValue

_BOUNDS = {"latitude": 90.0, "longitude": 180.0}
# Cloudflare's markers for "unknown" and "Tor"; not countries.
_NOT_COUNTRIES: Final = frozenset({"XX", "T1"})
# Longest region code and city name taken from a bid request (ISO 3166-2 subdivision codes
# have at most three characters; city names are short): longer is not a place.
_MAX_CODE = 3
_MAX_NAME = 100


class GeoProvider(Provider[GeoConfig]):
    """Geo signals from a MaxMind database or CDN headers; reads the client IP only."""

    name = "geo"
    inline = True
    config_type = GeoConfig
    deadline = 0.02
    signals = (
        signal("geo.country", SignalType.STRING, "ISO 3166-1 alpha-2 country code, e.g. DE."),
        signal("geo.region", SignalType.STRING, "ISO 3166-2 subdivision code without country."),
        signal("geo.city", SignalType.STRING, "City name (English)."),
        signal("geo.timezone", SignalType.STRING, "IANA time zone, e.g. Europe/Berlin."),
        signal(
            "geo.latitude",
            SignalType.FLOAT,
            "Approximate latitude of the client (city level at best).",
            minimum=-90,
            maximum=90,
        ),
        signal(
            "geo.longitude",
            SignalType.FLOAT,
            "Approximate longitude of the client (city level at best).",
            minimum=-180,
            maximum=180,
        ),
    )

    def __init__(self, config: GeoConfig) -> None:
        super().__init__(config)
        self._reader: Any = None
        if config.database is not None:
            try:
                self._reader = maxminddb.open_database(config.database)
            except (OSError, maxminddb.InvalidDatabaseError) as exc:
                raise ValueError(f"cannot open {config.database}: {exc}") from None
        # per field with headers to read: its signal's name, the (lower-case) header names,
        # its coordinate bound if it is one (made once: read on every request)
        self._headers = tuple(
            (field, f"geo.{field}", names, _BOUNDS.get(field))
            for field in GEO_FIELDS
            if (names := tuple(h.lower() for h in config.headers.get(field, ())))
        )

    async def aclose(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None

    async def fetch(self, request: RequestInfo) -> Mapping[str, SignalValue]:
        return self.fetch_now(request)

    def fetch_now(self, request: RequestInfo) -> Mapping[str, SignalValue]:
        """``fetch`` without a coroutine: gather calls it directly (it never waits)."""
        # the headers' signals, or none: the dict the others are added to
        out = self._from_headers(request) if self.config.trust_cdn_headers else {}
        bid = bid_request_of(request)
        device = bid.device if bid is not None else None
        ip = request.client_ip
        if device is not None and (device.ip or device.ipv6):
            ip = device.ip or device.ipv6  # the user's address, not the exchange's
        if self._reader is not None and ip:
            out.update(lookup(self._reader, ip))
        if device is not None and device.geo is not None:
            out.update(from_geo(device.geo))
        return out

    def _from_headers(self, request: RequestInfo) -> dict[str, SignalValue]:
        out: dict[str, SignalValue] = {}
        headers = headers_of(request)  # names lower-cased, as self._headers are
        for field, signal_name, names, bound in self._headers:
            for name in names:
                raw = headers.get(name)
                if not raw:
                    continue
                value = raw.strip()
                if not value:
                    continue
                if bound is not None:
                    number = _coordinate(value, bound)
                    if number is None:
                        continue
                    out[signal_name] = number
                    break
                if field == "country":
                    value = value.upper()
                    if len(value) != 2 or not value.isalpha() or value in _NOT_COUNTRIES:
                        continue
                out[signal_name] = value
                break
        return out


def from_geo(geo: Geo) -> dict[str, SignalValue]:
    """Geo signals from an OpenRTB ``device.geo`` (what it leaves out stays absent)."""
    out: dict[str, SignalValue] = {}
    country = alpha2(geo.country) if geo.country else None
    if country is not None and country not in _NOT_COUNTRIES:
        out["geo.country"] = country
    if geo.region:
        # ISO 3166-2 ("DE-BE") or, for the US, the bare state code ("CA"): the part after "-"
        region = geo.region.strip().rpartition("-")[2].upper()
        if 0 < len(region) <= _MAX_CODE and region.isalnum():
            out["geo.region"] = region
    if geo.city:
        city = geo.city.strip()
        if 0 < len(city) <= _MAX_NAME:
            out["geo.city"] = city
    for field, value in (("latitude", geo.lat), ("longitude", geo.lon)):
        if value is not None and isfinite(value) and abs(value) <= _BOUNDS[field]:
            out[f"geo.{field}"] = float(value)
    return out


def lookup(reader: Any, ip: str) -> dict[str, SignalValue]:
    """Geo signals for ``ip`` from an open ``maxminddb`` reader (empty if unknown or invalid)."""
    try:
        ipaddress.ip_address(ip)
        record = reader.get(ip)
    except ValueError:
        return {}
    if not isinstance(record, dict):
        return {}
    out: dict[str, SignalValue] = {}
    country = _dig(record, "country", "iso_code") or _dig(record, "registered_country", "iso_code")
    if isinstance(country, str):
        out["geo.country"] = country.upper()
    subdivisions = record.get("subdivisions")
    if isinstance(subdivisions, list) and subdivisions:
        region = _dig(subdivisions[0], "iso_code")
        if isinstance(region, str):
            out["geo.region"] = region
    city = _dig(record, "city", "names", "en")
    if isinstance(city, str):
        out["geo.city"] = city
    zone = _dig(record, "location", "time_zone")
    if isinstance(zone, str):
        out["geo.timezone"] = zone
    for field in ("latitude", "longitude"):
        number = _dig(record, "location", field)
        if isinstance(number, int | float) and not isinstance(number, bool):
            if abs(number) <= _BOUNDS[field]:
                out[f"geo.{field}"] = float(number)
    return out


def _coordinate(text: str, bound: float) -> float | None:
    try:
        number = float(text)
    except ValueError:
        return None
    return number if abs(number) <= bound else None


def _dig(record: Any, *keys: str) -> object:
    for key in keys:
        if not isinstance(record, dict):
            return None
        record = record.get(key)
    return record
