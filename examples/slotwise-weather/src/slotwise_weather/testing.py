"""A fake Open-Meteo API on 127.0.0.1, for this package's tests and slotwise's own.

::

    async with FakeWeatherAPI() as api:
        api.current = {"temperature_2m": 14.0, "weather_code": 61}
        config = {"weather": {"api_url": api.url}}
        ...
        assert api.requests[0]["latitude"] == "52.625"

``api.delay`` makes every answer wait (``float("inf")``: never answer); ``api.status`` sets
the HTTP status.
"""

from __future__ import annotations

import asyncio
import json
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl, urlsplit


class FakeWeatherAPI:
    """A tiny HTTP/1.1 server answering ``GET /v1/forecast`` like Open-Meteo."""

    def __init__(self) -> None:
        self.current: dict[str, Any] = {
            "temperature_2m": 21.5,
            "weather_code": 0,
            "wind_speed_10m": 9.0,
            "is_day": 1,
        }
        self.delay = 0.0
        self.status = 200
        self.requests: list[dict[str, str]] = []
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        assert self._server is not None, "use `async with FakeWeatherAPI() as api`"
        port = self._server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/v1/forecast"

    async def __aenter__(self) -> FakeWeatherAPI:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._handlers):
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            target = head.split(b" ", 2)[1].decode()
            self.requests.append(dict(parse_qsl(urlsplit(target).query)))
            if self.delay:
                await asyncio.sleep(self.delay if self.delay != float("inf") else 3600)
            body = json.dumps({"latitude": 0, "longitude": 0, "current": self.current}).encode()
            writer.write(
                f"HTTP/1.1 {self.status} X\r\ncontent-type: application/json\r\n"
                f"content-length: {len(body)}\r\nconnection: close\r\n\r\n".encode()
                + body
            )
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()
            self._handlers.discard(task)
