"""The ``ortb`` and ``ortb_user`` providers: what an OpenRTB bid request says about the ad.

When the proxy answers an ad exchange, the bid request the exchange POSTs describes the
placement: the site or app (``ortb.site_domain``, ``ortb.app_bundle``, ``ortb.publisher_id``,
``ortb.categories``) and the impressions on offer (``ortb.imp_types``, ``ortb.imp_formats``,
the first impression's ``ortb.imp_w`` x ``ortb.imp_h``...). Device, place, language and consent
come from the same bid request through the ``device``, ``geo``, ``request`` and ``consent``
providers. ``ortb_user`` (personal: only with consent) gives the identifiers: the device's
advertising id (unless the device limits ad tracking), the exchange's and the buyer's user ids.

Neither reads anything but the decoded bid request (:attr:`RequestInfo.bid_request`), so a
request without one costs a lookup; ``ortb`` counts bid requests that were not wholly read in
its ``fallbacks_total`` (``bid_request_malformed``, ``bid_request_invalid``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from slotwise.plugins.bid_request import BidRequest, Imp
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
    if site is not None:
        out["ortb.channel"] = "site"
        domain = referrer_host(f"//{site.domain}") if site.domain else None
        domain = domain or referrer_host(site.page)
        _put(out, "ortb.site_domain", domain)
    elif app is not None:
        out["ortb.channel"] = "app"
        _put(out, "ortb.app_bundle", app.bundle)
    elif bid.dooh is not None:
        out["ortb.channel"] = "dooh"
    publisher = site.publisher if site is not None else app.publisher if app is not None else None
    if publisher is not None:
        _put(out, "ortb.publisher_id", publisher.id)
    categories = site.cat if site is not None else app.cat if app is not None else ()
    if categories:
        out["ortb.categories"] = _texts(categories)
    imps = bid.imp
    out["ortb.imp_count"] = len(imps)
    types: list[str] = []
    formats: list[str] = []
    for imp in imps[:MAX_ITEMS]:
        types.extend(t for t in _types(imp) if t not in types)
        formats.extend(f for f in _formats(imp) if f not in formats)
    out["ortb.imp_types"] = tuple(types)
    if formats:
        out["ortb.imp_formats"] = tuple(formats[:MAX_ITEMS])
    first = imps[0]
    size = _size(first)
    if size is not None:
        out["ortb.imp_w"], out["ortb.imp_h"] = size
    if first.instl is not None:
        out["ortb.interstitial"] = first.instl == 1
    return out


class OrtbUserProvider(Provider[Any]):
    """The user identifiers of the OpenRTB bid request; personal: only with consent."""

    name = "ortb_user"
    personal = True
    inline = True
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


def _types(imp: Imp) -> Iterable[str]:
    if imp.banner is not None:
        yield "banner"
    if imp.video is not None:
        yield "video"
    if imp.native is not None:
        yield "native"
    if imp.audio is not None:
        yield "audio"


def _formats(imp: Imp) -> Iterable[str]:
    banner, video = imp.banner, imp.video
    if banner is not None:
        yield from _wxh(banner.w, banner.h)
        for allowed in banner.format[:MAX_ITEMS]:
            yield from _wxh(allowed.w, allowed.h)
    if video is not None:
        yield from _wxh(video.w, video.h)


def _size(imp: Imp) -> tuple[int, int] | None:
    banner, video = imp.banner, imp.video
    candidates: list[tuple[int | None, int | None]] = []
    if banner is not None:
        candidates.append((banner.w, banner.h))
        candidates.extend((f.w, f.h) for f in banner.format[:1])
    if video is not None:
        candidates.append((video.w, video.h))
    for w, h in candidates:
        if _dimension(w) and _dimension(h):
            assert w is not None and h is not None
            return w, h
    return None


def _wxh(w: int | None, h: int | None) -> Iterable[str]:
    if _dimension(w) and _dimension(h):
        yield f"{w}x{h}"


def _dimension(value: int | None) -> bool:
    return value is not None and 0 < value <= MAX_SIZE


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
