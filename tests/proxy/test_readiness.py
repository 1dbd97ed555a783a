"""Readiness means "can serve": the store's health is reported apart, never as unreadiness."""

from __future__ import annotations

from pathlib import Path

from slotwise.proxy.app import ProxyApp
from slotwise.proxy.config import Settings
from tests.proxy.support import Canned, running, upstream_server
from tests.support.servers import redis_server


async def test_ready_while_the_store_is_down_and_the_store_reported_apart(tmp_path: Path) -> None:
    with redis_server(tmp_path) as redis:
        async with upstream_server({"/ad": Canned(200, [], b"ad")}) as server:
            settings = Settings.of(
                upstream_url=server.url,
                proxy_policies="",
                store_url=redis.url,
                proxy_metrics_public=True,  # scraped from the test client's address
            )
            async with running(ProxyApp(settings, load_plugins=False)) as client:
                store = await client.get("/_sw/health/store")
                assert (store.status_code, store.text) == (200, "store: ok\n")
                assert "\nslotwise_store_up 1\n" in (await client.get("/_sw/metrics")).text
                redis.stop()
                ready = await client.get("/_sw/ready")
                assert (ready.status_code, ready.text) == (200, "ready\n")
                assert (await client.get("/ad")).text == "ad"  # forwarding goes on
                store = await client.get("/_sw/health/store")
                assert store.status_code == 503
                assert store.text.startswith("store: ") and store.text != "store: ok\n"
                metrics = (await client.get("/_sw/metrics")).text
                assert "# TYPE slotwise_store_up gauge\nslotwise_store_up 0\n" in metrics
                assert (await client.head("/_sw/health/store")).status_code == 503
                assert (await client.post("/_sw/health/store")).status_code == 405


async def test_not_ready_while_the_configured_policies_are_not_loaded(tmp_path: Path) -> None:
    (tmp_path / "broken.sw").write_text("policy broken")
    async with upstream_server({}) as server:
        settings = Settings.of(upstream_url=server.url, proxy_policies=str(tmp_path))
        async with running(ProxyApp(settings, load_plugins=False)) as client:
            ready = await client.get("/_sw/ready")
            assert ready.status_code == 503 and ready.text.startswith("not ready: policies")
            assert (await client.get("/_sw/health/store")).status_code == 200  # memory://
