"""The upstream client against real sockets: keep-alive, chunking, errors and timeouts."""

from __future__ import annotations

import asyncio
import time

import pytest

from slotwise.proxy.upstream import (
    Origin,
    PoolSettings,
    UpstreamError,
    UpstreamFailure,
    UpstreamPool,
)
from slotwise.proxy.upstream.connection import Connection, UpstreamResponse
from tests.proxy.support import Canned, upstream_server
from tests.support.servers import free_port


def test_origin_parsing() -> None:
    assert Origin.parse("http://ads.example").host_header == b"ads.example"
    assert Origin.parse("http://127.0.0.1:8081").port == 8081
    assert Origin.parse("https://[::1]:8443").host_header == b"[::1]:8443"
    for bad in ("ftp://x", "http://", "http://x/path", "http://x:99999"):
        with pytest.raises(ValueError):
            Origin.parse(bad)


async def test_keep_alive_reuses_one_connection() -> None:
    async with upstream_server({"/a": Canned(200, [], b"hello")}) as server:
        pool = UpstreamPool(Origin.parse(server.url))
        for _ in range(5):
            response = await pool.request(b"GET", b"/a", [])
            assert (await response.read_up_to(100)) == (b"hello", True)
        assert pool.open_connections == 1 and pool.idle_connections == 1
        await pool.aclose()


async def test_chunked_response_and_request_bodies() -> None:
    def echo(target: bytes, headers: dict[str, str], body: bytes) -> Canned:
        return Canned(200, [("X-TE", headers.get("transfer-encoding", "-"))], body, chunked=True)

    async with upstream_server({"/echo": echo}) as server:
        pool = UpstreamPool(Origin.parse(server.url))
        response = await pool.request(b"POST", b"/echo", [], b"0123456789")
        assert await response.read_up_to(1000) == (b"0123456789", True)

        async def parts():  # type: ignore[no-untyped-def]
            for part in (b"abc", b"", b"defg"):
                yield part

        response = await pool.request(b"POST", b"/echo", [], parts())
        assert await response.read_up_to(1000) == (b"abcdefg", True)
        assert (b"x-te", b"chunked") in response.headers
        await pool.aclose()


async def test_refused_connection_fails_fast() -> None:
    pool = UpstreamPool(Origin.parse(f"http://127.0.0.1:{free_port()}"))
    started = time.monotonic()
    with pytest.raises(UpstreamError) as caught:
        await pool.request(b"GET", b"/", [])
    assert caught.value.failure is UpstreamFailure.CONNECT and caught.value.failure.status == 502
    assert time.monotonic() - started < 1.5  # not the 2 s connect timeout
    assert pool.open_connections == 0


async def test_hang_times_out_at_the_configured_timeout() -> None:
    async with upstream_server({"/slow": Canned(200, [], b"late", delay=2.0)}) as server:
        pool = UpstreamPool(Origin.parse(server.url), PoolSettings(response_timeout=0.2))
        started = time.monotonic()
        with pytest.raises(UpstreamError) as caught:
            await pool.request(b"GET", b"/slow", [])
        assert caught.value.failure.status == 504
        assert 0.15 < time.monotonic() - started < 1.8  # the timeout, not the late answer
        await pool.aclose()


async def test_one_sweep_times_out_every_late_head_and_stops_when_none_waits() -> None:
    routes = {"/slow": Canned(200, [], b"late", delay=2.0), "/fast": Canned(200, [], b"ok")}
    async with upstream_server(routes) as server:
        pool = UpstreamPool(Origin.parse(server.url), PoolSettings(response_timeout=0.2))
        started = time.monotonic()
        late = [asyncio.ensure_future(pool.begin(b"GET", b"/slow", [])) for _ in range(3)]
        fast = await pool.request(b"GET", b"/fast", [])
        assert await fast.read_up_to(10) == (b"ok", True)
        for waiting in late:
            with pytest.raises(UpstreamError) as caught:
                await waiting
            assert caught.value.failure is UpstreamFailure.TIMEOUT
        assert 0.15 < time.monotonic() - started < 1.8  # the timeout, not the late answer
        await asyncio.sleep(0.2)  # a sweep or two more: nothing waits, so no timer is left
        assert pool._sweep is None and not pool._watched
        await pool.aclose()


async def _one_shot_server(reply: bytes) -> tuple[asyncio.Server, int, list[bytes]]:
    """Answers the first request on each connection with ``reply`` and closes."""
    seen: list[bytes] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(await reader.read(65536))
        writer.write(reply)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1], seen


@pytest.mark.parametrize("how", ["request", "begin"])
async def test_stale_keep_alive_is_retried_only_without_a_body(how: str) -> None:
    # the server promises keep-alive and then closes: the next request meets a dead socket
    reply = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    server, port, seen = await _one_shot_server(reply)
    pool = UpstreamPool(Origin.parse(f"http://127.0.0.1:{port}"), PoolSettings(idle_expiry=60))
    first = await pool.request(b"GET", b"/", [])
    await first.read_up_to(10)
    await asyncio.sleep(0.05)  # the server's close arrives; the pool may not have noticed
    if how == "begin":
        second = await pool.begin(b"GET", b"/", [])
    else:
        second = await pool.request(b"GET", b"/", [])
    assert await second.read_up_to(10) == (b"ok", True)
    # a request with a body is never sent twice
    third = await pool.request(b"GET", b"/", [])
    await third.read_up_to(10)
    sent_before = len(seen)
    try:
        response = await pool.request(b"POST", b"/", [], b"payload")
        await response.read_up_to(10)
    except UpstreamError as exc:
        assert exc.failure is UpstreamFailure.DISCONNECTED
    assert sum(b"payload" in s for s in seen[sent_before:]) <= 1
    await pool.aclose()
    server.close()
    await server.wait_closed()


async def test_malformed_response_is_a_protocol_error() -> None:
    server, port, _ = await _one_shot_server(b"NOT HTTP AT ALL\r\n\r\n")
    pool = UpstreamPool(Origin.parse(f"http://127.0.0.1:{port}"))
    with pytest.raises(UpstreamError) as caught:
        await pool.request(b"GET", b"/", [])
    assert caught.value.failure in (UpstreamFailure.PROTOCOL, UpstreamFailure.DISCONNECTED)
    assert caught.value.failure.status == 502
    await pool.aclose()
    server.close()
    await server.wait_closed()


@pytest.mark.parametrize(
    ("reply", "detail"),
    [
        (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n", "101"),
        (b"HTTP/1.1 999 Weird\r\nContent-Length: 0\r\n\r\n", "invalid status code 999"),
    ],
    ids=["switching protocols", "status out of range"],
)
async def test_an_answer_the_proxy_cannot_forward_is_a_protocol_error(
    reply: bytes, detail: str
) -> None:
    server, port, _ = await _one_shot_server(reply)
    pool = UpstreamPool(Origin.parse(f"http://127.0.0.1:{port}"))
    with pytest.raises(UpstreamError) as caught:
        await pool.request(b"GET", b"/", [])
    assert caught.value.failure is UpstreamFailure.PROTOCOL
    assert detail in caught.value.detail
    await pool.aclose()
    server.close()
    await server.wait_closed()


async def test_body_delimited_by_close_and_head_requests() -> None:
    server, port, _ = await _one_shot_server(
        b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil-eof"
    )
    pool = UpstreamPool(Origin.parse(f"http://127.0.0.1:{port}"))
    response = await pool.request(b"GET", b"/", [])
    assert await response.read_up_to(100) == (b"until-eof", True)
    await pool.aclose()
    server.close()
    await server.wait_closed()
    async with upstream_server({"/h": Canned(200, [], b"body-not-sent-for-head")}) as up:
        pool = UpstreamPool(Origin.parse(up.url))
        response = await pool.request(b"HEAD", b"/h", [])
        assert response.status == 200 and await response.read_up_to(100) == (b"", True)
        await pool.aclose()


async def test_pool_limit_queues_and_times_out() -> None:
    async with upstream_server({"/slow": Canned(200, [], b"x", delay=0.3)}) as server:
        pool = UpstreamPool(
            Origin.parse(server.url), PoolSettings(max_connections=1, pool_timeout=0.05)
        )
        first = asyncio.ensure_future(pool.request(b"GET", b"/slow", []))
        await asyncio.sleep(0.01)
        with pytest.raises(UpstreamError) as caught:
            await pool.request(b"GET", b"/slow", [])
        assert caught.value.failure is UpstreamFailure.POOL_TIMEOUT
        response = await first
        await response.read_up_to(10)
        await pool.aclose()


async def test_begin_writes_before_it_is_awaited() -> None:
    async with upstream_server({"/a": Canned(200, [], b"hello")}) as server:
        pool = UpstreamPool(Origin.parse(server.url))
        await (await pool.request(b"GET", b"/a", [])).read_up_to(10)  # one idle connection
        pending = pool.begin(b"POST", b"/a", [], b"body")
        await asyncio.sleep(0.05)  # the request is on the wire although nobody awaited yet
        assert server.requests[-1] == (b"/a", server.requests[-1][1], b"body")
        response = await pending
        assert await response.read_up_to(10) == (b"hello", True)
        await pool.aclose()


class _Transport(asyncio.Transport):
    """A socket's flow control, without the socket: all a Connection's read_up_to needs."""

    def __init__(self) -> None:
        super().__init__()
        self.paused = False

    def pause_reading(self) -> None:
        self.paused = True

    def resume_reading(self) -> None:
        self.paused = False

    def is_closing(self) -> bool:
        return False


def _socketless() -> Connection:
    """A real Connection on a _Transport."""
    connection = Connection(lambda conn: None, lambda conn: None)
    connection.connection_made(_Transport())
    return connection


async def test_a_body_already_whole_but_over_the_limit_is_not_within_it() -> None:
    # a fast upstream can deliver a large body before the proxy reads it: the limit still holds
    response = UpstreamResponse(200, [], _socketless(), read_timeout=1.0)
    response._feed(b"x" * 300_000)
    response._finish()
    data, within = await response.read_up_to(100_000)
    assert (len(data), within) == (300_000, False)
    assert await response.next_chunk() == b""  # nothing more follows


async def test_a_whole_body_within_the_limit_is_complete() -> None:
    response = UpstreamResponse(200, [], _socketless(), read_timeout=1.0)
    response._feed(b"y" * 1000)
    response._finish()
    assert await response.read_up_to(1000) == (b"y" * 1000, True)


async def test_a_read_larger_than_the_flow_control_window_does_not_stall() -> None:
    # A socket delivers what it is not paused for: 400 KB in 100 KB pieces, to a read asking
    # for up to 1 MB. Flow control pauses at 256 KB; the read must resume it, or it waits for
    # bytes that never come until the read timeout.
    transport = _Transport()
    connection = Connection(lambda conn: None, lambda conn: None)
    connection.connection_made(transport)
    response = UpstreamResponse(200, [], connection, read_timeout=0.5)

    async def socket() -> None:
        for _ in range(4):
            while transport.paused:
                await asyncio.sleep(0.01)
            response._feed(b"z" * 100_000)
            await asyncio.sleep(0)
        response._finish()

    feeding = asyncio.create_task(socket())
    data, within = await response.read_up_to(1 << 20)
    await feeding
    assert (len(data), within) == (400_000, True)
    assert not transport.paused


async def _streaming_head_server(
    prefix: bytes, line: bytes
) -> tuple[asyncio.Server, int, list[int]]:
    """An upstream that answers with a status line and ``prefix``, then ``line`` until cut off."""
    sent = [0]

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\n" + prefix)
        try:
            while sent[0] < 64 << 20:  # stops by itself: 64 MB at most
                writer.write(line * 64)
                sent[0] += len(line) * 64
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    port = free_port()
    server = await asyncio.start_server(handle, "127.0.0.1", port)
    return server, port, sent


@pytest.mark.parametrize(
    ("prefix", "line", "detail"),
    [
        (b"", b"X-Pad: " + b"a" * 1000 + b"\r\n", "response headers exceed 65536 bytes"),
        (b"X-Long: ", b"a" * 1024, "response headers exceed 65536 bytes"),
        (b"", b"X: 1\r\n", "more than 256 response header fields"),
    ],
    ids=["endless header lines", "one header value that never ends", "too many fields"],
)
async def test_an_endless_response_head_is_cut_off(prefix: bytes, line: bytes, detail: str) -> None:
    # issue 21, item 5: the head grew the proxy by gigabytes; now it is a 502 at the limit
    server, port, sent = await _streaming_head_server(prefix, line)
    pool = UpstreamPool(Origin.parse(f"http://127.0.0.1:{port}"))
    with pytest.raises(UpstreamError) as caught:
        await pool.request(b"GET", b"/", [])
    assert caught.value.failure is UpstreamFailure.PROTOCOL
    assert caught.value.failure.status == 502
    assert detail in caught.value.detail
    assert sent[0] < 8 << 20  # cut off early, not after the upstream gave up
    await pool.aclose()
    server.close()
    await server.wait_closed()


def test_routes_are_the_first_path_segments() -> None:
    from slotwise.proxy.upstream.pool import route_of

    assert route_of(b"/api/search?q=1", 1) == b"/api"
    assert route_of(b"/api/search?q=1", 2) == b"/api/search"
    assert route_of(b"/api?x=/b/c", 1) == b"/api"
    assert route_of(b"/api", 2) == b"/api"
    assert route_of(b"/", 1) == b"/"


async def test_a_route_past_its_budget_waits_and_leaves_the_others_alone() -> None:
    routes = {"/slow/a": Canned(200, [], b"x", delay=0.5), "/fast/b": Canned(200, [], b"y")}
    async with upstream_server(routes) as server:
        settings = PoolSettings(max_connections=4, max_per_route=2, pool_timeout=0.2)
        pool = UpstreamPool(Origin.parse(server.url), settings)
        slow = [asyncio.ensure_future(pool.request(b"GET", b"/slow/a", [])) for _ in range(2)]
        await asyncio.sleep(0.05)
        # the route's third request waits for one of its own, then gives up
        with pytest.raises(UpstreamError) as caught:
            await pool.request(b"GET", b"/slow/x", [])
        assert caught.value.failure is UpstreamFailure.POOL_TIMEOUT
        assert "/slow" in str(caught.value)
        # meanwhile another route is served at once, through begin() and request()
        for _ in range(3):
            fast = await pool.begin(b"GET", b"/fast/b", [])
            assert await fast.read_up_to(10) == (b"y", True)
        for response in await asyncio.gather(*slow):
            await response.read_up_to(10)
        await asyncio.sleep(0)
        assert pool._held == {}  # every route's connections given back
        # a request waiting for its route takes the first connection given back
        held = [asyncio.ensure_future(pool.request(b"GET", b"/slow/a", [])) for _ in range(3)]
        done = await asyncio.gather(*held, return_exceptions=True)
        assert sum(isinstance(r, UpstreamError) for r in done) == 1  # 0.5 s > pool_timeout
        for response in done:
            if isinstance(response, UpstreamResponse):
                await response.read_up_to(10)
        await pool.aclose()
