"""One keep-alive HTTP/1.1 connection to the upstream: an asyncio Protocol fed to httptools.

The pool hands a connection one exchange at a time. Response bytes are parsed as they arrive;
the body is buffered in the :class:`UpstreamResponse` with flow control (reading pauses past a
high-water mark), so a slow consumer never makes the proxy hold an unbounded body.

httptools (llhttp, strict) validates every byte of the head and frames the body, but is not
asked for the header fields one callback at a time: the head's bytes are kept while it arrives
and split into fields once, when llhttp says it is complete (``Connection._fields``; a head
seen before is looked up, not split again). Eight callbacks into Python per response cost more
than the whole split; llhttp has already refused anything the split could misread (bare LF,
obs-fold, whitespace before the colon, control bytes).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from itertools import repeat
from typing import Final, cast

import httptools

from slotwise.proxy.memo import remember
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
        "head",
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
        self,
        status: int,
        headers: Headers,
        conn: Connection,
        read_timeout: float,
        head: bytes = b"",
    ) -> None:
        self.status = status
        self.headers = headers
        self.head = head  # the head as it came (status line and fields): whatever is made of
        # the headers alone may be kept by it (the same origin sends the same head again)
        self._conn = conn
        self._chunks: list[bytes] = []  # a few at most: reading pauses past _HIGH_WATER
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

    def whole(self) -> bytes:
        """The body, all of it, once :attr:`complete` (a read that needs no await)."""
        assert self._complete
        chunks = self._chunks
        data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        chunks.clear()
        self._buffered = 0
        conn = self._conn
        if conn._paused:  # a large body may have paused reading on the (now idle) connection
            conn.resume()
        return data

    async def next_chunk(self) -> bytes:
        """The next piece of the body, or ``b""`` at its end."""
        while not self._chunks:
            if self._complete:
                return b""
            await self._wait()
        chunk = self._chunks.pop(0)
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
        loop = self._conn._loop
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
        buffered = self._buffered = self._buffered + len(chunk)
        if buffered > _HIGH_WATER and buffered > self._wanted:
            self._conn.pause()
        if self._waiter is not None:  # most bodies arrive before anyone waits for them
            self._wake()

    def _finish(self) -> None:
        self._complete = True
        if self._waiter is not None:
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


def _split(head: bytes) -> tuple[tuple[bytes, bytes], ...]:
    """A validated head's fields (after its status line): names lower-cased, values without
    their leading whitespace (llhttp hands values with their trailing whitespace: so here)."""
    lines = head.split(b"\r\n")
    del lines[0]  # the status line (the parser read the status)
    return tuple(
        [
            (name.lower(), value.lstrip(b" \t"))
            for name, _, value in map(bytes.partition, lines, repeat(b":"))
        ]
    )


# Heads already split, by their bytes. An origin answers the same resource with the same head
# (nginx's differs once a second, in Date), so most heads are split once and then looked up:
# one hash of a few hundred bytes against a Python call per field. Bounded (emptied when full,
# large heads never kept); the split is a pure function of the bytes, so a hit is exact.
_SPLIT: Final[dict[bytes, tuple[tuple[bytes, bytes], ...]]] = {}
_SPLIT_ENTRIES: Final = 256
_SPLIT_KEY_BYTES: Final = 2048


class _BadHead(Exception):
    """The upstream's response head cannot be taken (its message says why)."""


class _HeadTooLarge(_BadHead):
    """The upstream's response head passed a limit (bytes or fields)."""


class Connection(asyncio.Protocol):
    """A pooled connection; ``on_idle`` returns it to the pool, ``on_lost`` forgets it."""

    _loop: asyncio.AbstractEventLoop  # set with the transport (connection_made)

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
        self._head_lines = 0  # line ends in them (the field limit, before the head ends)
        # the head's bytes while it arrives: the first piece as it came, a bytearray once a
        # second one is added (a head trickling in byte by byte is not copied quadratically)
        self._head: bytes | bytearray = b""
        self._head_start = 0  # where the current message's head starts in it (after a 1xx)
        self._head_key = b""  # the last head split (_fields)
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
        self.deadline = 0.0  # loop time by which the response head is due (the pool's sweep)

    # -- the pool's side -----------------------------------------------------------------------

    @property
    def usable(self) -> bool:
        return not self.closed and self._transport is not None and not self._transport.is_closing()

    def start(self, head_request: bool, read_timeout: float) -> asyncio.Future[UpstreamResponse]:
        """Begin an exchange; the future resolves with the response head."""
        # the loop the transport runs on: asyncio.get_running_loop() costs a getpid system
        # call on Python 3.11 (a fork check), twice per forwarded request before this
        self._head_waiter = self._loop.create_future()
        self._response = None
        self._head_bytes = 0
        self._head_lines = 0
        self._head = b""
        self._head_start = 0
        self._head_request = head_request
        self._read_timeout = read_timeout
        self._received = False
        return self._head_waiter

    @property
    def waiting(self) -> bool:
        """Whether an exchange waits for its response head."""
        waiter = self._head_waiter
        return waiter is not None and not waiter.done()

    def expire(self, error: UpstreamError) -> None:
        """The response head is overdue: the exchange fails with ``error``. A head arriving
        after this finds nobody waiting and closes the connection (on_headers_complete)."""
        waiter = self._head_waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(error)

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
        self._loop = asyncio.get_running_loop()

    def data_received(self, data: bytes) -> None:
        self._received = True
        if self._head_waiter is None and self._response is None:
            # bytes nobody asked for: the connection is out of step, never reuse it
            self.abort()
            return
        if self._response is None:  # inside the head: keep its bytes for _fields
            head = self._head
            if not head:
                self._head = data
            elif isinstance(head, bytearray):
                head += data
            else:
                self._head = bytearray(head) + data
        try:
            self._parser.feed_data(data)
            if self._head_waiter is not None and self._response is None:
                # still inside the head: an upstream streaming header lines must not grow the
                # proxy without bound (the head is kept until it ends)
                self._head_lines += data.count(b"\n")
                if self._head_lines > self._max_headers + 1:  # the status line is one
                    raise _HeadTooLarge(f"more than {self._max_headers} response header fields")
                self._head_bytes += len(data)
                if self._head_bytes > self._max_header_bytes:
                    raise _HeadTooLarge(f"response headers exceed {self._max_header_bytes} bytes")
        except _BadHead as exc:
            self._fail(UpstreamError(UpstreamFailure.PROTOCOL, str(exc)))
            self.abort()
        except httptools.HttpParserUpgrade:  # not an HttpParserError
            detail = "the upstream switched protocols (101); only HTTP/1.1 is proxied"
            self._fail(UpstreamError(UpstreamFailure.PROTOCOL, detail))
            self.abort()
        except httptools.HttpParserError as error:  # not `exc`: mypyc types a name once
            # a callback's exception arrives wrapped (HttpParserCallbackError)
            cause = error.__context__
            detail = str(cause) if isinstance(cause, _BadHead) else f"malformed response: {error}"
            self._fail(UpstreamError(UpstreamFailure.PROTOCOL, detail))
            self.abort()

    def eof_received(self) -> bool | None:
        return False  # let the transport close

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._head = b""  # a head cut off keeps no buffer alive
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

    # (no on_header, no on_message_begin: httptools calls only the callbacks defined)

    def on_headers_complete(self) -> None:
        status = self._parser.get_status_code()
        if not 100 <= status <= 599:  # httptools takes any three digits
            self._fail(UpstreamError(UpstreamFailure.PROTOCOL, f"invalid status code {status}"))
            self.abort()
            return
        headers = self._fields()
        if 100 <= status < 200:
            # interim responses (100 Continue, 103 Early Hints) are not forwarded
            self._interim = True
            return
        self._headers = headers
        self._head = b""
        waiter, self._head_waiter = self._head_waiter, None
        if waiter is None or waiter.done():
            self.abort()  # a response nobody waits for: out of step, or the wait timed out
            return
        response = UpstreamResponse(status, self._headers, self, self._read_timeout, self._head_key)
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
        transport = self._transport
        if (
            self._parser.should_keep_alive()
            and not self.closed
            and transport is not None
            and not transport.is_closing()
        ):
            self.idle_since = self._loop.time()
            self._on_idle(self)
        else:
            self.abort()

    # -- helpers -----------------------------------------------------------------------------

    def _fields(self) -> Headers:
        """The header fields of the head llhttp just completed, names lower-cased, values
        without their leading whitespace (as llhttp hands them: it keeps trailing whitespace).

        llhttp requires CRLF line ends, so the head ends at the first blank line after where
        this message started; a 1xx head moves that start past itself.
        """
        head = self._head
        start = self._head_start
        end = head.find(b"\r\n\r\n", start)
        if end < 0:  # llhttp took a head without CRLF CRLF: never split it some other way
            raise _BadHead("malformed response: the head does not end with CRLF CRLF")
        self._head_start = end + 4
        # a slice of bytes is bytes already (the head came in one piece: nearly always)
        key = head[start:end] if isinstance(head, bytes) else bytes(head[start:end])
        self._head_key = key
        fields = _SPLIT.get(key)
        if fields is None:
            fields = _split(key)
            remember(_SPLIT, key, fields, _SPLIT_ENTRIES, _SPLIT_KEY_BYTES)
        if len(fields) > self._max_headers:
            raise _HeadTooLarge(f"more than {self._max_headers} response header fields")
        return list(fields)  # the response's own list: its readers may not change the cached one

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
