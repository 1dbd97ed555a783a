"""Generic JSON responses: slots addressed by a JSON path (``$.creative.headline``).

Which fields carry the ``ad.*`` signals and where trackers go is configuration
(:class:`JsonFields`), because every ad server names them its own way. A ``[*]`` step
addresses every element of a list: reading takes the first match, writing sets them all.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import msgspec

from slotwise.dsl.location import (
    JsonPathLocation,
    JsonStep,
    Location,
    Wildcard,
    parse_location,
)
from slotwise.proxy.adapters.base import AdapterError, Trackers
from slotwise.types import SignalValue

_decoder = msgspec.json.Decoder()
_encoder = msgspec.json.Encoder()


@dataclass(frozen=True, slots=True)
class JsonFields:
    """Where a generic JSON ad names its campaign, creative and placement, and its trackers.

    Each signal lists candidate paths; the first that holds a string or number wins.
    ``impression_trackers`` / ``click_trackers`` are paths of lists to append the proxy's pixel
    URLs to (created when the parent object exists); ``click_urls`` are paths of click-through
    URLs to wrap in the signed /_sw/click redirect.
    """

    campaign_id: tuple[JsonPathLocation, ...] = ()
    creative_id: tuple[JsonPathLocation, ...] = ()
    placement: tuple[JsonPathLocation, ...] = ()
    impression_trackers: tuple[JsonPathLocation, ...] = ()
    click_trackers: tuple[JsonPathLocation, ...] = ()
    click_urls: tuple[JsonPathLocation, ...] = ()

    @classmethod
    def from_strings(cls, **paths: Sequence[str]) -> JsonFields:
        """Build from path strings; raise ValueError naming a bad path."""
        parsed: dict[str, tuple[JsonPathLocation, ...]] = {}
        for key, texts in paths.items():
            locations = []
            for text in texts:
                location = parse_location(text)  # LocationError is a ValueError
                if not isinstance(location, JsonPathLocation):
                    raise ValueError(f"{key}: {text!r} is not a JSON path (start with '$')")
                locations.append(location)
            parsed[key] = tuple(locations)
        return cls(**parsed)


# the defaults of the adapters.json_* settings (slotwise.proxy.config reads them from here)
DEFAULT_JSON_PATHS: Final[Mapping[str, tuple[str, ...]]] = {
    "campaign_id": ("$.campaign_id", "$.campaign.id", "$.ad.campaign_id"),
    "creative_id": ("$.creative_id", "$.creative.id", "$.ad.creative_id"),
    "placement": ("$.placement", "$.placement_id", "$.ad.placement"),
    "impression_trackers": ("$.tracking.impressions", "$.impression_trackers"),
    "click_trackers": ("$.tracking.clicks", "$.click_trackers"),
    "click_urls": ("$.creative.click_url", "$.click_url"),
}
DEFAULT_JSON_FIELDS = JsonFields.from_strings(**DEFAULT_JSON_PATHS)


def decode(body: bytes) -> Any:
    """Parse JSON bytes; AdapterError when they are not JSON."""
    try:
        return _decoder.decode(body)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise AdapterError(f"not valid JSON: {exc}") from exc


def encode(value: Any) -> bytes:
    return _encoder.encode(value)


def find(document: Any, steps: Sequence[JsonStep]) -> list[tuple[Any, str | int]]:
    """Every (container, key) the steps lead to whose key exists."""
    if not steps:
        return []
    key = steps if type(steps) is tuple else tuple(steps)
    plan = _PLANS.get(key)
    if plan is None and key not in _PLANS:  # (None too for a path with [*])
        plan = _plan(key)
        if len(_PLANS) >= _PLANNED:
            _PLANS.clear()
        _PLANS[key] = plan
    if plan is None:
        found: list[tuple[Any, str | int]] = []
        _walk(document, steps, 0, found)
        return found
    parents, last = plan
    node = document
    # the common case, a path without [*]: a plain loop, no recursion
    for step in parents:
        if type(step) is str:
            if not isinstance(node, dict):
                return []
            node = node.get(step, _MISSING)
            if node is _MISSING:
                return []
        elif not isinstance(node, list) or step >= len(node):  # type: ignore[operator]
            return []
        else:
            node = node[step]  # type: ignore[index]
    if type(last) is str:
        if not isinstance(node, dict) or last not in node:
            return []
    elif not isinstance(node, list) or last >= len(node):  # type: ignore[operator]
        return []
    return [(node, last)]  # type: ignore[list-item]


# Final (as _PLANS): compiled, read as a constant, not looked up in the module's dict per find
_MISSING: Final[Any] = object()
# find's plans by path: a dict read, where an lru_cache call cost about 4 times as much (a
# dozen finds per response); the paths are configuration, so it rarely fills (then cleared)
_PLANS: Final[dict[tuple[JsonStep, ...], tuple[tuple[JsonStep, ...], JsonStep] | None]] = {}
_PLANNED: Final = 4096


def _plan(steps: tuple[JsonStep, ...]) -> tuple[tuple[JsonStep, ...], JsonStep] | None:
    """(parent steps, last step) of a path without ``[*]``; None for the others."""
    if any(isinstance(step, Wildcard) for step in steps):
        return None
    return steps[:-1], steps[-1]


def _walk(
    node: Any, steps: Sequence[JsonStep], at: int, found: list[tuple[Any, str | int]]
) -> None:
    step = steps[at]
    last = at == len(steps) - 1
    if isinstance(step, Wildcard):
        if isinstance(node, list):
            for index in range(len(node)):
                if last:
                    found.append((node, index))
                else:
                    _walk(node[index], steps, at + 1, found)
        return
    if isinstance(step, int):
        if not isinstance(node, list) or step >= len(node):
            return
    elif not isinstance(node, dict) or step not in node:
        return
    if last:
        found.append((node, step))
    else:
        _walk(node[step], steps, at + 1, found)


def read_text(document: Any, location: JsonPathLocation) -> str | None:
    for container, key in find(document, location.steps):
        value = container[key]
        if isinstance(value, str):
            return value
    return None


def write_text(document: Any, location: JsonPathLocation, value: str) -> bool:
    """Set every string the path leads to; False when it leads to none."""
    written = False
    for container, key in find(document, location.steps):
        if isinstance(container[key], str):
            container[key] = value
            written = True
    return written


def _scalar(document: Any, paths: Sequence[JsonPathLocation]) -> str | None:
    for path in paths:
        for container, key in find(document, path.steps):
            value = container[key]
            if isinstance(value, str) and value:
                return value
            if isinstance(value, int | float) and not isinstance(value, bool):
                return str(value)
    return None


def _append(document: Any, path: JsonPathLocation, url: str) -> bool:
    hits = find(document, path.steps)
    if hits:
        appended = False
        for container, key in hits:
            if isinstance(container[key], list):
                container[key].append(url)
                appended = True
        return appended
    # create the list when its parent object exists
    *parent_steps, leaf = path.steps
    if not isinstance(leaf, str):
        return False
    parents = [document] if not parent_steps else [c[k] for c, k in find(document, parent_steps)]
    created = False
    for parent in parents:
        if isinstance(parent, dict):
            parent[leaf] = [url]
            created = True
    return created


# per response: written out, as a generated __init__ with a default factory and a
# __post_init__ costs twice as much
@dataclass(slots=True, init=False)
class JsonUnit:
    """A whole generic JSON document as one ad unit (its signals read from ``fields``)."""

    document: Any
    fields: JsonFields
    signals: Mapping[str, SignalValue]

    def __init__(self, document: Any, fields: JsonFields) -> None:
        self.document = document
        self.fields = fields
        signals: dict[str, SignalValue] = {"ad.format": "json"}
        for name, paths in (
            ("ad.campaign_id", fields.campaign_id),
            ("ad.creative_id", fields.creative_id),
            ("ad.placement", fields.placement),
        ):
            value = _scalar(document, paths)
            if value is not None:
                signals[name] = value
        self.signals = signals

    def read(self, location: Location) -> str | None:
        if not isinstance(location, JsonPathLocation):
            return None
        return read_text(self.document, location)

    def write(self, location: Location, value: str) -> bool:
        if not isinstance(location, JsonPathLocation):
            return False
        return write_text(self.document, location, value)

    def track(self, trackers: Trackers) -> None:
        # the first configured path that exists (or can be created) gets the pixel
        for path in self.fields.impression_trackers:
            if _append(self.document, path, trackers.impression):
                break
        for path in self.fields.click_trackers:
            if _append(self.document, path, trackers.click):
                break
        for path in self.fields.click_urls:
            for container, key in find(self.document, path.steps):
                target = container[key]
                if isinstance(target, str) and target.startswith(("http://", "https://")):
                    container[key] = trackers.signer.redirect(trackers.decision_id, target)


@dataclass(slots=True, init=False)
class JsonDocument:
    """A generic JSON response: one unit, the whole document."""

    root: Any
    fields: JsonFields
    format: str
    units: Sequence[JsonUnit]

    def __init__(self, root: Any, fields: JsonFields) -> None:  # written out, as JsonUnit's
        self.root = root
        self.fields = fields
        self.format = "json"
        self.units = (JsonUnit(root, fields),) if type(root) is dict else ()

    def serialize(self) -> bytes:
        return encode(self.root)


def parse_json(body: bytes, fields: JsonFields = DEFAULT_JSON_FIELDS) -> JsonDocument:
    return JsonDocument(decode(body), fields)
