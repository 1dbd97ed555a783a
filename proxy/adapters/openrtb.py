"""OpenRTB 2.x bid responses: one ad unit per ``seatbid[].bid[]``.

A bid's ``adm`` holds its markup: Native 1.2 (a JSON string, or an object as some exchanges
send; bare or wrapped in ``{"native": ...}``), or VAST XML. ``native:`` locations address the
native markup, ``vast:`` locations the VAST markup. Signals: ``ad.campaign_id`` = ``bid.cid``,
``ad.creative_id`` = ``bid.crid``, ``ad.placement`` = the request impression's ``tagid`` when
the proxy saw the bid request (else ``bid.impid``). A bid without ``adm`` (ad served on the win
notice) has no slots.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from slotwise.dsl.location import Location, NativeLocation, VastLocation
from slotwise.proxy.adapters.base import AdapterError, Trackers
from slotwise.proxy.adapters.json import decode, encode
from slotwise.proxy.adapters.native import NativeMarkup, request_asset_types
from slotwise.proxy.adapters.vast import VastDocument
from slotwise.types import SignalValue


@dataclass(frozen=True, slots=True)
class BidRequestView:
    """What the adapter uses from the bid request: tag ids and native asset types per imp."""

    tagids: Mapping[str, str] = field(default_factory=dict)
    asset_types: Mapping[str, Mapping[int, int]] = field(default_factory=dict)

    @classmethod
    def parse(cls, body: bytes) -> BidRequestView:
        """Read an OpenRTB bid request (or a bare native request); empty when it is neither."""
        if not body or body.lstrip()[:1] != b"{":
            return cls()
        try:
            request = decode(body)
        except AdapterError:
            return cls()
        if not isinstance(request, dict):
            return cls()
        if "imp" not in request:  # a bare native request: its assets apply to every bid
            types = request_asset_types(request)
            return cls(asset_types={"*": types}) if types else cls()
        tagids: dict[str, str] = {}
        asset_types: dict[str, Mapping[int, int]] = {}
        for imp in request.get("imp") or ():
            if not isinstance(imp, dict) or not isinstance(imp.get("id"), str):
                continue
            if isinstance(imp.get("tagid"), str):
                tagids[imp["id"]] = imp["tagid"]
            native = imp.get("native")
            if isinstance(native, dict) and "request" in native:
                asset_types[imp["id"]] = request_asset_types(native["request"])
        return cls(tagids, asset_types)


class BidUnit:
    """One bid and its markup."""

    __slots__ = ("bid", "signals", "native", "vast", "_adm_is_string", "_vast_wrapped")

    def __init__(self, bid: dict[str, Any], request: BidRequestView) -> None:
        self.bid = bid
        self.native: NativeMarkup | None = None
        self.vast: VastDocument | None = None
        self._adm_is_string = True
        impid = bid.get("impid")
        signals: dict[str, SignalValue] = {"ad.format": "openrtb"}
        for name, key in (("ad.campaign_id", "cid"), ("ad.creative_id", "crid")):
            value = bid.get(key)
            if isinstance(value, str) and value:
                signals[name] = value
        if isinstance(impid, str):
            signals["ad.placement"] = request.tagids.get(impid, impid)
        self.signals: Mapping[str, SignalValue] = signals
        adm = bid.get("adm")
        if isinstance(adm, dict) and NativeMarkup.looks_native(adm):
            self._adm_is_string = False
            self.native = NativeMarkup(adm, _types_for(request, impid))
        elif isinstance(adm, str):
            head = adm.lstrip()[:1]
            if head == "{":
                try:
                    parsed = decode(adm.encode())
                except AdapterError:
                    parsed = None  # not JSON after all: no native slots in this bid
                if NativeMarkup.looks_native(parsed):
                    self.native = NativeMarkup(parsed, _types_for(request, impid))
            elif head == "<" and "VAST" in adm[:512]:
                try:
                    self.vast = VastDocument(adm.encode())
                except AdapterError:
                    self.vast = None

    def read(self, location: Location) -> str | None:
        if isinstance(location, NativeLocation) and self.native is not None:
            return self.native.read(location)
        if isinstance(location, VastLocation) and self.vast is not None:
            return self.vast.units[0].read(location) if self.vast.units else None
        return None

    def write(self, location: Location, value: str) -> bool:
        if isinstance(location, NativeLocation) and self.native is not None:
            return self.native.write(location, value)
        if isinstance(location, VastLocation) and self.vast is not None and self.vast.units:
            return self.vast.units[0].write(location, value)
        return False

    def track(self, trackers: Trackers) -> None:
        if self.native is not None:
            self.native.track(trackers)
        if self.vast is not None:
            for ad in self.vast.units:
                ad.track(trackers)

    def flush(self) -> None:
        """Write the (possibly rewritten) markup back into ``adm``."""
        if self.native is not None:
            root = self.native.root
            self.bid["adm"] = encode(root).decode() if self._adm_is_string else root
        elif self.vast is not None:
            self.bid["adm"] = self.vast.serialize().decode()


def _types_for(request: BidRequestView, impid: object) -> Mapping[int, int]:
    if isinstance(impid, str) and impid in request.asset_types:
        return request.asset_types[impid]
    return request.asset_types.get("*", {})


class BidResponseDocument:
    """A parsed bid response; ``units`` are its bids in order."""

    format = "openrtb"

    def __init__(self, root: dict[str, Any], request: BidRequestView) -> None:
        self.root = root
        units: list[BidUnit] = []
        for seatbid in root.get("seatbid") or ():
            if not isinstance(seatbid, dict):
                continue
            for bid in seatbid.get("bid") or ():
                if isinstance(bid, dict):
                    units.append(BidUnit(bid, request))
        self.units: Sequence[BidUnit] = units

    def serialize(self) -> bytes:
        for unit in self.units:
            unit.flush()
        return encode(self.root)
