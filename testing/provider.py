"""Helpers for testing signal providers (used by the shipped pytest plugin, usable alone).

::

    async with provider_set(WeatherProvider, config={"weather": {...}}) as providers:
        got = await gather(providers, make_request(path="/", client_ip="81.2.69.160"))
        assert got.signals["weather.condition"] == "rain"
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import msgspec

from slotwise.plugins import registry
from slotwise.plugins.loaded import ProviderSet
from slotwise.plugins.provider import Provider, ProviderServices
from slotwise.plugins.request import RequestInfo


def make_request(
    path: str = "/",
    *,
    method: str | None = None,
    query: str = "",
    headers: Mapping[str, str] | None = None,
    cookies: Mapping[str, str] | None = None,
    client_ip: str | None = "203.0.113.7",
    user_id: str | None = None,
    received_at: float | None = None,
    body: bytes | Mapping[str, Any] = b"",
) -> RequestInfo:
    """A :class:`RequestInfo` as the proxy would build it, from readable parts.

    ``body`` is the request body: bytes, or a mapping sent as JSON (an OpenRTB bid request);
    ``method`` defaults to ``POST`` with a body, else ``GET``.
    """
    raw = body if isinstance(body, bytes) else msgspec.json.encode(body)
    pairs = list((headers or {}).items())
    if cookies:
        pairs.append(("cookie", "; ".join(f"{k}={v}" for k, v in cookies.items())))
    return RequestInfo.build(
        method or ("POST" if raw else "GET"),
        path,
        query_string=query,
        headers=pairs,
        client_ip=client_ip,
        user_id=user_id,
        received_at=received_at,
        body=raw,
    )


@asynccontextmanager
async def provider_set(
    *providers: type[Provider[Any]] | str,
    config: Mapping[str, Mapping[str, Any]] | None = None,
    services: ProviderServices | None = None,
) -> AsyncIterator[ProviderSet]:
    """Load, configure and start exactly ``providers`` (classes, or names of installed ones).

    Classes are registered for the duration of the block. Configuration errors raise
    :class:`~slotwise.plugins.errors.PluginError` as at start-up.
    """
    undo = [registry.register(p) for p in providers if not isinstance(p, str)]
    try:
        names = [p if isinstance(p, str) else p.name for p in providers]
        loaded = registry.load_providers(config, selection=",".join(names) or "none")
        await loaded.start(services)
        try:
            yield loaded
        finally:
            await loaded.aclose()
    finally:
        for step in undo:
            step()
