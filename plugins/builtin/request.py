"""The ``request`` provider: what the request itself says about the page and the visitor.

Placement comes from a query parameter or header (ad requests name their placement); page type
and category from the path, by ordered regular-expression rules an operator can replace;
referrer is the referring host (``www.`` removed); language is the preferred primary language
tag of ``Accept-Language`` (``de`` for ``de-CH,de;q=0.9,en;q=0.5``); ``request.utm_*`` are the
campaign-tracking query parameters.

For an OpenRTB bid request, ``site.ref`` gives the referrer and ``device.language`` the
language (the HTTP request is the exchange's); the headers fill in when the bid request does
not say.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from typing import Final
from urllib.parse import urlsplit

from slotwise.plugins.builtin.configs import PAGE_TYPES, RequestConfig
from slotwise.plugins.provider import Provider, signal
from slotwise.plugins.request import RequestInfo, bid_request_of
from slotwise.types import SignalType, SignalValue

UTM_PARAMETERS: Final[tuple[str, ...]] = (
    "utm_source",
    "utm_medium",
    "utm_campaign",
    "utm_term",
    "utm_content",
)

_CATEGORY_IN_PATH = re.compile(r"^/(?:c|category|categories|collections?)/([^/?#]+)")
_LANGUAGE = re.compile(r"^[a-z]{2,3}$")


class RequestProvider(Provider[RequestConfig]):
    """Signals from the request line and headers; no I/O, no identifiers."""

    name = "request"
    inline = True
    config_type = RequestConfig
    deadline = 0.01
    signals = (
        signal("request.placement", SignalType.STRING, "The ad placement the request names."),
        signal("request.path", SignalType.STRING, "The request path, without the query."),
        signal(
            "request.page_type",
            SignalType.STRING,
            "Kind of page, from the path (configurable rules).",
            values=PAGE_TYPES,
        ),
        signal(
            "request.page_category",
            SignalType.STRING,
            "Category slug, from a /c/<slug> style path or the category query parameter.",
        ),
        signal("request.referrer", SignalType.STRING, "Referring host, lower case, no www."),
        signal(
            "request.language",
            SignalType.STRING,
            "Preferred primary language (ISO 639) from Accept-Language, e.g. de.",
        ),
        *(
            signal(f"request.{p}", SignalType.STRING, f"The {p} query parameter.")
            for p in UTM_PARAMETERS
        ),
    )

    def __init__(self, config: RequestConfig) -> None:
        super().__init__(config)
        self._page_rules = tuple(
            (re.compile(pattern), page_type) for pattern, page_type in config.page_types.items()
        )
        # ad requests repeat a few paths: remember their page type (bounded, any path may come)
        self._page_types: dict[str, tuple[str, str | None]] = {}
        self._placement_header = config.placement_header.lower()  # RequestInfo's header names

    async def fetch(self, request: RequestInfo) -> Mapping[str, SignalValue]:
        return self.fetch_now(request)

    def fetch_now(self, request: RequestInfo) -> Mapping[str, SignalValue]:
        """``fetch`` without a coroutine: gather calls it directly (it never waits)."""
        config = self.config
        out: dict[str, SignalValue] = {"request.path": request.path}
        query = request.query
        placement = (query.get(config.placement_param) if query else None) or (
            request.headers.get(self._placement_header)
        )
        if placement:
            out["request.placement"] = placement
        page_type, in_path = self._path_facts(request.path)
        out["request.page_type"] = page_type
        category = (query.get(config.category_param) or None) if query else None
        if category is None:
            category = in_path
        if category:
            out["request.page_category"] = category.lower()
        bid = bid_request_of(request)
        referrer = None
        language = None
        if bid is not None:
            if bid.site is not None:
                referrer = referrer_host(bid.site.ref)
            if bid.device is not None and bid.device.language:
                language = preferred_language(bid.device.language)
        referrer = referrer or referrer_host(request.headers.get("referer"))
        if referrer:
            out["request.referrer"] = referrer
        language = language or preferred_language(request.headers.get("accept-language"))
        if language:
            out["request.language"] = language
        if query:  # most ad requests have no query string
            for parameter in UTM_PARAMETERS:
                value = query.get(parameter)
                if value:
                    out[f"request.{parameter}"] = value
        return out

    def _path_facts(self, path: str) -> tuple[str, str | None]:
        """The path's page type and the category it names, if any (both depend on the path
        alone: remembered per path)."""
        known = self._page_types.get(path)
        if known is not None:
            return known
        page_type = "other"
        for pattern, kind in self._page_rules:
            if pattern.search(path):
                page_type = kind
                break
        found = _CATEGORY_IN_PATH.match(path)
        facts = (page_type, found.group(1) if found else None)
        if len(self._page_types) >= 4096:
            self._page_types.clear()
        self._page_types[path] = facts
        return facts


# Both are pure functions of a header that repeats across requests (a site's few referrers,
# its visitors' few language lists): remembered, bounded, rather than parsed per request.
@functools.lru_cache(maxsize=4096)
def referrer_host(referer: str | None) -> str | None:
    """The host of a ``Referer`` URL, lower case and without ``www.``; None if there is none."""
    if not referer:
        return None
    try:
        host = urlsplit(referer.strip()).hostname
    except ValueError:
        return None
    if not host:
        return None
    return host[4:] if host.startswith("www.") else host


@functools.lru_cache(maxsize=4096)
def preferred_language(header: str | None) -> str | None:
    """The primary tag of the highest-weighted language in ``Accept-Language`` (``*`` ignored)."""
    if not header:
        return None
    best: tuple[float, int, str] | None = None
    for index, item in enumerate(header.split(",")):
        tag, _, params = item.strip().partition(";")
        primary = tag.strip().split("-")[0].lower()
        if not _LANGUAGE.match(primary):
            continue
        weight = 1.0
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key == "q":
                try:
                    weight = float(value)
                except ValueError:
                    weight = 0.0
        if weight <= 0:
            continue
        # Highest weight wins; among equals, the first listed.
        candidate = (weight, -index, primary)
        if best is None or candidate > best:
            best = candidate
    return best[2] if best else None
