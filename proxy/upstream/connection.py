"""One keep-alive HTTP/1.1 connection to the upstream: an asyncio Protocol fed to httptools.

The pool hands a connection one exchange at a time. Response bytes are parsed as they arrive;
the body is buffered in the :class:`UpstreamResponse` with flow control (reading pauses past a
high-water mark), so a slow consumer never makes the proxy hold an unbounded body.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import Final, cast

import httptools

from slotwise.proxy.upstream.errors import UpstreamError, UpstreamFailure

_HIGH_WATER: Final = 256 * 1024
_LOW_WATER: Final = 64 * 1024

Headers = list[tuple[bytes, bytes]]


class UpstreamResponse:
    """The upstream's status and headers, and its body as it arrives.

    Header names are lower-cased. Read the body with :meth:`read_up_to` (buffer it, up to a
    limit) and then :meth:`next_chunk` for whatever remains; call :meth:`close` when giving up
    on a body early, so the connection is not reused half-read.
    """

    __slots__ = (
        "status",
        "headers",
        "_conn",
        "_chunks",
        "_buffered",
        "_complete",
        "_error",
        "_waiter",
        "_read_timeout",
        "_wanted",
    )

    def __init__(
        self, status: int, headers: Headers, conn: Connection, read_timeout: float
    ) -> None:
        self.status = status
        self.headers = headers
        self._conn = conn
        self._chunks: deque[bytes] = deque()
        self._buffered = 0
        self._complete = False
        self._error: UpstreamError | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._read_timeout = read_timeout
        self._wanted = 0  # bytes a read_up_to asks to hold: flow control pauses only beyond

    @property
    def complete(self) -> bool:
        """True once the whole body has arrived (it may still be buffered here)."""
        return self._complete

    async def read_up_to(self, limit: int) -> tuple[bytes, bool]:
        """Buffer the body until it ends or exceeds ``limit`` bytes.

        Returns the bytes taken so far and whether they are the whole body within ``limit``.
        When they are not, the rest (if any) follows from :meth:`next_chunk`. A body that had
        already arrived whole but is larger than ``limit`` is not "within": how fast the
        upstream was must not decide whether the limit applies.
        """
        # Flow control pauses the socket at _HIGH_WATER; a read asking for more must keep it
        # flowing (from here on _feed pauses only past ``limit``, which ends the loop), or a
        # body between the two would stall until the read timeout.
        self._wanted = limit + 1
        try:
            if not self._complete and self._buffered <= limit:
                self._conn.resume()
            while not self._complete and self._buffered <= limit:
                await self._wait()
        finally:
            self._wanted = 0
        data = b"".join(self._chunks)
        self._chunks.clear()
        self._buffered = 0
        self._conn.resume()
        return data, self._complete and len(data) <= limit

    async def next_chunk(self) -> bytes:
        """The next piece of the body, or ``b""`` at its end."""
        while not self._chunks:
            if self._complete:
                return b""
            await self._wait()
        chunk = self._chunks.popleft()
        self._buffered -= len(chunk)
        if self._buffered < _LOW_WATER:
            self._conn.resume()
        return chunk

    def close(self) -> None:
        """Abandon the body: an unfinished connection is closed rather than reused."""
        if not self._complete:
            self._conn.abort()

    async def _wait(self) -> None:
        self._raise_failure()
        loop = asyncio.get_running_loop()
        waiter = self._waiter = loop.create_future()
        timer = loop.call_later(self._read_timeout, _expire, waiter)
        try:
            await waiter
        finally:
            timer.cancel()
            self._waiter = None
        # a method, not a second `if self._error`: mypy keeps the first check's narrowing (to
        # None) across the await, and code compiled with mypyc would trust it
        self._raise_failure()

    def _raise_failure(self) -> None:
        if self._error is not None:
            raise self._error

    def _feed(self, chunk: bytes) -> None:
        self._chunks.append(chunk)
        self._buffered += len(chunk)
        if self._buffered > max(_HIGH_WATER, self._wanted):
            self._conn.pause()
        self._wake()

    def _finish(self) -> None:
        self._complete = True
        self._wake()

    def _fail(self, error: UpstreamError) -> None:
        self._error = error
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)


def _expire(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_exception(UpstreamError(UpstreamFailure.READ_TIMEOUT, "the body stalled"))


class _HeadTooLarge(Exception):
    """The upstream's response head passed a limit (bytes or fields)."""


class Connection(asyncio.Protocol):
    """A pooled connection; ``on_idle`` returns it to the pool, ``on_lost`` forgets it."""

    def __init__(
        self,
        on_idle: Callable[[Connection], None],
        on_lost: Callable[[Connection], None],
        max_header_bytes: int = 65536,
        max_headers: int = 256,
    ) -> None:
        self._on_idle = on_idle
        self._on_lost = on_lost
        self._max_header_bytes = max_header_bytes
        self._max_headers = max_headers
        self._head_bytes = 0  # bytes of the response head received so far
        self._parser = httptools.HttpResponseParser(self)
        self._transport: asyncio.Transport | None = None
        self._headers: Headers = []
        self._head_waiter: asyncio.Future[UpstreamResponse] | None = None
        self._response: UpstreamResponse | None = None
        self._read_timeout = 30.0
        self._head_request = False
        self._interim = False
        self._received = False  # any response byte in the current exchange
        self._paused = False
        self._drain: asyncio.Future[None] | None = None
        self.closed = False
        self.idle_since = 0.0
        self.route: bytes | None = None  # the route whose exchange holds it (pool budgets)

    # -- the pool's side -----------------------------------------------------------------------

    @property
    def usable(self) -> bool:
        return not self.closed and self._transport is not None and not self._transport.is_closing()

    def start(self, head_request: bool, read_timeout: float) -> asyncio.Future[UpstreamResponse]:
        """Begin an exchange; the future resolves with the response head."""
        loop = asyncio.get_running_loop()
        self._head_waiter = loop.create_future()
        self._response = None
        self._headers = []
        self._head_bytes = 0
        self._head_request = head_request
        self._read_timeout = read_timeout
        self._received = False
        return self._head_waiter

    @property
    def received_any(self) -> bool:
        return self._received

    def write(self, data: bytes) -> None:
        assert self._transport is not None
        self._transport.write(data)

    async def drain(self) -> None:
        """Wait while the kernel send buffer is full (large streamed request bodies)."""
        if self._drain is not None:
            await self._drain

    def pause(self) -> None:
        if not self._paused and self._transport is not None:
            self._paused = True
            self._transport.pause_reading()

    def resume(self) -> None:
        if self._paused and self._transport is not None and not self.closed:
            self._paused = False
            self._transport.resume_reading()

    def abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()
        self.closed = True

    # -- asyncio.Protocol --------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement the interface without subclassing asyncio.Transport
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self._received = True
        if self._head_waiter is None and self._response is None:
            # bytes nobody asked for: the connection is out of step, never reuse it
            self.abort()
            return
        try:
            self._parser.feed_data(data)
            if self._head_waiter is not None and self._response is None:
                # still inside the head: an upstream streaming header lines must not grow the
                # proxy without bound (the parser keeps a header until it ends)
                self._head_bytes += len(data)
                if self._head_bytes > self._max_header_bytes:
                    raise _HeadTooLarge(f"response headers exceed {self._max_header_bytes} bytes")
        except _HeadTooLarge as exc:
            self._fail(UpstreamError(UpstreamFailure.PROTOCOL, str(exc)))
            self.abort()
        except httptools.HttpParserUpgrade:  # not an HttpParserError
            detail = "the upstream switched protocols (101); only HTTP/1.1 is proxied"
            self._fail(UpstreamError(UpstreamFailure.PROTOCOL, detail))
            self.abort()
        except httptools.HttpParserError as error:  # not `exc`: mypyc types a name once
            # a callback's exception arrives wrapped (HttpParserCallbackError)
            cause = error.__context__
            detail = (
                str(cause) if isinstance(cause, _HeadTooLarge) else f"malformed response: {error}"
            )
            self._fail(UpstreamError(UpstreamFailure.PROTOCOL, detail))
            self.abort()

    def eof_received(self) -> bool | None:
        return False  # let the transport close

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        response = self._response
        if response is not None and not response.complete and self._eof_delimited():
            response._finish()  # a body without length or chunking ends at close
        else:
            reason = str(exc) if exc else "the upstream closed the connection"
            self._fail(UpstreamError(UpstreamFailure.DISCONNECTED, reason))
        if self._drain is not None and not self._drain.done():
            self._drain.set_result(None)
        self._on_lost(self)

    def pause_writing(self) -> None:
        self._drain = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        if self._drain is not None and not self._drain.done():
            self._drain.set_result(None)
        self._drain = None

    # -- httptools callbacks ----------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._headers = []

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name.lower(), value))
        if len(self._headers) > self._max_headers:
            raise _HeadTooLarge(f"more than {self._max_headers} response header fields")

    def on_headers_complete(self) -> None:
        status = self._parser.get_status_code()
        if not 100 <= status <= 599:  # httptools takes any three digits
            self._fail(UpstreamError(UpstreamFailure.PROTOCOL, f"invalid status code {status}"))
            self.abort()
            return
        if 100 <= status < 200:
            # interim responses (100 Continue, 103 Early Hints) are not forwarded
            self._interim = True
            return
        waiter, self._head_waiter = self._head_waiter, None
        if waiter is None or waiter.done():
            self.abort()  # a response nobody waits for: out of step, or the wait timed out
            return
        response = UpstreamResponse(status, self._headers, self, self._read_timeout)
        self._response = response
        waiter.set_result(response)
        if self._head_request:
            # a HEAD response has no body whatever its Content-Length says; the parser cannot
            # be told so, hence the connection is finished here and not reused
            response._finish()
            self._response = None
            self.abort()

    def on_body(self, body: bytes) -> None:
        if self._response is not None:
            self._response._feed(body)

    def on_message_complete(self) -> None:
        if self._interim:
            self._interim = False
            return
        response, self._response = self._response, None
        if response is None:
            return
        response._finish()
        if self._parser.should_keep_alive() and self.usable:
            self.idle_since = asyncio.get_running_loop().time()
            self._on_idle(self)
        else:
            self.abort()

    # -- helpers -----------------------------------------------------------------------------

    def _eof_delimited(self) -> bool:
        names = {name for name, _ in self._headers}
        return b"content-length" not in names and b"transfer-encoding" not in names

    def _fail(self, error: UpstreamError) -> None:
        waiter, self._head_waiter = self._head_waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(error)
        response, self._response = self._response, None
        if response is not None and not response.complete:
            response._fail(error)
