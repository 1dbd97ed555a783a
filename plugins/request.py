"""What a provider sees of one request: :class:`RequestInfo`.

The proxy builds one ``RequestInfo`` per request (``RequestInfo.from_scope`` for ASGI) and hands
it to :func:`slotwise.plugins.gather.gather`. It is immutable and already parsed (lower-cased
header names, decoded query and cookies), so that providers never parse the same bytes twice.
Without personal consent, providers receive :meth:`RequestInfo.without_identifiers`: no user id
and no cookies.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any
from urllib.parse import parse_qsl

from slotwise.types import Signals

_EMPTY: Mapping[str, Any] = MappingProxyType({})
# Headers that identify the user (or carry their credentials), never shown without consent.
_IDENTIFYING = frozenset({"cookie", "authorization", "proxy-authorization"})


@dataclass(frozen=True, slots=True)
class RequestInfo:
    """One incoming request, as signal providers see it.

    ``headers`` has lower-cased names (repeated headers joined with ``", "``); ``query`` keeps
    the first value of each parameter; ``cookies`` is the parsed ``Cookie`` header.
    ``user_id`` is the proxy's pseudonymous user identifier when it has one; ``received_at``
    is when the request arrived (seconds since the epoch), so time-based signals are
    reproducible in tests. ``signals`` holds, for a provider that declares ``reads``, the
    signals it asked for that other providers produced for this request; it is empty otherwise.
    """

    method: str
    path: str
    query: Mapping[str, str] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)
    client_ip: str | None = None
    cookies: Mapping[str, str] = field(default_factory=dict)
    user_id: str | None = None
    received_at: float = field(default_factory=time.time)
    signals: Signals = field(default_factory=lambda: _EMPTY)

    def header(self, name: str, default: str | None = None) -> str | None:
        """The value of header ``name`` (any case), or ``default``."""
        return self.headers.get(name.lower(), default)

    def without_identifiers(self) -> RequestInfo:
        """This request without user identifiers: no user id, cookies or credentials.

        Contextual providers get this view when the user has not consented to personalisation.
        """
        if self.user_id is None and not self.cookies and _IDENTIFYING.isdisjoint(self.headers):
            return self
        headers = {k: v for k, v in self.headers.items() if k not in _IDENTIFYING}
        return replace(self, user_id=None, cookies=_EMPTY, headers=headers)

    def with_signals(self, signals: Signals) -> RequestInfo:
        """This request with ``signals`` (what a reading provider sees)."""
        return self._with(self.user_id, signals)

    def with_user_id(self, user_id: str | None) -> RequestInfo:
        """This request with the proxy's user id."""
        return self._with(user_id, self.signals)

    def _with(self, user_id: str | None, signals: Signals) -> RequestInfo:
        # positional and complete: several times cheaper than dataclasses.replace, per request
        return RequestInfo(
            self.method,
            self.path,
            self.query,
            self.headers,
            self.client_ip,
            self.cookies,
            user_id,
            self.received_at,
            signals,
        )

    @classmethod
    def build(
        cls,
        method: str,
        path: str,
        *,
        query_string: str | bytes = "",
        headers: Iterable[tuple[str | bytes, str | bytes]] = (),
        client_ip: str | None = None,
        user_id: str | None = None,
        received_at: float | None = None,
    ) -> RequestInfo:
        """Parse raw request parts (as an HTTP server has them) into a ``RequestInfo``."""
        merged: dict[str, str] = {}
        for raw_name, raw_value in headers:
            name = (
                raw_name.decode("latin-1") if type(raw_name) is bytes else _text(raw_name)
            ).lower()
            value = raw_value.decode("latin-1") if type(raw_value) is bytes else _text(raw_value)
            merged[name] = f"{merged[name]}, {value}" if name in merged else value
        query: dict[str, str] = {}
        if query_string:  # most ad requests have none: skip the parser
            for key, value in parse_qsl(_text(query_string), keep_blank_values=True):
                query.setdefault(key, value)
        cookie = merged.get("cookie")
        return cls(
            method.upper(),
            path,
            query,
            merged,
            client_ip,
            parse_cookie_header(cookie) if cookie else {},
            user_id,
            time.time() if received_at is None else received_at,
        )

    @classmethod
    def from_scope(
        cls,
        scope: Mapping[str, Any],
        *,
        user_id: str | None = None,
        received_at: float | None = None,
        client_ip: str | None = None,
    ) -> RequestInfo:
        """Build from an ASGI HTTP ``scope``.

        ``client_ip`` defaults to ``scope["client"][0]``; behind trusted proxies, pass the
        address resolved from ``X-Forwarded-For`` instead.
        """
        client = scope.get("client")
        if client_ip is None and client:
            client_ip = str(client[0])
        return cls.build(
            str(scope.get("method", "GET")),
            str(scope.get("path", "/")),
            query_string=scope.get("query_string", b""),
            headers=scope.get("headers", ()),
            client_ip=client_ip,
            user_id=user_id,
            received_at=received_at,
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


def _text(value: str | bytes) -> str:
    return value.decode("latin-1") if isinstance(value, bytes) else value
