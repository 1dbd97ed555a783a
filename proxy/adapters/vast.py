"""VAST 2.0-4.x XML: slots in AdTitle, Description, MediaFile, ClickThrough and companions.

The document is never re-serialised from a tree: expat reports where each element of interest
starts and ends in the original bytes, and a rewrite splices new content into exactly those
spans. Everything else (declaration, namespaces, comments, whitespace, other ads) stays byte for
byte as the ad server wrote it, and the result is well-formed by construction (new text goes in
CDATA sections). Elements count in the VAST namespace (http://www.iab.com/VAST, VAST 4) or in
no namespace (VAST 2 and 3). A DOCTYPE is refused: ad markup never needs one, and entity tricks
are how XML parsers get attacked.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final
from xml.parsers import expat

from slotwise.dsl.location import Location, VastLocation
from slotwise.proxy.adapters.base import AdapterError, Trackers
from slotwise.types import SignalValue

VAST_NAMESPACE: Final = "http://www.iab.com/VAST"
_SEP: Final = "\x1f"
_ENCODING = re.compile(rb"""^\s*<\?xml[^>]*encoding\s*=\s*["']([A-Za-z0-9._-]+)["']""")
_WRITABLE_ENCODINGS: Final = frozenset({"utf-8", "utf8", "us-ascii", "ascii"})
_TRACKED: Final = frozenset(
    {
        "Ad",
        "InLine",
        "Wrapper",
        "AdTitle",
        "Description",
        "Impression",
        "Creative",
        "Linear",
        "MediaFile",
        "VideoClicks",
        "ClickThrough",
        "ClickTracking",
        "Companion",
        "StaticResource",
    }
)


@dataclass(slots=True)
class _Span:
    """Where an element sits in the bytes: its start tag and its content."""

    start: int  # '<' of the start tag
    content_start: int  # after the start tag's '>'
    content_end: int = -1  # '<' of the end tag (== content_start when self-closing)
    end: int = -1  # after the end tag's '>'
    self_closing: bool = False
    text: list[str] = field(default_factory=list)

    @property
    def value(self) -> str:
        return "".join(self.text).strip()


@dataclass(slots=True)
class VastAd:
    """One ``<Ad>``: its slots' spans, its tracker insertion points and its signals."""

    document: VastDocument
    ad_id: str | None
    signals: Mapping[str, SignalValue] = field(default_factory=dict)
    container: _Span | None = None  # InLine or Wrapper
    slots: dict[str, _Span] = field(default_factory=dict)  # first of each slot element
    last_impression: _Span | None = None
    video_clicks: _Span | None = None
    click_through: _Span | None = None
    last_click_tracking: _Span | None = None
    creative_id: str | None = None

    def read(self, location: Location) -> str | None:
        if not isinstance(location, VastLocation):
            return None
        span = self.slots.get(location.element)
        return span.value if span is not None else None

    def write(self, location: Location, value: str) -> bool:
        if not isinstance(location, VastLocation):
            return False
        span = self.slots.get(location.element)
        if span is None:
            return False
        self.document.replace_content(span, value)
        return True

    def track(self, trackers: Trackers) -> None:
        doc = self.document
        if self.last_impression is not None:
            doc.insert(self.last_impression.end, "Impression", trackers.impression)
        elif self.container is not None and not self.container.self_closing:
            doc.insert(self.container.content_end, "Impression", trackers.impression)
        clicks = self.video_clicks
        if clicks is None or clicks.self_closing:
            return
        anchor = self.last_click_tracking or self.click_through
        position = anchor.end if anchor is not None else clicks.content_end
        doc.insert(position, "ClickTracking", trackers.click)


class VastDocument:
    """A VAST document as bytes plus the edits to splice in."""

    format = "vast"

    def __init__(self, data: bytes) -> None:
        self.data = data
        self._edits: list[tuple[int, int, bytes]] = []
        self.units: list[VastAd] = []
        self._encoding = _declared_encoding(data)
        if self._encoding.startswith(("utf-16", "utf-32", "ucs")):
            raise AdapterError(f"VAST in {self._encoding} is not rewritten")
        self._scan()

    def serialize(self) -> bytes:
        if not self._edits:
            return self.data
        out: list[bytes] = []
        cursor = 0
        for start, end, replacement in sorted(self._edits, key=lambda e: (e[0], e[1])):
            if start < cursor:
                raise AdapterError("overlapping VAST edits")  # a bug, caught as a fail-open
            out += (self.data[cursor:start], replacement)
            cursor = end
        out.append(self.data[cursor:])
        return b"".join(out)

    def replace_content(self, span: _Span, value: str) -> None:
        content = self._text(value)
        if span.self_closing:
            tag = self.data[span.start : span.content_start]  # b"<X attrs/>"
            name = re.match(rb"<([^\s/>]+)", tag)
            assert name is not None
            opening = tag[:-2].rstrip() + b">"
            self._edits.append(
                (span.start, span.content_start, opening + content + b"</" + name[1] + b">")
            )
        else:
            self._edits.append((span.content_start, span.content_end, content))

    def insert(self, position: int, element: str, url: str) -> None:
        tag = element.encode()
        self._edits.append(
            (position, position, b"<" + tag + b">" + self._text(url) + b"</" + tag + b">")
        )

    def _text(self, value: str) -> bytes:
        if self._encoding in _WRITABLE_ENCODINGS:
            # CDATA cannot hold "]]>": split it across two sections
            return b"<![CDATA[" + value.replace("]]>", "]]]]><![CDATA[>").encode() + b"]]>"
        escaped = value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        return escaped.encode(self._encoding, errors="xmlcharrefreplace")

    def _scan(self) -> None:
        data = self.data
        parser = expat.ParserCreate(namespace_separator=_SEP)
        stack: list[tuple[str, _Span | None]] = []
        ad: VastAd | None = None
        root_seen = False

        def start(name: str, attrs: dict[str, str]) -> None:
            nonlocal ad, root_seen
            tag = _local(name)
            if not root_seen:
                root_seen = True
                if tag != "VAST":
                    raise AdapterError("the root element is not VAST")
            if tag not in _TRACKED:
                stack.append((name, None))
                return
            begin = parser.CurrentByteIndex
            close = _tag_end(data, begin)
            span = _Span(begin, close, self_closing=data[close - 2 : close] == b"/>")
            if span.self_closing:
                span.content_end = span.end = close
            stack.append((name, span))
            if tag == "Ad":
                ad = VastAd(self, attrs.get("id"))
                self.units.append(ad)
            elif ad is not None:
                self._note(ad, tag, span, attrs, [t for t, _ in stack])

        def end(name: str) -> None:
            _, span = stack.pop()
            if span is not None and not span.self_closing:
                span.content_end = parser.CurrentByteIndex
                span.end = _tag_end(data, span.content_end)

        def text(chunk: str) -> None:
            if stack and stack[-1][1] is not None:
                span = stack[-1][1]
                assert span is not None
                span.text.append(chunk)

        parser.StartElementHandler = start
        parser.EndElementHandler = end
        parser.CharacterDataHandler = text
        parser.StartDoctypeDeclHandler = _refuse_doctype
        parser.EntityDeclHandler = _refuse_doctype
        try:
            parser.Parse(data, True)
        except expat.ExpatError as exc:
            raise AdapterError(f"not well-formed XML: {exc}") from exc
        if not root_seen:
            raise AdapterError("no VAST element")
        for unit in self.units:
            unit.signals = _signals_of(unit)

    @staticmethod
    def _note(ad: VastAd, tag: str, span: _Span, attrs: Mapping[str, str], path: list[str]) -> None:
        names = [p.rpartition(_SEP)[2] for p in path]
        if tag in ("InLine", "Wrapper"):
            ad.container = ad.container or span
        elif tag in ("AdTitle", "Description") and names[-2] in ("InLine", "Wrapper"):
            ad.slots.setdefault(tag, span)
        elif tag == "Impression" and names[-2] in ("InLine", "Wrapper"):
            ad.last_impression = span
        elif tag == "Creative":
            ad.creative_id = ad.creative_id or attrs.get("id") or attrs.get("adId")
        elif tag == "MediaFile" and "Linear" in names:
            ad.slots.setdefault("MediaFile", span)
        elif tag == "VideoClicks" and "Linear" in names:
            ad.video_clicks = ad.video_clicks or span
        elif tag == "ClickThrough" and names[-2] == "VideoClicks":
            if ad.video_clicks is not None and ad.click_through is None:
                ad.click_through = span
                ad.slots.setdefault("ClickThrough", span)
        elif tag == "ClickTracking" and names[-2] == "VideoClicks":
            if ad.video_clicks is not None and ad.video_clicks.end < 0:
                ad.last_click_tracking = span
        elif tag == "StaticResource" and "Companion" in names:
            ad.slots.setdefault("Companion", span)


def _local(name: str) -> str | None:
    """The element's name in the VAST namespace (or none); None for another namespace."""
    namespace, _, tag = name.rpartition(_SEP)
    return tag if namespace in ("", VAST_NAMESPACE) else None


def _refuse_doctype(*_: object) -> None:
    raise AdapterError("VAST with a DOCTYPE is refused")


def _signals_of(unit: VastAd) -> dict[str, SignalValue]:
    signals: dict[str, SignalValue] = {"ad.format": "vast"}
    if unit.ad_id:
        signals["ad.campaign_id"] = unit.ad_id
    if unit.creative_id:
        signals["ad.creative_id"] = unit.creative_id
    return signals


def _tag_end(data: bytes, begin: int) -> int:
    """The index after the '>' closing the tag that starts at ``begin`` (quotes respected)."""
    quote = 0
    for index in range(begin + 1, len(data)):
        char = data[index]
        if quote:
            if char == quote:
                quote = 0
        elif char in (0x22, 0x27):  # " or '
            quote = char
        elif char == 0x3E:  # >
            return index + 1
    raise AdapterError("unterminated tag")


def _declared_encoding(data: bytes) -> str:
    match = _ENCODING.match(data)
    return match.group(1).decode("ascii").lower() if match else "utf-8"


def parse_vast(data: bytes) -> VastDocument:
    """Parse VAST bytes; AdapterError when they are not a well-formed VAST document."""
    return VastDocument(data)
