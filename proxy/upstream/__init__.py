"""The upstream HTTP client behind one small interface.

The proxy talks to its upstream only through :class:`Upstream`. The implementation is
:class:`UpstreamPool`, an asyncio Protocol + httptools keep-alive pool chosen by measurement
(docs/benchmarks.md, section "Proxy"): it served several times the requests of httpx or
aiohttp on one worker.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, Awaitable, Sequence
from typing import Protocol

from slotwise.proxy.upstream.connection import UpstreamResponse
from slotwise.proxy.upstream.errors import UpstreamError, UpstreamFailure
from slotwise.proxy.upstream.pool import Origin, PoolSettings, UpstreamPool

__all__ = [
    "Origin",
    "PoolSettings",
    "Upstream",
    "UpstreamError",
    "UpstreamFailure",
    "UpstreamPool",
    "UpstreamResponse",
]


class Upstream(Protocol):
    """Send a request to the fixed upstream origin; the response head comes back first."""

    async def request(
        self,
        method: bytes,
        target: bytes,
        headers: Sequence[tuple[bytes, bytes]],
        body: bytes | AsyncIterable[bytes] = b"",
    ) -> UpstreamResponse: ...

    def begin(
        self,
        method: bytes,
        target: bytes,
        headers: Sequence[tuple[bytes, bytes]],
        body: bytes = b"",
    ) -> Awaitable[UpstreamResponse]:
        """Start the request now (written at once on an idle connection); await it later."""
        ...

    async def aclose(self) -> None: ...
