"""HTTP hygiene between client and upstream: what a proxy must drop, add and refuse.

- Hop-by-hop fields, and every field the Connection header names, go in neither direction
  (RFC 9110 section 7.6.1).
- X-Forwarded-For gets the client's address appended; a client's own X-Forwarded-For is kept
  only when the client is one of the configured trusted proxies, otherwise it is replaced.
- Host, Content-Length and Transfer-Encoding are set by the upstream client; the upstream host
  comes from configuration, never from the request.
- Accept-Encoding is narrowed to codings the proxy can decode, so a body can always be read.
- Via is added to requests only: a fail-open response must carry exactly the upstream's
  end-to-end headers.
- X-Request-Id goes upstream always, as the last field: the client's own when it is a sane
  token (1-128 visible ASCII characters), else a fresh one; the proxy's log lines carry it.
- Requests past the header or body size limits are refused with 431 / 413; an HTTP/1.1
  request needs exactly one Host (slotwise.proxy.http_body.head_refusal).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final

from slotwise.proxy.http_encoding import SUPPORTED_CODINGS
from slotwise.proxy.tracking import new_decision_id
from slotwise.types import Scope

Headers = list[tuple[bytes, bytes]]
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

HOP_BY_HOP: Final = frozenset(
    {
        b"connection",
        b"proxy-connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    }
)
# set by the upstream client or recomputed by the proxy, never copied from the client
_REQUEST_MANAGED: Final = frozenset(
    {b"host", b"content-length", b"expect", b"x-forwarded-for", b"accept-encoding", b"x-request-id"}
)
REQUEST_ID: Final = b"x-request-id"
# what a request's field is looked up in first (one dict lookup for every field): dropped, or
# taken aside for the proxy to set (every other field is forwarded as it is)
# Final ints: compiled, constants (a tuple unpacking made them module dict lookups per field)
_DROP: Final = 0
_XFF: Final = 1
_ACCEPT_ENCODING: Final = 2
_REQUEST_ID: Final = 3
_CONNECTION: Final = 4
_REQUEST_SPECIAL: Final[dict[bytes, int]] = {
    **dict.fromkeys(HOP_BY_HOP | _REQUEST_MANAGED, _DROP),
    b"x-forwarded-for": _XFF,
    b"accept-encoding": _ACCEPT_ENCODING,
    REQUEST_ID: _REQUEST_ID,
    b"connection": _CONNECTION,
}
_VIA: Final = (b"via", b"1.1 slotwise")
_REQUEST_ID_TEXT: Final = re.compile(rb"[\x21-\x7e]{1,128}")
# recomputed for the client (the ASGI server writes framing)
_RESPONSE_MANAGED: Final = frozenset({b"content-length"})
_RESPONSE_DROP: Final = HOP_BY_HOP | _RESPONSE_MANAGED
_NONE_NAMED: Final[frozenset[bytes]] = frozenset()


@dataclass(frozen=True, slots=True)
class ForwardingPolicy:
    """Which peers may speak for others (their X-Forwarded-For is trusted)."""

    trusted_proxies: tuple[Network, ...] = ()

    @classmethod
    def parse(cls, networks: Iterable[str]) -> ForwardingPolicy:
        """Build from CIDR strings; raise ValueError naming a bad entry."""
        parsed = []
        for text in networks:
            try:
                parsed.append(ipaddress.ip_network(text, strict=False))
            except ValueError as exc:
                raise ValueError(f"trusted proxy {text!r} is not an IP address or CIDR") from exc
        return cls(tuple(parsed))

    def client_address(self, peer: str, headers: Sequence[tuple[bytes, bytes]]) -> str:
        """The client's address as these rules give it: the peer's, unless the peer is a
        trusted proxy; then X-Forwarded-For is read from the right, past the trusted proxies,
        and the first address no trusted proxy owns is the client (a client cannot make itself
        anyone by writing the header: only what trusted proxies appended is believed)."""
        if not self.trusted_proxies or not self.trusts(peer):
            return peer
        chain = [
            hop.strip().decode("latin-1")
            for name, value in headers
            if name.lower() == b"x-forwarded-for"
            for hop in value.split(b",")
        ]
        for hop in reversed(chain):
            if not self.trusts(hop):
                return hop  # not an address at all: still the client's word, never loopback
        return chain[0] if chain else peer

    def scheme(self, peer: str, headers: Sequence[tuple[bytes, bytes]], default: str) -> str:
        """The scheme the client used: ``default`` (the connection's), unless the peer is a
        trusted proxy that says otherwise in ``X-Forwarded-Proto`` or ``Forwarded: proto=``
        (RFC 7239; the last hop's word, which the trusted proxy wrote). Only http and https."""
        if not self.trusted_proxies or not self.trusts(peer):
            return default
        said = None
        for raw_name, value in headers:
            name = raw_name.lower()
            if name == b"x-forwarded-proto":
                said = value.split(b",")[-1].strip().lower()
            elif name == b"forwarded":
                for pair in value.split(b",")[-1].split(b";"):
                    key, _, found = pair.strip().partition(b"=")
                    if key.lower() == b"proto":
                        said = found.strip(b'" ').lower()
        return said.decode("ascii") if said in (b"http", b"https") else default

    def trusts(self, address: str) -> bool:
        if not self.trusted_proxies:
            return False
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in net for net in self.trusted_proxies)


def connection_named(headers: Sequence[tuple[bytes, bytes]]) -> frozenset[bytes]:
    """The field names listed in Connection headers (lower-cased)."""
    named: set[bytes] | None = None
    for name, value in headers:
        # per header of every request: the length first, lower-casing only a 10-byte name
        if len(name) == 10 and name.lower() == b"connection":
            if named is None:
                named = set()
            named.update(t.strip().lower() for t in value.split(b",") if t.strip())
    return frozenset(named) if named else _NONE_NAMED


def upstream_request(scope: Scope, forwarding: ForwardingPolicy) -> tuple[bytes, Headers]:
    """The request's target as the client sent it (query included) and its headers to send
    upstream (:func:`upstream_request_headers`): what every proxied request forwards."""
    client = scope.get("client")
    headers = upstream_request_headers(scope["headers"], client[0] if client else None, forwarding)
    target: bytes = scope.get("raw_path") or scope["path"].encode()
    query = scope.get("query_string")
    if query:
        target += b"?" + query
    return target, headers


def upstream_request_headers(
    headers: list[tuple[bytes, bytes]],  # a list (as ASGI gives it): compiled code walks it fast
    client_address: str | None,
    forwarding: ForwardingPolicy,
) -> Headers:
    """The request headers to send upstream, cleaned, with X-Forwarded-For appended and
    X-Request-Id last."""
    # one pass, one set lookup for most fields (every proxied request comes here); the fields
    # a Connection header names are taken out afterwards, in the rare request that has one
    out: Headers = []
    connection: list[bytes] | None = None
    prior_xff: list[bytes] = []
    accept_encoding: list[bytes] = []
    request_id = b""
    for raw_name, value in headers:
        name = raw_name.lower()
        kind = _REQUEST_SPECIAL.get(name)
        if kind is None:
            out.append((name, value))
        elif kind == _XFF:
            prior_xff.append(value)
        elif kind == _ACCEPT_ENCODING:
            accept_encoding.append(value)
        elif kind == _REQUEST_ID:
            if not request_id:
                request_id = value
        elif kind == _CONNECTION:
            connection = [value] if connection is None else [*connection, value]
        # else (_DROP): hop-by-hop, or set by the proxy
    if connection is not None:
        named = connection_named([(b"connection", value) for value in connection])
        if named:  # hop-by-hop by the sender's word: none of them is forwarded
            out = [field for field in out if field[0] not in named]
            prior_xff = [] if b"x-forwarded-for" in named else prior_xff
            accept_encoding = [] if b"accept-encoding" in named else accept_encoding
            request_id = b"" if REQUEST_ID in named else request_id
    if accept_encoding:
        out.append((b"accept-encoding", narrow_accept_encoding(b",".join(accept_encoding))))
    out.append(_VIA)  # RFC 9110 7.6.3 (kept off responses: see module doc)
    _forwarded_for(out, prior_xff, client_address, forwarding)
    if not (request_id and is_request_id(request_id)):
        request_id = new_decision_id().encode("ascii")
    out.append((REQUEST_ID, request_id))  # last: the exchange reads it there
    return out


def _forwarded_for(
    out: Headers, prior: list[bytes], client_address: str | None, forwarding: ForwardingPolicy
) -> None:
    """Append X-Forwarded-For: the client's address, after the chain a trusted proxy sent."""
    if client_address is not None:
        if prior and forwarding.trusts(client_address):
            prior.append(client_address.encode())
            out.append((b"x-forwarded-for", b", ".join(prior)))
        else:
            out.append((b"x-forwarded-for", client_address.encode()))
    elif prior and forwarding.trusted_proxies:
        out.append((b"x-forwarded-for", b", ".join(prior)))


def is_request_id(value: bytes) -> bool:
    """A client's X-Request-Id worth keeping: 1-128 visible ASCII characters."""
    return _REQUEST_ID_TEXT.fullmatch(value) is not None


def client_response_headers(
    headers: Sequence[tuple[bytes, bytes]], rewritten: bool = False
) -> Headers:
    """The upstream's end-to-end response headers, in order, for the client; for a
    ``rewritten`` body without the validators and digests of the upstream's (one pass)."""
    drop = _REWRITTEN_DROP if rewritten else _RESPONSE_DROP
    # Connection's own values first: most name only hop-by-hop fields already dropped
    # ("keep-alive", "close"), which leaves the drop set as it is
    connection = [value for name, value in headers if name == b"connection"]
    if connection and connection != _KEEP_ALIVE:
        named = connection_named([(b"connection", value) for value in connection])
        if not named <= drop:
            drop = drop | named
    return [field for field in headers if field[0] not in drop]


_KEEP_ALIVE: Final = [b"keep-alive"]  # what most upstreams' Connection says (nginx's)
# validators and digests of the upstream body do not describe a rewritten one
_STALE_AFTER_REWRITE: Final = frozenset({b"etag", b"content-md5", b"digest", b"content-range"})
_REWRITTEN_DROP: Final = _RESPONSE_DROP | _STALE_AFTER_REWRITE


def narrow_accept_encoding(value: bytes) -> bytes:
    """Keep only codings the proxy decodes (and identity); keep their q-values and order."""
    kept = []
    for item in value.split(b","):
        token = item.strip()
        coding = token.split(b";", 1)[0].strip().lower()
        # "*" would let the upstream pick a coding the proxy cannot read (zstd), so it goes
        if coding in SUPPORTED_CODINGS or coding == b"identity":
            kept.append(token)
    return b", ".join(kept) or b"identity"


def content_length(headers: Sequence[tuple[bytes, bytes]]) -> int | None:
    """The declared Content-Length, or None when absent or not a clean number."""
    for name, value in headers:
        if len(name) == 14 and name.lower() == b"content-length":  # lower-cases one name at most
            stripped = value.strip()
            return int(stripped) if stripped.isdigit() else None
    return None


def header(headers: Sequence[tuple[bytes, bytes]], name: bytes) -> bytes | None:
    """The first value of a (lower-case) header name, or None."""
    for key, value in headers:
        if key == name:
            return value
    return None


_LOOPBACK: Final = re.compile(r"^(127\.\d+\.\d+\.\d+|::1|::ffff:127\.\d+\.\d+\.\d+)$")


def is_loopback(address: str) -> bool:
    """A loopback client address (IPv4 127/8, ::1, IPv4-mapped 127/8)."""
    return _LOOPBACK.match(address) is not None
