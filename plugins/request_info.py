"""What a provider sees of one request: :class:`RequestInfo` and its :class:`RequestBody`.

Apart from ``slotwise.plugins.request`` (compiled with mypyc, which parses the request and
re-exports these) because a compiled module cannot define a ``msgspec.Struct``, and one
``RequestInfo`` or more is built per request: a frozen dataclass's generated ``__init__``
(``object.__setattr__`` per field, in Python even when compiled) cost ~6,000 instructions for
its ten fields; the Struct's is C.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Any, Final

import msgspec

from slotwise.plugins.bid_request import NOT_A_BID_REQUEST, BidRequest, Decoded, Problem
from slotwise.plugins.bid_request import decode as decode_bid_request
from slotwise.types import Signals

_EMPTY: Final[Mapping[str, Any]] = MappingProxyType({})
# Headers that identify the user (or carry their credentials), never shown without consent.
_IDENTIFYING: Final = frozenset({"cookie", "authorization", "proxy-authorization"})


class RequestBody:
    """A request's body and the OpenRTB bid request in it, decoded once, on first use.

    ``raw`` is the body as it came. :attr:`bid_request` is the decoded bid request of a POST
    (None for any other body, and for other methods); :attr:`problem` says why a body naming
    ``imp`` was not (wholly) read: ``malformed`` or ``invalid`` (see
    :class:`slotwise.plugins.bid_request.Decoded`). Every view of one request shares the
    decoding, so providers never parse the body twice.
    """

    __slots__ = ("raw", "_post", "_decoded")

    def __init__(self, raw: bytes, *, post: bool = True) -> None:
        self.raw = raw
        self._post = post
        self._decoded: Decoded | None = None

    @property
    def bid_request(self) -> BidRequest | None:
        """The OpenRTB bid request this body carries, or None."""
        return self._decode().bid_request

    @property
    def problem(self) -> Problem | None:
        """Why a body that looked like a bid request was not (wholly) read, or None."""
        return self._decode().problem

    def without_identifiers(self) -> RequestBody:
        """This body as a provider without personal consent sees it: no raw bytes, and the
        bid request without ``user.id``, ``user.buyeruid`` and ``device.ifa``."""
        return _AnonymousBody(self) if self.raw else self

    def _decode(self) -> Decoded:
        decoded = self._decoded
        if decoded is None:
            # only a POST carries a bid request: other bodies are never parsed
            raw = self.raw
            decoded = decode_bid_request(raw) if self._post and raw else NOT_A_BID_REQUEST
            self._decoded = decoded
        return decoded


class _AnonymousBody(RequestBody):
    """A body's view without identifiers; decodes through the body it views."""

    __slots__ = ("_source",)

    def __init__(self, source: RequestBody) -> None:
        super().__init__(b"", post=False)
        self._source = source

    def without_identifiers(self) -> RequestBody:
        return self

    def _decode(self) -> Decoded:
        decoded = self._decoded
        if decoded is None:
            seen = self._source._decode()
            found = seen.bid_request
            if found is not None:
                seen = Decoded(found.without_ids(), seen.problem)
            decoded = self._decoded = seen
        return decoded


NO_BODY: Final = RequestBody(b"", post=False)


class RequestInfo(msgspec.Struct, frozen=True):
    """One incoming request, as signal providers see it.

    ``headers`` has lower-cased names (repeated headers joined with ``", "``); ``query`` keeps
    the first value of each parameter; ``cookies`` is the parsed ``Cookie`` header.
    ``user_id`` is the proxy's pseudonymous user identifier when it has one; ``received_at``
    is when the request arrived (seconds since the epoch), so time-based signals are
    reproducible in tests. ``signals`` holds, for a provider that declares ``reads``, the
    signals it asked for that other providers produced for this request; it is empty otherwise.
    ``body`` is the request body (:class:`RequestBody`); :attr:`bid_request` the OpenRTB bid
    request in it, if any. Change one with ``msgspec.structs.replace``.
    """

    method: str
    path: str
    query: Mapping[str, str] = msgspec.field(default_factory=dict)
    headers: Mapping[str, str] = msgspec.field(default_factory=dict)
    client_ip: str | None = None
    cookies: Mapping[str, str] = msgspec.field(default_factory=dict)
    user_id: str | None = None
    received_at: float = msgspec.field(default_factory=time.time)
    signals: Signals = msgspec.field(default_factory=lambda: _EMPTY)
    body: RequestBody = NO_BODY

    @property
    def bid_request(self) -> BidRequest | None:
        """The OpenRTB bid request the body carries (decoded on first use), or None."""
        body = self.body
        return None if body is NO_BODY else body.bid_request

    def header(self, name: str, default: str | None = None) -> str | None:
        """The value of header ``name`` (any case), or ``default``."""
        return self.headers.get(name.lower(), default)

    def without_identifiers(self) -> RequestInfo:
        """This request without user identifiers: no user id, cookies, credentials or raw
        body, and a bid request without its user ids.

        Contextual providers get this view when the user has not consented to personalisation.
        """
        body = self.body
        if (
            self.user_id is None
            and not self.cookies
            and not body.raw
            and _IDENTIFYING.isdisjoint(self.headers)
        ):
            return self
        headers = {k: v for k, v in self.headers.items() if k not in _IDENTIFYING}
        # positional and complete, as _with: several times cheaper than msgspec.structs.replace
        return RequestInfo(
            self.method,
            self.path,
            self.query,
            headers,
            self.client_ip,
            _EMPTY,
            None,
            self.received_at,
            self.signals,
            body.without_identifiers(),
        )

    def with_signals(self, signals: Signals) -> RequestInfo:
        """This request with ``signals`` (what a reading provider sees)."""
        return self._with(self.user_id, signals)

    def with_user_id(self, user_id: str | None) -> RequestInfo:
        """This request with the proxy's user id."""
        return self._with(user_id, self.signals)

    def _with(self, user_id: str | None, signals: Signals) -> RequestInfo:
        # positional and complete: several times cheaper than msgspec.structs.replace, per request
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
            self.body,
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
        body: bytes = b"",
        user_cookie: str | None = None,
    ) -> RequestInfo:
        """Parse raw request parts (as an HTTP server has them) into a ``RequestInfo``.

        ``body`` is the request body; nothing is done with it until a provider asks for the
        bid request it may carry. Without ``user_id``, a non-empty ``user_cookie`` cookie is
        the user id (the proxy's id cookie: one object per request, not a copy with the id).
        """
        # the parser is compiled (slotwise.plugins.request), which imports this module
        from slotwise.plugins.request import build_request_info

        return build_request_info(
            cls,
            method,
            path,
            query_string=query_string,
            headers=headers,
            client_ip=client_ip,
            user_id=user_id,
            received_at=received_at,
            body=body,
            user_cookie=user_cookie,
        )

    @classmethod
    def from_scope(
        cls,
        scope: Mapping[str, Any],
        *,
        user_id: str | None = None,
        received_at: float | None = None,
        client_ip: str | None = None,
        body: bytes = b"",
        user_cookie: str | None = None,
    ) -> RequestInfo:
        """Build from an ASGI HTTP ``scope`` and the request ``body`` (already read).

        ``client_ip`` defaults to ``scope["client"][0]``; behind trusted proxies, pass the
        address resolved from ``X-Forwarded-For`` instead. ``user_cookie``: as in :meth:`build`.
        """
        from slotwise.plugins.request import request_info_from_scope

        return request_info_from_scope(
            cls,
            scope,
            user_id=user_id,
            received_at=received_at,
            client_ip=client_ip,
            body=body,
            user_cookie=user_cookie,
        )


__all__ = ["NO_BODY", "RequestBody", "RequestInfo"]
