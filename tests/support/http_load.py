"""A minimal HTTP/1.1 keep-alive load generator (asyncio streams), lighter than an HTTP client
library so that the server under test, not the client, is what a benchmark measures."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class LoadFigures:
    requests: int
    ok: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.ok / self.seconds if self.seconds else 0.0


async def _read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n"):
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    if length:
        await reader.readexactly(length)
    return status


async def hammer(
    port: int, make_request: Callable[[int], bytes], *, connections: int, seconds: float
) -> LoadFigures:
    """Send requests built by ``make_request(n)`` over ``connections`` for ``seconds``."""
    deadline = time.monotonic() + seconds
    counter = 0
    ok = 0
    sent = 0

    async def connection() -> None:
        nonlocal counter, ok, sent
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while time.monotonic() < deadline:
                counter += 1
                writer.write(make_request(counter))
                sent += 1
                if await _read_response(reader) == 200:
                    ok += 1
        finally:
            writer.close()

    started = time.monotonic()
    await asyncio.gather(*(connection() for _ in range(connections)))
    return LoadFigures(sent, ok, time.monotonic() - started)


def post(path: str, body: bytes) -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


def get(path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n".encode()
