"""The ``ortb`` and ``ortb_user`` providers: what an OpenRTB bid request says about the ad.

When the proxy answers an ad exchange, the bid request the exchange POSTs describes the
placement: the site or app (``ortb.site_domain``, ``ortb.app_bundle``, ``ortb.publisher_id``,
``ortb.categories``) and the impressions on offer (``ortb.imp_types``, ``ortb.imp_formats``,
the first impression's ``ortb.imp_w`` x ``ortb.imp_h``...). Device, place, language and consent
come from the same bid request through the ``device``, ``geo``, ``request`` and ``consent``
providers. ``ortb_user`` (personal: only with consent) gives the identifiers: the device's
advertising id (unless the device limits ad tracking), the exchange's and the buyer's user ids.

Both read nothing but the decoded bid request (:attr:`RequestInfo.bid_request`) and declare
``needs_bid_request``: they do not run for other requests. ``ortb`` counts bid requests that
were not wholly read in its ``fallbacks_total`` (``bid_request_malformed``,
``bid_request_invalid``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from slotwise.plugins.bid_request import App, BidRequest, Imp, Site
from slotwise.plugins.builtin.request import referrer_host
from slotwise.plugins.provider import Provider, signal
from slotwise.plugins.request import RequestInfo
from slotwise.types import SignalType, SignalValue

CHANNELS = ("site", "app", "dooh")
IMP_TYPES = ("banner", "video", "native", "audio")
# Bounds on what one bid request can put into the signals (and so into the decision log).
MAX_TEXT = 256
MAX_ITEMS = 32
MAX_SIZE = 100_000
# An advertising id of zeros is what iOS and Android send when the user refused tracking.
_NO_IFA = frozenset({"", "00000000-0000-0000-0000-000000000000"})


class OrtbProvider(Provider[Any]):
    """Placement signals from the OpenRTB bid request; no I/O, no identifiers."""

    name = "ortb"
    inline = True
    needs_bid_request = True
    deadline = 0.01
    signals = (
        signal(
            "ortb.channel",
            SignalType.STRING,
            "Where the ad shows: on a site, in an app, or on a digital out-of-home screen.",
            values=CHANNELS,
        ),
        signal(
            "ortb.site_domain",
            SignalType.STRING,
            "The site's domain (site.domain, else the page's host), lower case, no www.",
        ),
        signal("ortb.app_bundle", SignalType.STRING, "The app's bundle or store id (app.bundle)."),
        signal(
            "ortb.publisher_id",
            SignalType.STRING,
            "The exchange's id of the publisher (site.publisher.id or app.publisher.id).",
        ),
        signal(
            "ortb.categories",
            SignalType.STRING_LIST,
            "IAB content categories of the site or app (site.cat or app.cat).",
        ),
        signal("ortb.imp_count", SignalType.INT, "Impressions on offer in the request.", minimum=0),
        signal(
            "ortb.imp_types",
            SignalType.STRING_LIST,
            "Media types the impressions accept: banner, video, native, audio.",
            values=IMP_TYPES,
        ),
        signal(
            "ortb.imp_formats",
            SignalType.STRING_LIST,
            'Sizes the impressions accept, as "WxH" ("300x250"): banner, its formats, video.',
        ),
        signal(
            "ortb.imp_w",
            SignalType.INT,
            "Width of the first impression (banner, else its first format, else video).",
            minimum=0,
        ),
        signal(
            "ortb.imp_h",
            SignalType.INT,
            "Height of the first impression (banner, else its first format, else video).",
            minimum=0,
        ),
        signal(
            "ortb.interstitial",
            SignalType.BOOL,
            "The first impression is interstitial or full screen (imp.instl).",
        ),
    )

    async def fetch(self, request: RequestInfo) -> Mapping[str, SignalValue]:
        body = request.body
        problem = body.problem
        if problem is not None:
            self.metrics.fallback(f"bid_request_{problem}")
        bid = body.bid_request
        return placement(bid) if bid is not None else {}


def placement(bid: BidRequest) -> dict[str, SignalValue]:
    """The ``ortb.*`` signals of a bid request."""
    out: dict[str, SignalValue] = {}
    site, app = bid.site, bid.app
    source: Site | App | None = site or app
    if site is not None:
        out["ortb.channel"] = "site"
        _put(out, "ortb.site_domain", _domain(site.domain) or referrer_host(site.page))
    elif app is not None:
        out["ortb.channel"] = "app"
        _put(out, "ortb.app_bundle", app.bundle)
    elif bid.dooh is not None:
        out["ortb.channel"] = "dooh"
    if source is not None:
        if source.publisher is not None:
            _put(out, "ortb.publisher_id", source.publisher.id)
        if source.cat:
            out["ortb.categories"] = _texts(source.cat)
    imps = bid.imp
    out["ortb.imp_count"] = len(imps)
    types: list[str] = []
    formats: list[str] = []
    for imp in imps[:MAX_ITEMS]:
        _impression(imp, types, formats)
    out["ortb.imp_types"] = tuple(types)
    if formats:
        out["ortb.imp_formats"] = tuple(formats[:MAX_ITEMS])
    size = _size(imps[0])
    if size is not None:
        out["ortb.imp_w"], out["ortb.imp_h"] = size
    if imps[0].instl is not None:
        out["ortb.interstitial"] = imps[0].instl == 1
    return out


class OrtbUserProvider(Provider[Any]):
    """The user identifiers of the OpenRTB bid request; personal: only with consent."""

    name = "ortb_user"
    personal = True
    inline = True
    needs_bid_request = True
    deadline = 0.01
    signals = (
        signal(
            "user.ifa",
            SignalType.STRING,
            "The device's advertising id (device.ifa); absent when the device limits ad "
            "tracking (device.lmt) or sends zeros.",
        ),
        signal("user.exchange_uid", SignalType.STRING, "The exchange's id of the user (user.id)."),
        signal("user.buyer_uid", SignalType.STRING, "The buyer's id of the user (user.buyeruid)."),
    )

    async def fetch(self, request: RequestInfo) -> Mapping[str, SignalValue]:
        bid = request.bid_request
        if bid is None:
            return {}
        out: dict[str, SignalValue] = {}
        device, user = bid.device, bid.user
        if device is not None and device.lmt != 1 and device.ifa not in _NO_IFA:
            _put(out, "user.ifa", device.ifa)
        if user is not None:
            _put(out, "user.exchange_uid", user.id)
            _put(out, "user.buyer_uid", user.buyeruid)
        return out


def _impression(imp: Imp, types: list[str], formats: list[str]) -> None:
    """Add the media types and sizes ``imp`` accepts to ``types`` and ``formats`` (once each)."""
    banner, video = imp.banner, imp.video
    sizes: list[tuple[int | None, int | None]] = []
    if banner is not None:
        if "banner" not in types:
            types.append("banner")
        sizes.append((banner.w, banner.h))
        sizes.extend((allowed.w, allowed.h) for allowed in banner.format[:MAX_ITEMS])
    if video is not None:
        if "video" not in types:
            types.append("video")
        sizes.append((video.w, video.h))
    if imp.native is not None and "native" not in types:
        types.append("native")
    if imp.audio is not None and "audio" not in types:
        types.append("audio")
    for w, h in sizes:
        if _dimension(w) and _dimension(h):
            size = f"{w}x{h}"
            if size not in formats:
                formats.append(size)


def _size(imp: Imp) -> tuple[int, int] | None:
    """The first impression's size: its banner, else its first format, else its video."""
    banner, video = imp.banner, imp.video
    candidates: list[tuple[int | None, int | None]] = []
    if banner is not None:
        candidates.append((banner.w, banner.h))
        candidates.extend((allowed.w, allowed.h) for allowed in banner.format[:1])
    if video is not None:
        candidates.append((video.w, video.h))
    for w, h in candidates:
        if w is not None and h is not None and _dimension(w) and _dimension(h):
            return w, h
    return None


def _dimension(value: int | None) -> bool:
    return value is not None and 0 < value <= MAX_SIZE


def _domain(domain: str | None) -> str | None:
    """``site.domain`` as ``request.referrer`` writes hosts: lower case, without ``www.``."""
    if not domain:
        return None
    host = domain.strip().lower()
    return host[4:] if host.startswith("www.") else host


def _put(out: dict[str, SignalValue], name: str, value: str | None) -> None:
    if value:
        text = value.strip()
        if 0 < len(text) <= MAX_TEXT:
            out[name] = text


def _texts(values: Iterable[str]) -> tuple[str, ...]:
    kept: list[str] = []
    for value in values:
        text = value.strip()
        if 0 < len(text) <= MAX_TEXT and text not in kept:
            kept.append(text)
            if len(kept) == MAX_ITEMS:
                break
    return tuple(kept)
