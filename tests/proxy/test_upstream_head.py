"""The upstream response head, split into fields once it is complete (not per llhttp callback):
the same fields however the bytes arrive, interim responses skipped, llhttp's refusals kept."""

from __future__ import annotations

from typing import Any

import pytest

from slotwise.proxy.upstream import UpstreamError, UpstreamFailure, UpstreamResponse
from slotwise.proxy.upstream.connection import Connection

HEAD = (
    b"HTTP/1.1 200 OK\r\n"
    b"Server: nginx\r\n"
    b"Content-Type:application/json; charset=utf-8\r\n"
    b"X-Trailing: kept as llhttp gives it  \r\n"
    b"Location:  http://ads.example:8080/a?b=c:d\r\n"
    b"X-Empty:\r\n"
    b'ETag: "Ab-Cd"\r\n'
    b"Content-Length: 5\r\n"
    b"\r\n"
)
FIELDS = [
    (b"server", b"nginx"),
    (b"content-type", b"application/json; charset=utf-8"),
    (b"x-trailing", b"kept as llhttp gives it  "),
    (b"location", b"http://ads.example:8080/a?b=c:d"),
    (b"x-empty", b""),
    (b"etag", b'"Ab-Cd"'),
    (b"content-length", b"5"),
]
INTERIM = (
    b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n"
)


class _Transport:
    def __init__(self) -> None:
        self.aborted = False

    def write(self, data: bytes) -> None:
        pass

    def is_closing(self) -> bool:
        return self.aborted

    def abort(self) -> None:
        self.aborted = True

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


def _connection(**limits: Any) -> tuple[Connection, _Transport, list[Connection]]:
    idle: list[Connection] = []
    conn = Connection(idle.append, lambda c: None, **limits)
    transport = _Transport()
    conn.connection_made(transport)  # type: ignore[arg-type]
    return conn, transport, idle


async def _exchange(pieces: list[bytes], **limits: Any) -> tuple[UpstreamResponse, bool]:
    conn, _, idle = _connection(**limits)
    waiter = conn.start(False, 1.0)
    for piece in pieces:
        conn.data_received(piece)
    response = await waiter
    return response, bool(idle)


def _pieces(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


@pytest.mark.parametrize("size", [1, 2, 7, 64, 10_000])
@pytest.mark.parametrize("interim", [b"", INTERIM], ids=["final only", "after 100 and 103"])
async def test_the_fields_are_the_same_however_the_head_arrives(size: int, interim: bytes) -> None:
    response, reused = await _exchange(_pieces(interim + HEAD + b"hello", size))
    assert response.status == 200
    assert response.headers == FIELDS
    assert await response.read_up_to(100) == (b"hello", True)
    assert reused  # the whole exchange was read: the connection goes back to the pool


async def test_a_second_exchange_on_the_connection_reads_its_own_head() -> None:
    conn, _, idle = _connection()
    for body in (b"first", b"again"):
        waiter = conn.start(False, 1.0)
        head = b"HTTP/1.1 200 OK\r\nX-Body: %s\r\nContent-Length: 5\r\n\r\n" % body
        conn.data_received(head[:20])
        conn.data_received(head[20:] + body)
        response = await waiter
        assert response.headers == [(b"x-body", body), (b"content-length", b"5")]
        assert await response.read_up_to(10) == (body, True)
    assert idle == [conn, conn]


@pytest.mark.parametrize(
    "head",
    [
        b"HTTP/1.1 200 OK\r\nX-Folded: a\r\n b\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nX-Space : a\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 200 OK\nX-Bare-LF: a\nContent-Length: 0\n\n",
        b"HTTP/1.1 200 OK\r\nX-Control: a\x01b\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
    ],
    ids=["obs-fold", "space before colon", "bare LF", "control byte", "two lengths"],
)
async def test_heads_llhttp_refuses_are_still_refused(head: bytes) -> None:
    with pytest.raises(UpstreamError) as caught:
        await _exchange([head])
    assert caught.value.failure is UpstreamFailure.PROTOCOL
    assert caught.value.detail.startswith("malformed response")


async def test_too_many_fields_in_one_piece_is_refused() -> None:
    head = b"HTTP/1.1 200 OK\r\n" + b"X: 1\r\n" * 5 + b"Content-Length: 0\r\n\r\n"
    with pytest.raises(UpstreamError) as caught:
        await _exchange([head], max_headers=5)
    assert caught.value.failure is UpstreamFailure.PROTOCOL
    assert "more than 5 response header fields" in caught.value.detail
    response, _ = await _exchange([head], max_headers=6)
    assert len(response.headers) == 6


async def test_a_head_seen_before_gives_the_same_fields_in_a_list_of_its_own() -> None:
    first, _ = await _exchange([HEAD + b"hello"])
    first.headers.append((b"x-added", b"by a reader"))  # readers may change their own list
    second, _ = await _exchange([HEAD, b"hello"])
    assert second.headers == FIELDS
    assert second.head == first.head == HEAD[: HEAD.index(b"\r\n\r\n")]


async def test_the_field_limit_holds_for_a_head_seen_before() -> None:
    head = b"HTTP/1.1 200 OK\r\n" + b"X: 1\r\n" * 5 + b"Content-Length: 0\r\n\r\n"
    await _exchange([head], max_headers=6)  # split and kept
    with pytest.raises(UpstreamError) as caught:
        await _exchange([head], max_headers=5)
    assert "more than 5 response header fields" in caught.value.detail
