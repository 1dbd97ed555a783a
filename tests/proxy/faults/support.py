"""The fault suite's rig: the hostile upstream and ``slotwise serve`` as real processes, and a
light keep-alive client that measures latencies (tests/proxy/faults/upstream.py)."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.conftest import REPO
from tests.proxy.support import wait_ready
from tests.support.servers import free_port
from tests.support.timing import PATIENT_DEADLINES

UPSTREAM = Path(__file__).with_name("upstream.py")
POLICIES = REPO / "examples" / "adserver" / "policies"


@dataclass
class Process:
    process: asyncio.subprocess.Process
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@asynccontextmanager
async def upstream() -> AsyncIterator[Process]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(UPSTREAM), stdout=asyncio.subprocess.PIPE
    )
    try:
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), 20)
        yield Process(process, int(line))
    finally:
        await _stop(process)


@asynccontextmanager
async def serve(
    upstream_url: str, *args: str, env: dict[str, str] | None = None
) -> AsyncIterator[Process]:
    """``slotwise serve`` in front of ``upstream_url`` (the example policies), until ready;
    the decision and signals deadlines are 2 s unless ``env`` sets them."""
    port = free_port()
    environment = {
        **os.environ,
        "SLOTWISE_PLUGINS": "builtins",
        **PATIENT_DEADLINES,
        **(env or {}),  # the caller's, deadlines included, win
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "slotwise", "serve", "--upstream", upstream_url,
        "--policies", str(POLICIES), "--port", str(port), *args, env=environment,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            await wait_ready(client)
        yield Process(process, port)
    finally:
        await _stop(process)


async def _stop(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        process.terminate()
        try:
            await asyncio.wait_for(process.wait(), 10)
        except TimeoutError:
            process.kill()
            await process.wait()


@dataclass
class Latencies:
    seconds: list[float] = field(default_factory=list)  # of the 200 answers
    statuses: Counter[int] = field(default_factory=Counter)
    errors: int = 0  # connections that failed (reset, closed)
    elapsed: float = 0.0

    def quantile(self, q: float) -> float:
        ordered = sorted(self.seconds)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("inf")

    @property
    def rate(self) -> float:
        return len(self.seconds) / self.elapsed if self.elapsed else 0.0


def get(path: str, *headers: str) -> bytes:
    extra = "".join(f"{h}\r\n" for h in headers)
    return f"GET {path} HTTP/1.1\r\nHost: shop.test\r\n{extra}\r\n".encode()


async def _response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    if length:
        await reader.readexactly(length)
    return int(head[9:12])


async def measure(
    port: int,
    requests: Sequence[bytes] | bytes,
    *,
    connections: int,
    seconds: float | None = None,
    count: int | None = None,
    timeout: float = 10.0,
) -> Latencies:
    """Send ``requests`` (cycled) over ``connections`` keep-alive connections, one at a time
    on each, for ``seconds`` or ``count`` requests in all; the latency of each answer."""
    if isinstance(requests, bytes):
        requests = [requests]
    out = Latencies()
    sent = 0
    started = time.perf_counter()
    deadline = started + seconds if seconds is not None else float("inf")

    def more() -> bool:
        return time.perf_counter() < deadline and (count is None or sent < count)

    async def one() -> None:
        nonlocal sent
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            out.errors += 1
            return
        try:
            while more():
                request = requests[sent % len(requests)]
                sent += 1
                began = time.perf_counter()
                writer.write(request)
                status = await asyncio.wait_for(_response(reader), timeout)
                out.statuses[status] += 1
                if status == 200:
                    out.seconds.append(time.perf_counter() - began)
        except (OSError, asyncio.IncompleteReadError, TimeoutError):
            out.errors += 1
        finally:
            writer.close()

    await asyncio.gather(*(one() for _ in range(connections)))
    out.elapsed = time.perf_counter() - started
    return out


@asynccontextmanager
async def hung(port: int, path: str, count: int) -> AsyncIterator[list[asyncio.Task[int | None]]]:
    """``count`` requests to ``path`` left waiting, each on its own connection; their
    statuses (None: no answer) when the block ends."""

    async def one() -> int | None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(get(path))
            return await _response(reader)
        except (OSError, asyncio.IncompleteReadError):
            return None
        finally:
            writer.close()

    tasks = [asyncio.create_task(one()) for _ in range(count)]
    try:
        yield tasks
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
