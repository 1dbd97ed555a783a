"""Test helpers for the proxy: a real canned-response HTTP server and an in-process app run."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from slotwise.proxy.app import ProxyApp
from slotwise.proxy.decision_codec import decode_stored
from slotwise.proxy.decision_log import encode_record
from slotwise.proxy.entry import AsgiEntry
from tests.support.servers import free_port
from tests.support.timing import PATIENT_DEADLINES

# the example ad server's home-top creative, as a JSON ad answer (cmp-spring: spring_sale)
SPRING_AD: dict[str, Any] = {
    "placement": "home-top",
    "campaign_id": "cmp-spring",
    "creative": {
        "headline": "Spring collection",
        "image_url": "https://cdn.example/spring.jpg",
        "cta": "Shop",
        "click_url": "https://shop.example/spring",
    },
    "tracking": {"impressions": []},
}


@dataclass
class Canned:
    """A response the fake upstream sends verbatim (head and body as raw bytes)."""

    status: int = 200
    headers: Sequence[tuple[str, str]] = ()
    body: bytes = b""
    chunked: bool = False
    delay: float = 0.0  # seconds before answering (hang tests)


@dataclass
class UpstreamServer:
    """A real HTTP/1.1 server on 127.0.0.1 answering from ``routes`` (path -> Canned)."""

    routes: dict[str, Canned | Callable[[bytes, dict[str, str], bytes], Canned]] = field(
        default_factory=dict
    )
    requests: list[tuple[bytes, dict[str, str], bytes]] = field(default_factory=list)
    port: int = 0
    _server: asyncio.Server | None = None
    _writers: set[asyncio.StreamWriter] = field(default_factory=set)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for writer in list(self._writers):
                writer.close()
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, target, _ = lines[0].split(" ", 2)
                headers: dict[str, str] = {}
                for line in lines[1:]:
                    if line:
                        name, _, value = line.partition(":")
                        headers[name.strip().lower()] = value.strip()
                body = b""
                if "content-length" in headers:
                    body = await reader.readexactly(int(headers["content-length"]))
                elif headers.get("transfer-encoding") == "chunked":
                    while True:
                        size = int((await reader.readuntil(b"\r\n")).strip(), 16)
                        chunk = await reader.readexactly(size + 2)
                        if size == 0:
                            break
                        body += chunk[:-2]
                self.requests.append((target.encode(), headers, body))
                route = self.routes.get(target.split("?")[0])
                if route is None:
                    canned = Canned(404, [("Content-Type", "text/plain")], b"no route\n")
                elif callable(route):
                    canned = route(target.encode(), headers, body)
                else:
                    canned = route
                if canned.delay:
                    await asyncio.sleep(canned.delay)
                writer.write(_render(canned, method == "HEAD"))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()


def _render(canned: Canned, head_only: bool) -> bytes:
    lines = [f"HTTP/1.1 {canned.status} X"]
    lines += [f"{name}: {value}" for name, value in canned.headers]
    if canned.chunked:
        lines.append("Transfer-Encoding: chunked")
        half = len(canned.body) // 2
        parts = [p for p in (canned.body[:half], canned.body[half:]) if p]
        payload = b"".join(b"%x\r\n%b\r\n" % (len(p), p) for p in parts) + b"0\r\n\r\n"
    else:
        lines.append(f"Content-Length: {len(canned.body)}")
        payload = canned.body
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return head if head_only else head + payload


@asynccontextmanager
async def upstream_server(routes: Mapping[str, Any] | None = None) -> AsyncIterator[UpstreamServer]:
    server = UpstreamServer(dict(routes or {}))
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@asynccontextmanager
async def running(app: ProxyApp | AsgiEntry) -> AsyncIterator[httpx.AsyncClient]:
    """Run the app's lifespan and give an httpx client talking to it in-process."""
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    task = asyncio.create_task(app({"type": "lifespan"}, inbox.get, outbox.put))
    await inbox.put({"type": "lifespan.startup"})
    started = await outbox.get()
    assert started["type"] == "lifespan.startup.complete", started
    transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 50000))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://proxy.test") as client:
            yield client
    finally:
        await inbox.put({"type": "lifespan.shutdown"})
        await outbox.get()
        await task


async def wait_ready(client: httpx.AsyncClient, attempts: int = 300) -> None:
    """Wait until a proxy process answers ``/_sw/ready`` with 200 (about 15 s at most)."""
    for _ in range(attempts):
        try:
            if (await client.get("/_sw/ready")).status_code == 200:
                return
        except httpx.TransportError:
            pass
        await asyncio.sleep(0.05)
    raise AssertionError("slotwise serve did not become ready")


def stored_json(data: bytes) -> Any:
    """A decisions-log entry (the store's compact form) as the JSON object of the record."""
    return json.loads(encode_record(decode_stored(data)))


@asynccontextmanager
async def served(
    upstream: str, policies: Path, *extra: str, env: Mapping[str, str] | None = None
) -> AsyncIterator[tuple[asyncio.subprocess.Process, str]]:
    """`slotwise serve` as an operator runs it (builtin providers), until the block ends: its
    process and its base URL once it answers /_sw/ready; then stopped (:func:`stop_served`)."""
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "slotwise", "serve", "--upstream", upstream,
        "--policies", str(policies), "--port", str(port), *extra,
        env={
            **os.environ,
            "SLOTWISE_PLUGINS": "builtins",
            **PATIENT_DEADLINES,
            **(env or {}),
        },
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=base) as client:
            await wait_ready(client, attempts=600)
        yield process, base
    finally:
        await stop_served(process)


@asynccontextmanager
async def serve_process(
    upstream: str, policies: Path, *extra: str, env: Mapping[str, str] | None = None
) -> AsyncIterator[str]:
    """:func:`served`, for a test that needs only the base URL."""
    async with served(upstream, policies, *extra, env=env) as (_, base):
        yield base


async def stop_served(process: asyncio.subprocess.Process) -> None:
    """SIGTERM, and the server must exit within 20 s; killed with its workers if not (nothing
    is left behind)."""
    if process.returncode is not None:
        return
    process.terminate()
    try:
        await asyncio.wait_for(process.wait(), 20)
    except TimeoutError:
        for worker in children(process.pid):
            os.kill(worker, 9)
        process.kill()
        await process.wait()
        raise


def children(pid: int) -> set[int]:
    """The PIDs whose parent is ``pid`` (Linux /proc)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.add(int(entry.name))
    return found


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (not exited, not a zombie)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")
