"""Slot locations: where in an upstream response a slot lives.

A policy names a slot's location as a string (``slot headline at "$.creative.headline"``). Three
forms exist, one per response format; the checker validates the string and the adapters read the
parsed form. The syntax:

- JSON path (generic JSON): ``$`` followed by steps ``.name``, ``["any key"]``, ``[3]`` or
  ``[*]`` (every element of a list, for reranking): ``$.creative.headline``,
  ``$.sections.for_you.items``, ``$.products[*].title``.
- OpenRTB Native 1.2 (the ``adm`` of a bid): ``native:title``, ``native:img:main``,
  ``native:img:icon`` (or the numeric image asset type, ``native:img:3``), ``native:data:ctatext``
  (any Native 1.2 data asset type name, or its number), ``native:video``, ``native:link``.
- VAST 4.x: ``vast:AdTitle``, ``vast:Description``, ``vast:MediaFile``, ``vast:ClickThrough``,
  ``vast:Companion`` (the companion's StaticResource).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Final

from slotwise.dsl.errors import POLICY
from slotwise.errors import SlotwiseError


class LocationError(SlotwiseError, ValueError):
    """A location string that does not follow the syntax above; the message says why."""

    area = POLICY
    code = "bad_location"

    def __init__(self, message: str, offset: int = 0) -> None:
        super().__init__(message)
        self.offset = offset  # character offset inside the location string


@dataclass(frozen=True, slots=True)
class Wildcard:
    """``[*]``: every element of a list."""


WILDCARD: Final = Wildcard()
JsonStep = str | int | Wildcard


# Locations compare (and hash) by what they address, not by how they were spelled:
# ``$.hero.title`` and ``$['hero']['title']`` are one place (slotwise.dsl.precedence).


@dataclass(frozen=True, slots=True)
class JsonPathLocation:
    steps: tuple[JsonStep, ...]
    text: str = field(compare=False)


@dataclass(frozen=True, slots=True)
class NativeLocation:
    asset: str  # "title" | "img" | "data" | "video" | "link"
    type: int | None  # the Native 1.2 image or data asset type, for img and data
    text: str = field(compare=False)


@dataclass(frozen=True, slots=True)
class VastLocation:
    element: str  # one of VAST_ELEMENTS
    text: str = field(compare=False)


Location = JsonPathLocation | NativeLocation | VastLocation

# Native 1.2, section 7.3 (image asset types) and 7.4 (data asset types).
NATIVE_IMAGE_TYPES: Final[dict[str, int]] = {"icon": 1, "main": 3}
NATIVE_DATA_TYPES: Final[dict[str, int]] = {
    "sponsored": 1,
    "desc": 2,
    "rating": 3,
    "likes": 4,
    "downloads": 5,
    "price": 6,
    "saleprice": 7,
    "phone": 8,
    "address": 9,
    "desc2": 10,
    "displayurl": 11,
    "ctatext": 12,
}
VAST_ELEMENTS: Final = ("AdTitle", "Description", "MediaFile", "ClickThrough", "Companion")

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
_INDEX = re.compile(r"\[(\d+)\]")
_QUOTED = re.compile(r"""\[(?:"((?:[^"\\]|\\.)*)"|'((?:[^'\\]|\\.)*)')\]""")


def parse_location(text: str) -> Location:
    """Parse a location string; raise LocationError naming the first problem."""
    if text.startswith("$"):
        return _parse_json_path(text)
    if text.startswith("native:"):
        return _parse_native(text)
    if text.startswith("vast:"):
        element = text[len("vast:") :]
        if element not in VAST_ELEMENTS:
            raise LocationError(
                f"unknown VAST element {element!r}; use one of {', '.join(VAST_ELEMENTS)}",
                len("vast:"),
            )
        return VastLocation(element, text)
    raise LocationError(
        "a location starts with '$' (a JSON path), 'native:' (OpenRTB Native) or 'vast:' (VAST)"
    )


def _parse_json_path(text: str) -> JsonPathLocation:
    steps: list[JsonStep] = []
    pos = 1
    while pos < len(text):
        if text[pos] == ".":
            match = _NAME.match(text, pos + 1)
            if match is None:
                raise LocationError("expected a field name after '.'", pos + 1)
            steps.append(match.group(0))
            pos = match.end()
        elif text.startswith("[*]", pos):
            steps.append(WILDCARD)
            pos += 3
        elif (index := _INDEX.match(text, pos)) is not None:
            steps.append(int(index.group(1)))
            pos = index.end()
        elif (quoted := _QUOTED.match(text, pos)) is not None:
            raw = quoted.group(1) if quoted.group(1) is not None else quoted.group(2)
            steps.append(re.sub(r"\\(.)", r"\1", raw))
            pos = quoted.end()
        else:
            raise LocationError(
                "expected '.name', '[index]', '[\"key\"]' or '[*]' in a JSON path", pos
            )
    if not steps:
        raise LocationError("a JSON path needs at least one step after '$', like '$.headline'", 1)
    if steps.count(WILDCARD) > 1:
        raise LocationError("a JSON path may hold at most one '[*]'", text.index("[*]"))
    return JsonPathLocation(tuple(steps), text)


def _parse_native(text: str) -> NativeLocation:
    parts = text.split(":")
    asset = parts[1] if len(parts) > 1 else ""
    offset = len("native:")
    if asset in ("title", "video", "link"):
        if len(parts) != 2:
            raise LocationError(f"native:{asset} takes no asset type", offset + len(asset))
        return NativeLocation(asset, None, text)
    if asset in ("img", "data"):
        table = NATIVE_IMAGE_TYPES if asset == "img" else NATIVE_DATA_TYPES
        if len(parts) != 3 or not parts[2]:
            raise LocationError(
                f"native:{asset} needs an asset type, like native:{asset}:{next(iter(table))}",
                offset + len(asset),
            )
        kind = parts[2]
        if kind.isdigit():
            return NativeLocation(asset, int(kind), text)
        if kind not in table:
            raise LocationError(
                f"unknown Native {asset} asset type {kind!r}; use one of {', '.join(table)} "
                "or a number",
                offset + len(asset) + 1,
            )
        return NativeLocation(asset, table[kind], text)
    raise LocationError(
        "a Native location is native:title, native:img:TYPE, native:data:TYPE, native:video "
        "or native:link",
        offset,
    )
