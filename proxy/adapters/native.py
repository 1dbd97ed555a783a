"""OpenRTB Dynamic Native Ads 1.2 markup: the ``adm`` of a native bid.

The markup may be the bare native response object or wrapped as ``{"native": {...}}`` (1.0
style). Slots: ``native:title`` (title.text), ``native:img:TYPE`` (img.url),
``native:data:TYPE`` (data.value), ``native:video`` (video.vasttag), ``native:link``
(link.url). Responses often omit an asset's image or data type, because the request's asset of
the same id defines it; the adapter takes those types from the native request when the proxy
saw it (see :func:`request_asset_types`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from slotwise.dsl.location import Location, NativeLocation
from slotwise.proxy.adapters.base import Trackers

# Native 1.2 section 7.6 / 7.7: event 1 = impression, method 1 = image pixel
_EVENT_IMPRESSION = 1
_METHOD_IMAGE = 1


class NativeMarkup:
    """A parsed native response object, read and rewritten in place."""

    __slots__ = ("root", "native", "_types")

    def __init__(self, root: dict[str, Any], asset_types: Mapping[int, int]) -> None:
        self.root = root
        inner = root.get("native")
        self.native: dict[str, Any] = inner if isinstance(inner, dict) else root
        self._types = asset_types

    @staticmethod
    def looks_native(value: object) -> bool:
        """Whether a parsed adm is native markup (a native object or its wrapper)."""
        if not isinstance(value, dict):
            return False
        inner = value.get("native", value)
        return isinstance(inner, dict) and (
            isinstance(inner.get("assets"), list) or "assetsurl" in inner or "link" in inner
        )

    def read(self, location: Location) -> str | None:
        hit = self._find(location)
        if hit is None:
            return None
        container, key = hit
        return str(container[key])

    def write(self, location: Location, value: str) -> bool:
        hit = self._find(location)
        if hit is None:
            return False
        container, key = hit
        container[key] = value
        return True

    def track(self, trackers: Trackers) -> None:
        native = self.native
        added = False
        if isinstance(native.get("eventtrackers"), list):
            native["eventtrackers"].append(
                {"event": _EVENT_IMPRESSION, "method": _METHOD_IMAGE, "url": trackers.impression}
            )
            added = True
        if isinstance(native.get("imptrackers"), list):
            native["imptrackers"].append(trackers.impression)
            added = True
        if not added:
            version = str(native.get("ver", "1.2"))
            if version.startswith(("1.0", "1.1")):
                native["imptrackers"] = [trackers.impression]
            else:
                native["eventtrackers"] = [
                    {
                        "event": _EVENT_IMPRESSION,
                        "method": _METHOD_IMAGE,
                        "url": trackers.impression,
                    }
                ]
        link = native.get("link")
        if isinstance(link, dict):
            clicks = link.get("clicktrackers")
            if isinstance(clicks, list):
                clicks.append(trackers.click)
            else:
                link["clicktrackers"] = [trackers.click]

    def _find(self, location: Location) -> tuple[dict[str, Any], str] | None:
        if not isinstance(location, NativeLocation):
            return None
        if location.asset == "link":
            link = self.native.get("link")
            if isinstance(link, dict) and isinstance(link.get("url"), str):
                return link, "url"
            return None
        field = {"title": "text", "img": "url", "data": "value", "video": "vasttag"}[location.asset]
        assets = self.native.get("assets")
        if not isinstance(assets, list):
            return None
        for asset in assets:
            if not isinstance(asset, dict):
                continue
            part = asset.get(location.asset)
            if not isinstance(part, dict) or not isinstance(part.get(field), str | int | float):
                continue
            if location.type is not None and self._type_of(asset, part) != location.type:
                continue
            return part, field
        return None

    def _type_of(self, asset: Mapping[str, Any], part: Mapping[str, Any]) -> int | None:
        declared = part.get("type")
        if isinstance(declared, int):
            return declared
        asset_id = asset.get("id")
        return self._types.get(asset_id) if isinstance(asset_id, int) else None


def request_asset_types(native_request: object) -> dict[int, int]:
    """Asset id -> image/data type from a native request (object, wrapper or JSON string)."""
    import msgspec

    if isinstance(native_request, str | bytes):
        try:
            native_request = msgspec.json.decode(native_request)
        except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
            return {}
    if not isinstance(native_request, dict):
        return {}
    inner = native_request.get("native", native_request)
    assets = inner.get("assets") if isinstance(inner, dict) else None
    types: dict[int, int] = {}
    for asset in assets if isinstance(assets, list) else ():
        if not isinstance(asset, dict) or not isinstance(asset.get("id"), int):
            continue
        for kind in ("img", "data"):
            part = asset.get(kind)
            if isinstance(part, dict) and isinstance(part.get("type"), int):
                types[asset["id"]] = part["type"]
    return types
