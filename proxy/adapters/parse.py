"""Which adapter parses an upstream answer: by its content type, then its body."""

from __future__ import annotations

from slotwise.proxy.adapters.base import Document
from slotwise.proxy.adapters.json import DEFAULT_JSON_FIELDS, JsonDocument, JsonFields, decode
from slotwise.proxy.adapters.openrtb import BidRequestView, BidResponseDocument
from slotwise.proxy.adapters.vast import VastDocument


def media_type(content_type: bytes | None) -> str:
    """``application/json`` from ``application/json; charset=utf-8`` (lower-cased)."""
    if not content_type:
        return ""
    return content_type.split(b";", 1)[0].strip().lower().decode("latin-1")


def is_json_type(media: str) -> bool:
    return media == "application/json" or media.endswith("+json") or media == "text/json"


def is_xml_type(media: str) -> bool:
    return media in ("application/xml", "text/xml") or media.endswith("+xml")


def is_bid_response(document: object) -> bool:
    """An OpenRTB bid response: a JSON object with a ``seatbid`` array."""
    return isinstance(document, dict) and isinstance(document.get("seatbid"), list)


def parse_response(
    content_type: bytes | None,
    body: bytes,
    request_body: bytes = b"",
    json_fields: JsonFields = DEFAULT_JSON_FIELDS,
) -> Document | None:
    """The parsed document, or None when no adapter handles this content type."""
    media = media_type(content_type)
    if is_json_type(media):
        root = decode(body)
        if is_bid_response(root):
            return BidResponseDocument(root, BidRequestView.parse(request_body))
        return JsonDocument(root, json_fields)
    if is_xml_type(media):
        return VastDocument(body)
    return None
