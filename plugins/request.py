"""What a provider sees of one request: :class:`RequestInfo`, and the parser that builds it.

The proxy builds one ``RequestInfo`` per request (``RequestInfo.from_scope`` for ASGI) and hands
it to :func:`slotwise.plugins.gather.gather`. It is immutable and already parsed (lower-cased
header names, decoded query and cookies), so that providers never parse the same bytes twice;
the OpenRTB bid request a POST body carries is decoded on first use, once for every provider
(:attr:`RequestInfo.bid_request`). Without personal consent, providers receive
:meth:`RequestInfo.without_identifiers`: no user id, no cookies, no body, a bid request without
its user identifiers.

The classes live in :mod:`slotwise.plugins.request_info` (msgspec misreads a Struct class that
mypyc compiled) and are re-exported here; the parsing below stays compiled.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Any, Final
from urllib.parse import parse_qsl

from slotwise.plugins.bid_request import BidRequest
from slotwise.plugins.request_info import NO_BODY, RequestBody, RequestInfo
from slotwise.types import Signals

_EMPTY: Final[Signals] = MappingProxyType({})


def build_request_info(
    cls: type[RequestInfo],
    method: str,
    path: str,
    *,
    query_string: str | bytes = "",
    headers: Iterable[tuple[str | bytes, str | bytes]] = (),
    client_ip: str | None = None,
    user_id: str | None = None,
    received_at: float | None = None,
    body: bytes = b"",
    user_cookie: str | None = None,
) -> RequestInfo:
    """:meth:`RequestInfo.build`, compiled (its documentation says what each part means)."""
    merged: dict[str, str] = {}
    names = _NAMES
    for raw_name, raw_value in headers:
        name = names.get(raw_name) if type(raw_name) is bytes else None
        if name is None:
            name = _name(raw_name)
        value = raw_value.decode("latin-1") if type(raw_value) is bytes else _text(raw_value)
        merged[name] = f"{merged[name]}, {value}" if name in merged else value
    query: dict[str, str] = {}
    if query_string:  # most ad requests have none: skip the parser
        for key, value in parse_qsl(_text(query_string), keep_blank_values=True):
            query.setdefault(key, value)
    cookie = merged.get("cookie")
    cookies = parse_cookie_header(cookie) if cookie else {}
    if user_id is None and user_cookie is not None and cookies:
        user_id = cookies.get(user_cookie) or None
    method = method.upper()
    return cls(
        method,
        path,
        query,
        merged,
        client_ip,
        cookies,
        user_id,
        time.time() if received_at is None else received_at,
        _EMPTY,
        RequestBody(body, post=method == "POST") if body else NO_BODY,
    )


def request_info_from_scope(
    cls: type[RequestInfo],
    scope: Mapping[str, Any],
    *,
    user_id: str | None = None,
    received_at: float | None = None,
    client_ip: str | None = None,
    body: bytes = b"",
    user_cookie: str | None = None,
) -> RequestInfo:
    """:meth:`RequestInfo.from_scope`, compiled (the proxy calls it directly)."""
    client = scope.get("client")
    if client_ip is None and client:
        client_ip = str(client[0])
    return build_request_info(
        cls,
        str(scope.get("method", "GET")),
        str(scope.get("path", "/")),
        query_string=scope.get("query_string", b""),
        headers=scope.get("headers", ()),
        client_ip=client_ip,
        user_id=user_id,
        received_at=received_at,
        body=body,
        user_cookie=user_cookie,
    )


def parse_cookie_header(header: str) -> dict[str, str]:
    """Parse a ``Cookie`` header leniently: bad pairs are skipped, the first value wins.

    ``http.cookies.SimpleCookie`` rejects a whole header over one odd cookie set by some other
    script on the site; browsers do not, so neither do we.
    """
    cookies: dict[str, str] = {}
    for part in header.split(";"):
        name, sep, value = part.partition("=")
        name = name.strip()
        if not sep or not name:
            continue
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1]
        cookies.setdefault(name, value)
    return cookies


# header names as bytes -> their lower-case text: the same few names come on every request
_NAMES: Final[dict[bytes, str]] = {}


def bid_request_of(request: RequestInfo) -> BidRequest | None:
    """``request.bid_request`` for compiled callers: the built-in providers read it on every
    request, and the property is a Python call (most requests carry no body at all)."""
    body = request.body
    return None if body is NO_BODY else body.bid_request


def headers_of(request: RequestInfo) -> dict[str, str]:
    """``request.headers`` typed as the dict the parser builds, for compiled callers: a
    ``Mapping``'s ``get`` is a Python method call from compiled code, a dict's is not (a
    request built with another mapping is copied)."""
    headers = request.headers
    return headers if type(headers) is dict else dict(headers)


def _name(raw: str | bytes) -> str:
    name = _text(raw).lower()
    if type(raw) is bytes and len(raw) <= 64:  # bounded: any name may come
        if len(_NAMES) >= 512:
            _NAMES.clear()
        _NAMES[raw] = name
    return name


def _text(value: str | bytes) -> str:
    return value.decode("latin-1") if isinstance(value, bytes) else value


__all__ = [
    "NO_BODY",
    "RequestBody",
    "RequestInfo",
    "bid_request_of",
    "build_request_info",
    "headers_of",
    "parse_cookie_header",
    "request_info_from_scope",
]
