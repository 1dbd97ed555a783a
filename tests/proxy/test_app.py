"""The app's lifespan hands each configuration table to its owner, and refuses bad ones."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from slotwise.proxy.app import ProxyApp
from slotwise.proxy.config import Settings
from tests.proxy.support import running, upstream_server


@pytest.fixture(autouse=True)
def _builtin_providers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLOTWISE_PLUGINS", "builtins")


async def test_events_table_sets_the_batch_limits() -> None:
    async with upstream_server({}) as server:
        settings = Settings.of(
            upstream_url=server.url, proxy_policies="", events={"max_batch_events": 2}
        )
        async with running(ProxyApp(settings)) as client:
            events = [{"type": "page_view", "id": f"e{i}", "anonymous_id": "a1"} for i in range(3)]
            too_many = await client.post("/_sw/events", json={"events": events})
            assert too_many.status_code == 413
            assert "2" in too_many.text
            ok = await client.post("/_sw/events", json={"events": events[:2]})
            assert ok.status_code == 200, ok.text


async def test_plugin_tables_reach_the_providers() -> None:
    # the consent provider's default level decides for requests that state nothing
    async with upstream_server({}) as server:
        settings = Settings.of(
            upstream_url=server.url,
            proxy_policies="",
            plugins={"consent": {"default_level": "personal"}},
        )
        app = ProxyApp(settings)
        async with running(app):
            assert app.runtime is not None and app.runtime.engine.providers is not None
            consent = app.runtime.engine.providers.by_name["consent"].provider
            assert consent.config.default_level == "personal"


async def test_a_bad_plugin_table_stops_the_start_naming_the_provider() -> None:
    settings = Settings.of(
        upstream_url="http://127.0.0.1:9", proxy_policies="", plugins={"geo": {"bogus": 1}}
    )
    failed = await _start(ProxyApp(settings))
    assert failed["type"] == "lifespan.startup.failed"
    assert "geo" in failed["message"] and "bogus" in failed["message"]


async def _start(app: ProxyApp) -> dict[str, Any]:
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    task = asyncio.create_task(app({"type": "lifespan"}, inbox.get, outbox.put))
    await inbox.put({"type": "lifespan.startup"})
    message = await outbox.get()
    await task
    return message


async def test_own_endpoints_dispatch_from_one_table() -> None:
    # the table answers its paths and their 405s; the events router answers the rest, or 404
    async with upstream_server({}) as server:
        settings = Settings.of(upstream_url=server.url, proxy_policies="")
        async with running(ProxyApp(settings)) as client:
            assert (await client.head("/_sw/health")).status_code == 200
            for path in ("/_sw/health", "/_sw/ready", "/_sw/metrics", "/_sw/click"):
                refused = await client.post(path)
                assert refused.status_code == 405, path
                assert refused.headers["allow"] == "GET, HEAD"
                assert refused.json()["error"] == {
                    "code": "method_not_allowed",
                    "message": f"{path} answers GET",
                }
            pixel = await client.post("/_sw/px")
            # starlette's Allow comes from a set: its order varies between processes
            allow = pixel.headers["allow"]
            assert pixel.status_code == 405 and set(allow.split(", ")) == {"GET", "HEAD"}
            assert pixel.json()["error"]["message"] == f"/_sw/px answers {allow}"
            missing = await client.get("/_sw/healthz")
            assert missing.status_code == 404
            assert missing.json()["error"]["message"] == "no endpoint at /_sw/healthz"
        assert server.requests == []
