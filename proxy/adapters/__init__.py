"""Response adapters: find slots in real ad formats and rewrite them.

:func:`parse_response` picks the adapter from the content type and the body: OpenRTB bid
responses (JSON with ``seatbid``), other JSON (generic, JSON paths), VAST XML. It returns None
for bodies no adapter handles (they pass through untouched) and raises AdapterError for bodies
that claim a format and break it. It lives in slotwise.proxy.adapters.parse (a package's
``__init__`` is not compiled with the request path, slotwise/native.py).
"""

from __future__ import annotations

from slotwise.proxy.adapters.base import AdapterError, AdUnit, Document, Trackers
from slotwise.proxy.adapters.json import JsonFields
from slotwise.proxy.adapters.parse import is_json_type, is_xml_type, media_type, parse_response

__all__ = [
    "AdUnit",
    "AdapterError",
    "Document",
    "JsonFields",
    "Trackers",
    "is_json_type",
    "is_xml_type",
    "media_type",
    "parse_response",
]
