"""Log entries packed for Redis: raw DEFLATE with a preset dictionary, when that is smaller.

A log record is small (an event is about 200 bytes of JSON, a decision about 320 bytes in its
stored form) and most of it is the same field names and values in every record, which a
compressor only finds in a record this short when it is told them beforehand: a preset
dictionary of what records of slotwise's logs hold. With it an event takes about a third of
its bytes (docs/state.md, "Record formats"). The Redis store keeps a packed record in the
stream field ``z`` and any other in ``d`` (entries written before packing have ``d``), so
what is read back is always the bytes that were appended.

:data:`DICTIONARY_1` is frozen: entries packed with it can only be read with it. A better
dictionary gets a new field name, and the reader keeps this one.
"""

from __future__ import annotations

import zlib
from typing import Final

# Fragments of the records the logs hold, the most frequent last (DEFLATE reaches back 32 KB
# and codes near matches shorter): decisions in their stored form (slotwise.proxy
# .decision_codec), audit records, then the events log's envelope and each event type.
DICTIONARY_1: Final = b"".join(
    (
        b"personalgrantedcontextualdefaultgpcmobiledesktoptabletbotiosandroidwindows",
        b"macoslinuxsafarichromefirefoxedgesamsungotherhomeproductcategorycartcheckout",
        b"searchmorningafternooneveningnightmontuewedthufrisatsunjsonopenrtbvastrules",
        b'{"action":"profile","subject_sha256":"","at":1796500000.0,"actor":"admin",',
        b'"keys":1,"events":0,"decisions":0,"repeat":false}',
        b'"properties":{"query":"","results":0}',
        b'"properties":{"referrer":"https://www.google.com/","landing_url":"https://',
        b'"utm_source":"newsletter","utm_medium":"email","utm_campaign":""}',
        b'"properties":{"product_id":"","old_price":0.0,"new_price":0.0,"currency":"EUR"}',
        b'"properties":{"value":0.0,"currency":"EUR","goal":"signup"}',
        b'"properties":{"order_id":"","items":[{"product_id":"","quantity":1,"price":',
        b'"category":""}],"value":,"currency":"EUR","offer_id":"","discount":,"shipping":',
        b'{"received":1796500000.0,"consent":"contextual","event":{"type":"session_start",',
        b'{"type":"remove_from_cart","type":"search","type":"price_check","type":"price_drop",',
        b'{"type":"conversion","type":"purchase","type":"click",',
        b'"properties":{"url":"https://","path":"/","referrer":"https://","title":"",',
        b'"page_type":"home","category":""}',
        b'"properties":{"campaign":"","slot":"","variant":"","url":"https://"}',
        b'"properties":{"product_id":"sku-","category":"","brand":"","price":,',
        b'"currency":"EUR","quantity":1}',
        b'{"received":1796500000.0,"consent":"personal","event":{"type":"add_to_cart",',
        b'{"type":"product_view","properties":{"product_id":"sku-","price":,"currency":"EUR"}',
        b'{"type":"impression","properties":{"campaign":"","slot":"","variant":""},',
        b'"id":"","user_id":"","anonymous_id":"","decision_id":"","time":1796500000.0}}',
        b'{"received":1796500000.0,"consent":"personal","event":{"type":"page_view",',
        b'"properties":{"url":"https://"},"id":"","user_id":"user-","time":1796500000.',
    )
)
_MIN: Final = 48  # shorter records hardly shrink; they stay as they are
# A compressor with the dictionary loaded, copied per record: a 4 KB window (the dictionary
# and a record fit) and a small hash table make the copy cheaper than loading the dictionary
# anew (about 4 us per event record against 6, on the shared machine of docs/benchmarks.md).
_PRIMED: Final = zlib.compressobj(1, zlib.DEFLATED, -12, 4, zlib.Z_DEFAULT_STRATEGY, DICTIONARY_1)


def pack(data: bytes) -> bytes | None:
    """``data`` deflated with the dictionary, or None when it stays as it is: a record that is
    no JSON object (binary records such as stored decisions are compact already, and the
    dictionary is JSON), a short one, or one the dictionary does not make smaller."""
    if len(data) < _MIN or data[:1] != b"{":
        return None
    compressor = _PRIMED.copy()
    packed = compressor.compress(data) + compressor.flush()
    return packed if len(packed) < len(data) else None


def unpack(packed: bytes) -> bytes:
    """The bytes :func:`pack` was given; raises zlib.error for bytes it did not make."""
    decompressor = zlib.decompressobj(-15, DICTIONARY_1)
    data = decompressor.decompress(packed) + decompressor.flush()
    if not decompressor.eof:
        raise zlib.error("a packed log entry is cut short")
    return data
