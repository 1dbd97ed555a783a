"""The OpenRTB 2.x bid request as providers read it: :class:`BidRequest`, :func:`decode`.

When the proxy answers an ad exchange, what the user's device, place, page and consent are is
in the bid request the exchange POSTs, not in the exchange's own HTTP request. This module
decodes such a body once, into typed, frozen structs holding only the fields slotwise reads
(OpenRTB 2.6, section 3.2; the 2.5 ``ext`` homes of the privacy fields as well), and nothing
else: user data segments, extended ids and the like are never decoded.

Decoding is lenient the way exchanges need it: numbers sent as strings are taken (``"gdpr":
"1"``), and a field of the wrong type costs that field only, not the request (``decode``
reports it as ``invalid``). A body that is not a JSON object with an ``imp`` array is not a bid
request (``None``, without a JSON parse when ``"imp"`` does not occur in it at all).
"""

from __future__ import annotations

from typing import Any, Final, Literal, TypeVar, get_args, get_origin

import msgspec

# Every field of every struct is optional: exchanges omit what they do not know.


class Format(msgspec.Struct, frozen=True):
    """A banner size the impression allows (``imp.banner.format[]``)."""

    w: int | None = None
    h: int | None = None


class Banner(msgspec.Struct, frozen=True):
    """``imp.banner``: its size and the other sizes allowed."""

    w: int | None = None
    h: int | None = None
    format: tuple[Format, ...] = ()


class Video(msgspec.Struct, frozen=True):
    """``imp.video``: the player size."""

    w: int | None = None
    h: int | None = None


class Audio(msgspec.Struct, frozen=True):
    """``imp.audio`` (slotwise reads only that the impression takes audio)."""


class Native(msgspec.Struct, frozen=True):
    """``imp.native`` (slotwise reads only that the impression takes native ads)."""


class Imp(msgspec.Struct, frozen=True):
    """One impression on offer."""

    id: str | None = None
    tagid: str | None = None
    instl: int | None = None
    banner: Banner | None = None
    video: Video | None = None
    audio: Audio | None = None
    native: Native | None = None


class Publisher(msgspec.Struct, frozen=True):
    """``site.publisher`` / ``app.publisher``."""

    id: str | None = None
    domain: str | None = None


class Site(msgspec.Struct, frozen=True):
    """``site``: the page the ad is for."""

    domain: str | None = None
    page: str | None = None
    ref: str | None = None
    cat: tuple[str, ...] = ()
    publisher: Publisher | None = None


class App(msgspec.Struct, frozen=True):
    """``app``: the app the ad is for."""

    bundle: str | None = None
    domain: str | None = None
    cat: tuple[str, ...] = ()
    publisher: Publisher | None = None


class Dooh(msgspec.Struct, frozen=True):
    """``dooh`` (2.6): a digital out-of-home screen (slotwise reads only that it is one)."""


class Geo(msgspec.Struct, frozen=True):
    """``device.geo``: where the device is. ``country`` is ISO 3166-1 alpha-3."""

    lat: float | None = None
    lon: float | None = None
    country: str | None = None
    region: str | None = None
    city: str | None = None


class BrandVersion(msgspec.Struct, frozen=True):
    """A brand and its version parts in a structured user agent."""

    brand: str | None = None
    version: tuple[str, ...] = ()


class UserAgent(msgspec.Struct, frozen=True):
    """``device.sua`` (2.6): the structured user agent, from User-Agent Client Hints."""

    browsers: tuple[BrandVersion, ...] = ()
    platform: BrandVersion | None = None
    mobile: int | None = None


class Device(msgspec.Struct, frozen=True):
    """``device``: what the ad will show on. ``ifa`` is an identifier (see ``without_ids``)."""

    ua: str | None = None
    sua: UserAgent | None = None
    devicetype: int | None = None
    os: str | None = None
    language: str | None = None
    ip: str | None = None
    ipv6: str | None = None
    geo: Geo | None = None
    ifa: str | None = None
    lmt: int | None = None


class UserExt(msgspec.Struct, frozen=True):
    """``user.ext``: where OpenRTB 2.5 exchanges put the TC string."""

    consent: str | None = None


class User(msgspec.Struct, frozen=True):
    """``user``: who the ad is for. ``id`` and ``buyeruid`` are identifiers."""

    id: str | None = None
    buyeruid: str | None = None
    consent: str | None = None
    ext: UserExt | None = None


class RegsExt(msgspec.Struct, frozen=True):
    """``regs.ext``: where OpenRTB 2.5 exchanges put the privacy signals."""

    gdpr: int | None = None
    us_privacy: str | None = None
    gpp: str | None = None
    gpp_sid: tuple[int, ...] | None = None


class Regs(msgspec.Struct, frozen=True):
    """``regs``: the privacy regulations in force and their signals."""

    coppa: int | None = None
    gdpr: int | None = None
    us_privacy: str | None = None
    gpp: str | None = None
    gpp_sid: tuple[int, ...] | None = None
    ext: RegsExt | None = None


class BidRequest(msgspec.Struct, frozen=True):
    """An OpenRTB 2.x bid request: the fields slotwise reads, read-only.

    The properties read each privacy signal where OpenRTB 2.6 puts it, else where 2.5
    exchanges put it (``regs.ext``, ``user.ext``).
    """

    imp: tuple[Imp, ...] = ()
    site: Site | None = None
    app: App | None = None
    dooh: Dooh | None = None
    device: Device | None = None
    user: User | None = None
    regs: Regs | None = None

    @property
    def gdpr(self) -> int | None:
        """``regs.gdpr``: 1 when GDPR applies, 0 when not, None when unknown."""
        regs = self.regs
        if regs is None:
            return None
        if regs.gdpr is not None:
            return regs.gdpr
        return regs.ext.gdpr if regs.ext is not None else None

    @property
    def tc_string(self) -> str | None:
        """``user.consent``: the TCF v2 TC string, when there is one."""
        user = self.user
        if user is None:
            return None
        if user.consent:
            return user.consent
        return user.ext.consent if user.ext is not None and user.ext.consent else None

    @property
    def gpp(self) -> str | None:
        """``regs.gpp``: the IAB GPP string, when there is one."""
        regs = self.regs
        if regs is None:
            return None
        if regs.gpp:
            return regs.gpp
        return regs.ext.gpp if regs.ext is not None and regs.ext.gpp else None

    @property
    def gpp_sid(self) -> tuple[int, ...] | None:
        """``regs.gpp_sid``: the GPP sections in force for this request (None: not said)."""
        regs = self.regs
        if regs is None:
            return None
        if regs.gpp_sid is not None:
            return regs.gpp_sid
        return regs.ext.gpp_sid if regs.ext is not None else None

    @property
    def us_privacy(self) -> str | None:
        """``regs.us_privacy``: the CCPA US Privacy string (``1YNN``), when there is one."""
        regs = self.regs
        if regs is None:
            return None
        if regs.us_privacy:
            return regs.us_privacy
        return regs.ext.us_privacy if regs.ext is not None and regs.ext.us_privacy else None

    @property
    def coppa(self) -> bool:
        """``regs.coppa``: the request is subject to COPPA (directed to children)."""
        return self.regs is not None and self.regs.coppa == 1

    def without_ids(self) -> BidRequest:
        """This request without its user identifiers (``user.id``, ``user.buyeruid``,
        ``device.ifa``): what a provider sees without personal consent. Consent strings stay.
        """
        user, device = self.user, self.device
        if user is not None and (user.id is not None or user.buyeruid is not None):
            user = msgspec.structs.replace(user, id=None, buyeruid=None)
        if device is not None and device.ifa is not None:
            device = msgspec.structs.replace(device, ifa=None)
        if user is self.user and device is self.device:
            return self
        return msgspec.structs.replace(self, user=user, device=device)


Problem = Literal["malformed", "invalid"]


class Decoded(msgspec.Struct, frozen=True):
    """What :func:`decode` found: the bid request (None: the body is not one) and, when the
    body was not a clean bid request, why: ``malformed`` (it names ``imp`` but is not a JSON
    object), ``invalid`` (some fields had the wrong type and were left out)."""

    bid_request: BidRequest | None
    problem: Problem | None = None


NOT_A_BID_REQUEST: Final = Decoded(None)
_DECODER = msgspec.json.Decoder(BidRequest, strict=False)
_ANY_DECODER = msgspec.json.Decoder()
S = TypeVar("S", bound=msgspec.Struct)


def decode(body: bytes) -> Decoded:
    """The bid request in a request ``body``, decoded once; never raises.

    Cheap for bodies that are not bid requests: those that do not start with ``{`` or do not
    contain ``"imp"`` are not parsed at all.
    """
    if b'"imp"' not in body or body.lstrip()[:1] != b"{":
        return NOT_A_BID_REQUEST
    try:
        request = _DECODER.decode(body)
    except msgspec.ValidationError:
        return _salvaged(body)
    except msgspec.DecodeError:
        return Decoded(None, "malformed")
    return Decoded(request) if _has_imps(request) else NOT_A_BID_REQUEST


def _has_imps(request: BidRequest) -> bool:
    # "imp" may occur anywhere in the text; a bid request has it at the top, with an impression
    return bool(request.imp)


def _salvaged(body: bytes) -> Decoded:
    """A body that is JSON but has wrongly typed fields: keep every field that converts."""
    try:
        raw = _ANY_DECODER.decode(body)
    except msgspec.DecodeError:  # pragma: no cover - the typed decode parsed it already
        return Decoded(None, "malformed")
    if not isinstance(raw, dict) or not isinstance(raw.get("imp"), list):
        return NOT_A_BID_REQUEST
    request = _salvage(raw, BidRequest)
    if request is None or not _has_imps(request):
        return NOT_A_BID_REQUEST
    return Decoded(request, "invalid")


def _salvage(raw: object, kind: type[S]) -> S | None:
    """``raw`` as a ``kind``, leaving out the fields that do not convert (recursively)."""
    if not isinstance(raw, dict):
        return None
    kept: dict[str, Any] = {}
    for info in msgspec.structs.fields(kind):
        if info.encode_name not in raw:
            continue
        value = raw[info.encode_name]
        try:
            kept[info.name] = msgspec.convert(value, info.type, strict=False)
            continue
        except msgspec.ValidationError:
            pass
        inner = _struct_in(info.type)
        if inner is None:
            continue
        if _is_sequence(info.type):
            if isinstance(value, list):
                items = (_salvage(item, inner) for item in value)
                kept[info.name] = tuple(item for item in items if item is not None)
            continue
        salvaged = _salvage(value, inner)
        if salvaged is not None:
            kept[info.name] = salvaged
    return kind(**kept)


def _struct_in(annotation: object) -> type[msgspec.Struct] | None:
    """The struct type in ``X | None`` or ``tuple[X, ...]``, if there is one."""
    for arg in (annotation, *get_args(annotation)):
        if isinstance(arg, type) and issubclass(arg, msgspec.Struct):
            return arg
    return None


def _is_sequence(annotation: object) -> bool:
    return get_origin(annotation) is tuple
