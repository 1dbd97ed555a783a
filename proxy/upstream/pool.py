"""The upstream client: a bounded pool of keep-alive connections to one fixed origin.

The origin comes from configuration, never from a request. Each route (the first
``route_depth`` segments of the path) may hold at most ``max_per_route`` of the connections at
once, from the request being sent until its response is read: requests beyond that wait for
one of their own route's to finish (``pool_timeout``, then 504), so an upstream path that hangs
keeps the rest of the pool for the other paths. A request goes out as one write
(head and buffered body) or as a chunked stream. A request is retried once, on a fresh
connection, only when a pooled keep-alive connection turned out to be stale before any response
byte arrived and the request carried no body; a request whose body was sent is never retried.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections import deque
from collections.abc import AsyncIterable, Awaitable, Sequence
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit

from slotwise.proxy.upstream.connection import Connection, UpstreamResponse
from slotwise.proxy.upstream.errors import UpstreamError, UpstreamFailure

_IDEMPOTENT: Final = frozenset({b"GET", b"HEAD", b"OPTIONS", b"TRACE", b"PUT", b"DELETE"})
# methods whose bodyless request goes without a Content-Length: 0
_NO_BODY_EXPECTED: Final = frozenset({b"GET", b"HEAD", b"OPTIONS", b"DELETE", b"TRACE"})


@dataclass(frozen=True, slots=True)
class Origin:
    """Where requests go: scheme, host, port and the Host header value sent."""

    scheme: str
    host: str
    port: int
    host_header: bytes

    @classmethod
    def parse(cls, url: str) -> Origin:
        """Parse ``http://host[:port]`` (or https); raise ValueError saying what is wrong."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https"):
            raise ValueError(f"upstream URL {url!r} must start with http:// or https://")
        if not parts.hostname:
            raise ValueError(f"upstream URL {url!r} has no host")
        if parts.path not in ("", "/") or parts.query or parts.fragment:
            raise ValueError(f"upstream URL {url!r} must be an origin only, without a path")
        default = 443 if parts.scheme == "https" else 80
        try:
            port = parts.port or default
        except ValueError as exc:
            raise ValueError(f"upstream URL {url!r} has an invalid port") from exc
        host = parts.hostname
        shown = f"[{host}]" if ":" in host else host
        header = shown if port == default else f"{shown}:{port}"
        return cls(parts.scheme, host, port, header.encode("ascii"))


@dataclass(frozen=True, slots=True)
class PoolSettings:
    """Limits and timeouts of the pool (seconds)."""

    max_connections: int = 256
    max_idle: int = 128
    idle_expiry: float = 4.0  # below common server keep-alive timeouts (uvicorn's is 5 s)
    connect_timeout: float = 2.0
    pool_timeout: float = 2.0
    response_timeout: float = 10.0  # request sent -> response headers
    read_timeout: float = 30.0  # longest silence inside a response body
    max_header_bytes: int = 65536  # a response head larger than this is a 502 (protocol)
    max_headers: int = 256  # response header fields
    max_per_route: int = 0  # connections one route may hold (0: half of max_connections)
    route_depth: int = 1  # path segments naming a route: 1 -> /api, 2 -> /api/search


def route_of(target: bytes, depth: int) -> bytes:
    """The route of a request target: its path's first ``depth`` segments (``/a/b?q`` at
    depth 1 is ``/a``). Once per request: written for speed (about 0.3 us)."""
    if depth == 1:
        cut = target.find(b"/", 1)
        route = target if cut < 0 else target[:cut]
    else:
        route = b"/".join(target.split(b"/", depth + 1)[: depth + 1])
    query = route.find(b"?")
    return route if query < 0 else route[:query]


class UpstreamPool:
    """Send requests to the origin over pooled keep-alive connections."""

    def __init__(self, origin: Origin, settings: PoolSettings | None = None) -> None:
        self.origin = origin
        self.settings = settings or PoolSettings()
        self._idle: list[Connection] = []
        self._waiters: deque[asyncio.Future[Connection | None]] = deque()
        self._open = 0  # connections open or being opened
        self._closed = False
        half = max(1, self.settings.max_connections // 2)
        self._per_route = self.settings.max_per_route or half
        self._held: dict[bytes, int] = {}  # route -> exchanges in flight (connections held)
        self._route_waiters: dict[bytes, deque[asyncio.Future[None]]] = {}
        # connections whose exchange waits for its response head, and the one timer that
        # fails those past response_timeout (_sweep_heads), scheduled while there are any
        self._watched: set[Connection] = set()
        self._sweep: asyncio.TimerHandle | None = None
        self._sweep_every = min(max(self.settings.response_timeout / 8, 0.01), 1.0)
        self._ssl: ssl.SSLContext | None = (
            ssl.create_default_context() if origin.scheme == "https" else None
        )

    @property
    def open_connections(self) -> int:
        return self._open

    @property
    def idle_connections(self) -> int:
        return len(self._idle)

    async def request(
        self,
        method: bytes,
        target: bytes,
        headers: Sequence[tuple[bytes, bytes]],
        body: bytes | AsyncIterable[bytes] = b"",
    ) -> UpstreamResponse:
        """Send one request and return the response once its head has arrived.

        ``headers`` must already be cleaned of hop-by-hop fields and must not hold Host,
        Content-Length or Transfer-Encoding: this client sets those. Raises UpstreamError.
        """
        streamed = not isinstance(body, bytes)
        head = _serialize_head(method, target, headers, self.origin.host_header, body)
        retry_allowed = not streamed and not body and method in _IDEMPOTENT
        route = route_of(target, self.settings.route_depth)
        for attempt in (1, 2):
            await self._take(route)
            try:
                conn, reused = await self._acquire()
            except BaseException:
                self._give(route)
                raise
            # the route holds the connection until it is released or lost, whatever happens
            # next (every failure below aborts it)
            conn.route = route
            waiter = conn.start(method == b"HEAD", self.settings.read_timeout)
            try:
                if isinstance(body, bytes):
                    conn.write(head + body if body else head)
                else:
                    conn.write(head)
                    await _send_chunked(conn, body)
                self._watch(conn, asyncio.get_running_loop().time())
                return await waiter
            except UpstreamError as exc:
                if exc.failure is UpstreamFailure.TIMEOUT:
                    conn.abort()
                    raise
                stale = (
                    reused and exc.failure is UpstreamFailure.DISCONNECTED and not conn.received_any
                )
                if not (stale and retry_allowed and attempt == 1):
                    raise
                # else the next attempt
            except BaseException:
                conn.abort()  # cancelled mid-exchange: the connection is out of step
                raise
        raise AssertionError("unreachable")

    def begin(
        self,
        method: bytes,
        target: bytes,
        headers: Sequence[tuple[bytes, bytes]],
        body: bytes = b"",
    ) -> Awaitable[UpstreamResponse]:
        """Start a request now and await its response later (same contract as ``request``).

        On an idle keep-alive connection the request is written before this returns, without
        a task: the caller can do other work (gather signals) while the upstream answers.
        Otherwise a task opens a connection in the background.
        """
        route = route_of(target, self.settings.route_depth)
        held = self._held.get(route, 0)
        if held >= self._per_route:  # the route's budget is spent: wait in request()
            return asyncio.ensure_future(self.request(method, target, headers, body))
        conn = self._idle_connection()
        if conn is None:
            return asyncio.ensure_future(self.request(method, target, headers, body))
        loop = conn._loop  # not asyncio.get_running_loop(), a getpid (Connection.start)
        self._held[route] = held + 1
        conn.route = route
        head = _serialize_head(method, target, headers, self.origin.host_header, body)
        waiter = conn.start(method == b"HEAD", self.settings.read_timeout)
        conn.write(head + body if body else head)
        conn.deadline = loop.time() + self.settings.response_timeout  # _watch, written out
        self._watched.add(conn)
        if self._sweep is None:
            self._sweep = loop.call_later(self._sweep_every, self._sweep_heads)
        return self._finish(conn, waiter, method, target, headers, body)

    async def _finish(
        self,
        conn: Connection,
        waiter: asyncio.Future[UpstreamResponse],
        method: bytes,
        target: bytes,
        headers: Sequence[tuple[bytes, bytes]],
        body: bytes,
    ) -> UpstreamResponse:
        try:
            return await waiter
        except UpstreamError as exc:
            if exc.failure is UpstreamFailure.TIMEOUT:
                conn.abort()
                raise
            stale = exc.failure is UpstreamFailure.DISCONNECTED and not conn.received_any
            if stale and not body and method in _IDEMPOTENT:
                return await self.request(method, target, headers, body)  # a fresh connection
            raise
        except BaseException:
            conn.abort()
            raise

    def _idle_connection(self) -> Connection | None:
        if self._closed:
            return None
        while self._idle:
            conn = self._idle.pop()  # the most recently used: likeliest to be alive
            if conn.usable and conn._loop.time() - conn.idle_since < self.settings.idle_expiry:
                return conn
            conn.abort()
        return None

    async def aclose(self) -> None:
        """Close every idle connection and refuse new requests."""
        self._closed = True
        if self._sweep is not None:
            self._sweep.cancel()
            self._sweep = None
        for conn in self._idle:
            conn.abort()
        self._idle.clear()
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)

    # -- the response timeout -------------------------------------------------------------------

    def _watch(self, conn: Connection, now: float) -> None:
        """Give the exchange just sent on ``conn`` until response_timeout for its head.

        One timer for every exchange in flight, not one per exchange (a timer handle made and
        cancelled per request cost more than the rest of the round trip's bookkeeping): a head
        later than response_timeout fails within an eighth of it (at most 1 s) more. A
        connection stays watched after its exchange (a set of connections, not of exchanges:
        nothing to remove per request); the sweep lets go of those no longer waiting.
        """
        conn.deadline = now + self.settings.response_timeout
        self._watched.add(conn)
        if self._sweep is None:
            loop = asyncio.get_running_loop()
            self._sweep = loop.call_later(self._sweep_every, self._sweep_heads)

    def _sweep_heads(self) -> None:
        self._sweep = None
        loop = asyncio.get_running_loop()
        now = loop.time()
        done = [conn for conn in self._watched if not conn.waiting or conn.deadline <= now]
        timeout = self.settings.response_timeout
        for conn in done:
            self._watched.discard(conn)
            if conn.waiting:
                conn.expire(
                    UpstreamError(UpstreamFailure.TIMEOUT, f"no response within {timeout:g}s")
                )
        if self._watched:
            self._sweep = loop.call_later(self._sweep_every, self._sweep_heads)

    # -- route budgets --------------------------------------------------------------------------

    async def _take(self, route: bytes) -> None:
        """Hold one of ``route``'s connections, waiting up to ``pool_timeout`` for one."""
        held = self._held.get(route, 0)
        if held < self._per_route:
            self._held[route] = held + 1
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        waiters = self._route_waiters.setdefault(route, deque())
        waiters.append(waiter)
        try:
            async with asyncio.timeout(self.settings.pool_timeout):
                await waiter  # _give handed its slot over: the count stays as it was
        except BaseException as exc:
            if waiter.done() and not waiter.cancelled():
                self._give(route)  # handed over just as we gave up: pass it on
            if isinstance(exc, TimeoutError):
                raise UpstreamError(
                    UpstreamFailure.POOL_TIMEOUT,
                    f"the {self._per_route} upstream connections of route"
                    f" {route.decode('latin-1')!r} stayed busy for {self.settings.pool_timeout:g}s",
                ) from None
            raise
        finally:
            if waiter in waiters:
                waiters.remove(waiter)
            if not waiters:
                self._route_waiters.pop(route, None)

    def _give(self, route: bytes) -> None:
        """Release one of ``route``'s connections: to its first waiter, else back."""
        waiters = self._route_waiters.get(route) if self._route_waiters else None
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        held = self._held.get(route, 0) - 1
        if held > 0:
            self._held[route] = held
        else:
            self._held.pop(route, None)

    def _route_done(self, conn: Connection) -> None:
        route = conn.route
        if route is not None:
            conn.route = None
            self._give(route)

    # -- the pool -------------------------------------------------------------------------------

    async def _acquire(self) -> tuple[Connection, bool]:
        if self._closed:
            raise UpstreamError(UpstreamFailure.CONNECT, "the upstream client is closed")
        conn = self._idle_connection()
        if conn is not None:
            return conn, True
        if self._open < self.settings.max_connections:
            return await self._connect(), False
        waiter: asyncio.Future[Connection | None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            async with asyncio.timeout(self.settings.pool_timeout):
                conn_or_none = await waiter
        except TimeoutError:
            raise UpstreamError(
                UpstreamFailure.POOL_TIMEOUT,
                f"all {self.settings.max_connections} upstream connections stayed busy for "
                f"{self.settings.pool_timeout:g}s",
            ) from None
        finally:
            if waiter in self._waiters:
                self._waiters.remove(waiter)
        if conn_or_none is not None:
            return conn_or_none, True
        return await self._connect(), False

    async def _connect(self) -> Connection:
        self._open += 1
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.settings.connect_timeout):
                _, conn = await loop.create_connection(
                    lambda: Connection(
                        self._release,
                        self._forget,
                        self.settings.max_header_bytes,
                        self.settings.max_headers,
                    ),
                    self.origin.host,
                    self.origin.port,
                    ssl=self._ssl,
                    server_hostname=self.origin.host if self._ssl else None,
                )
        except TimeoutError:
            self._open -= 1
            self._wake_one()
            raise UpstreamError(
                UpstreamFailure.CONNECT_TIMEOUT,
                f"no connection to {self.origin.host}:{self.origin.port} within "
                f"{self.settings.connect_timeout:g}s",
            ) from None
        except OSError as exc:
            self._open -= 1
            self._wake_one()
            raise UpstreamError(
                UpstreamFailure.CONNECT,
                f"cannot connect to {self.origin.host}:{self.origin.port}: {exc.strerror or exc}",
            ) from None
        except BaseException:
            self._open -= 1
            self._wake_one()
            raise
        sock = conn._transport.get_extra_info("socket") if conn._transport else None
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return conn

    def _release(self, conn: Connection) -> None:
        route = conn.route
        if route is not None:  # _route_done, and _give's common case, written out
            conn.route = None
            held = self._held.get(route, 0) - 1
            if route in self._route_waiters or held <= 0:
                self._held[route] = held + 1
                self._give(route)
            else:
                self._held[route] = held
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(conn)
                return
        if self._closed or len(self._idle) >= self.settings.max_idle:
            conn.abort()
            return
        self._idle.append(conn)

    def _forget(self, conn: Connection) -> None:
        self._route_done(conn)
        self._open -= 1
        # not kept (with what it buffered) until the next sweep: an upstream that fails every
        # exchange would hold a second's worth of lost connections and their heads
        self._watched.discard(conn)
        if conn in self._idle:
            self._idle.remove(conn)
        self._wake_one()

    def _wake_one(self) -> None:
        # a slot freed up: the first waiter may open a new connection
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return


def _serialize_head(
    method: bytes,
    target: bytes,
    headers: Sequence[tuple[bytes, bytes]],
    host: bytes,
    body: bytes | AsyncIterable[bytes],
) -> bytes:
    # the fields joined in C (map over the pairs), not a Python loop per field
    fields = b"\r\n".join(map(b": ".join, headers))
    if isinstance(body, bytes):
        if body or method not in _NO_BODY_EXPECTED:
            framing = b"content-length: %d\r\n" % len(body)
        else:
            framing = b""
    else:
        framing = b"transfer-encoding: chunked\r\n"
    if fields:
        return b"%s %s HTTP/1.1\r\nhost: %s\r\n%s\r\n%s\r\n" % (
            method,
            target,
            host,
            fields,
            framing,
        )
    return b"%s %s HTTP/1.1\r\nhost: %s\r\n%s\r\n" % (method, target, host, framing)


async def _send_chunked(conn: Connection, body: AsyncIterable[bytes]) -> None:
    async for chunk in body:
        if chunk:
            conn.write(b"%x\r\n%b\r\n" % (len(chunk), chunk))
            await conn.drain()
        if not conn.usable:
            raise UpstreamError(UpstreamFailure.DISCONNECTED, "the upstream closed mid-request")
    conn.write(b"0\r\n\r\n")
