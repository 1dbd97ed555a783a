"""Log entries packed for Redis: raw DEFLATE with a preset dictionary, when that is smaller.

A log record is small (an event is about 200 bytes of JSON, a decision about 320 bytes in its
stored form) and most of it is the same field names and values in every record, which a
compressor only finds in a record this short when it is told them beforehand: a preset
dictionary of what records of slotwise's logs hold. With it an event takes about a third of
its bytes (docs/state.md, "Record formats"). The Redis store keeps a packed record in the
stream field ``z`` and any other in ``d`` (entries written before packing have ``d``), so
what is read back is always the bytes that were appended.

What deflate cannot shrink in a record this short is its random text: a UUID (an event id
and the visitor's anonymous id, as the browser SDK makes them) is 36 characters of which
each costs about a byte. :func:`pack_entry` first writes each UUID that is a whole JSON
string in its canonical lowercase text as a token, a byte that JSON in UTF-8 never holds
(0xFF) and the UUID's 16 bytes, then deflates: an SDK event (two UUIDs) takes about 17 bytes
less. The text comes back exactly, so the bytes read back are still the bytes appended.
Such an entry goes in field ``x``. (Times as 8-byte tokens were tried too: about 6 bytes less
an SDK event, 2 for one with a single time, but 9 more for an audit record, whose time the
dictionary matches, and a float's text checked per time: left out.)

:data:`DICTIONARY_1` is frozen: entries packed with it can only be read with it. A better
dictionary gets a new field name, and the reader keeps this one.
"""

from __future__ import annotations

import re
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


# A UUID that is a whole JSON string, in its canonical lowercase text (the pattern starts
# with a literal quote, which the regex engine scans for fast), and its token in a packed
# entry: 0xFF and the UUID's 16 bytes, where a token's bytes are never read as another's.
_UUID: Final = re.compile(rb'"([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})"')
_TOKENS: Final = re.compile(b"\xff(.{16})", re.DOTALL)
# the middle of a UUID: looked for first, a quarter of the cost of _UUID on a record without
# one (its literal, a hyphen, is rarer in records than _UUID's quote)
_UUID_HINT: Final = re.compile(rb"-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-")


def _uuid_token(found: re.Match[bytes]) -> bytes:
    return b'"\xff' + bytes.fromhex(found[1].replace(b"-", b"").decode()) + b'"'


def _uuid_text(found: re.Match[bytes]) -> bytes:
    h = found[1].hex().encode()
    return b"-".join((h[:8], h[8:12], h[12:16], h[16:20], h[20:]))


def pack_entry(data: bytes) -> tuple[bytes, bytes] | None:
    """The stream field and bytes for ``data``: ``x`` and its UUID tokens deflated when it
    holds a UUID, else ``z`` and :func:`pack`'s bytes; None when it stays as it is."""
    if len(data) < _MIN or data[:1] != b"{":
        return None
    tokens = data
    if b"\xff" not in data and _UUID_HINT.search(data):  # else a token could not be told apart
        tokens = _UUID.sub(_uuid_token, data)
    if tokens == data:
        packed = pack(data)
        return None if packed is None else (b"z", packed)
    compressor = _PRIMED.copy()
    packed = compressor.compress(tokens) + compressor.flush()
    return (b"x", packed) if len(packed) < len(data) else None


def unpack_tokens(packed: bytes) -> bytes:
    """The bytes :func:`pack_entry` was given for field ``x``; raises zlib.error for bytes it
    did not make."""
    return _TOKENS.sub(_uuid_text, unpack(packed))


def unpack(packed: bytes) -> bytes:
    """The bytes :func:`pack` was given; raises zlib.error for bytes it did not make."""
    decompressor = zlib.decompressobj(-15, DICTIONARY_1)
    data = decompressor.decompress(packed) + decompressor.flush()
    if not decompressor.eof:
        raise zlib.error("a packed log entry is cut short")
    return data
