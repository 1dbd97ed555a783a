"""A slotwise proxy in-process, in front of a fake upstream, for plugin authors' tests.

::

    async with proxy_client(
        {"/ad.json": Canned.json({"campaign_id": "cmp-rain", "creative": {...}})},
        policies={"rain.sw": POLICY_TEXT},
        plugins="builtins,weather",
    ) as proxy:
        response = await proxy.client.get("/ad.json", headers={"CF-IPCountry": "DE"})
        assert proxy.upstream.requests[0].path == "/ad.json"

The upstream is a real HTTP/1.1 server on 127.0.0.1 answering canned responses; the proxy is
``slotwise.proxy.app.ProxyApp`` with its lifespan run, reached through ``httpx.ASGITransport``.
"""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx


@dataclass(frozen=True)
class Canned:
    """A response the fake upstream sends: status, headers, body, optional delay (seconds)."""

    status: int = 200
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""
    delay: float = 0.0

    @classmethod
    def json(cls, document: Any, status: int = 200, delay: float = 0.0) -> Canned:
        return cls(
            status, (("Content-Type", "application/json"),), json.dumps(document).encode(), delay
        )


@dataclass(frozen=True)
class SeenRequest:
    """A request the fake upstream received."""

    method: str
    path: str
    headers: Mapping[str, str]
    body: bytes


@dataclass
class FakeUpstream:
    """An HTTP/1.1 server on 127.0.0.1 answering ``routes`` (path without query -> Canned)."""

    routes: dict[str, Canned] = field(default_factory=dict)
    requests: list[SeenRequest] = field(default_factory=list)
    _server: asyncio.Server | None = None
    _writers: set[asyncio.StreamWriter] = field(default_factory=set)

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)

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
                head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
                method, target, _ = head[0].split(" ", 2)
                headers = {}
                for line in head[1:]:
                    name, sep, value = line.partition(":")
                    if sep:
                        headers[name.strip().lower()] = value.strip()
                length = int(headers.get("content-length", "0") or 0)
                body = await reader.readexactly(length) if length else b""
                path = target.split("?", 1)[0]
                self.requests.append(SeenRequest(method, path, headers, body))
                canned = self.routes.get(path) or Canned(404, (), b"no such route\n")
                if canned.delay:
                    await asyncio.sleep(canned.delay)
                lines = [f"HTTP/1.1 {canned.status} X"]
                lines += [f"{n}: {v}" for n, v in canned.headers]
                lines.append(f"Content-Length: {len(canned.body)}")
                payload = b"" if method == "HEAD" else canned.body
                writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + payload)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ValueError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()


@dataclass
class ProxyUnderTest:
    """What ``proxy_client`` yields: the httpx client, the fake upstream and the app."""

    client: httpx.AsyncClient
    upstream: FakeUpstream
    app: Any


@asynccontextmanager
async def proxy_client(
    routes: Mapping[str, Canned],
    *,
    policies: Mapping[str, str] | None = None,
    plugins: str | None = None,
    client_ip: str = "203.0.113.7",
    **settings: Any,
) -> AsyncIterator[ProxyUnderTest]:
    """Run a proxy (lifespan included) in front of a fake upstream serving ``routes``.

    ``policies`` maps file names to policy text (checked against the loaded providers'
    schema); ``plugins`` is a ``SLOTWISE_PLUGINS`` selection for this proxy; other keyword
    arguments are configuration keys named ``section_key`` (``proxy_max_body_bytes=...``), as
    ``slotwise.proxy.config.Settings.of`` takes them.
    """
    from slotwise.proxy.app import ProxyApp
    from slotwise.proxy.config import Settings

    upstream = FakeUpstream(dict(routes))
    await upstream.start()
    previous = os.environ.get("SLOTWISE_PLUGINS")
    try:
        with tempfile.TemporaryDirectory(prefix="slotwise-policies-") as directory:
            for name, text in (policies or {}).items():
                (Path(directory) / name).write_text(text, encoding="utf-8")
            if plugins is not None:
                os.environ["SLOTWISE_PLUGINS"] = plugins
            settings.setdefault("tracking_secret", "slotwise-test-secret-0123456789")
            settings.setdefault("proxy_reload_interval", 0.0)
            settings.setdefault("proxy_metrics_public", True)  # read from the client's address
            app = ProxyApp(
                Settings.of(upstream_url=upstream.url, proxy_policies=directory, **settings)
            )
            async with _lifespan(app):
                transport = httpx.ASGITransport(app=app, client=(client_ip, 50000))
                async with httpx.AsyncClient(
                    transport=transport, base_url="http://proxy.test"
                ) as client:
                    yield ProxyUnderTest(client, upstream, app)
    finally:
        if plugins is not None:
            if previous is None:
                os.environ.pop("SLOTWISE_PLUGINS", None)
            else:
                os.environ["SLOTWISE_PLUGINS"] = previous
        await upstream.stop()


@asynccontextmanager
async def _lifespan(app: Any) -> AsyncIterator[None]:
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    task = asyncio.create_task(app({"type": "lifespan"}, inbox.get, outbox.put))
    await inbox.put({"type": "lifespan.startup"})
    started = await outbox.get()
    if started["type"] != "lifespan.startup.complete":
        await task
        raise RuntimeError(f"the proxy did not start: {started.get('message', started)}")
    try:
        yield
    finally:
        await inbox.put({"type": "lifespan.shutdown"})
        await outbox.get()
        await task
