"""Issue 20's acceptance for several workers and several proxies: `slotwise serve --workers 2`
with the default configuration, and two `slotwise serve` on one redis-server, each answering
1,000 signed click links that any of its workers (or the other proxy) wrote with a 302, and
/_sw/metrics counting exactly the traffic sent, whichever worker answers the scrape."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import httpx
import pytest

from tests.conftest import REPO
from tests.proxy.support import SPRING_AD, Canned, serve_process, upstream_server
from tests.support.servers import RedisServer

ADS = 500  # each personalised ad carries one signed click link; each link is clicked twice
POLICIES = REPO / "examples" / "adserver" / "policies"
_SAMPLE = re.compile(r"^(\w+)(\{[^}]*\})? (\S+)$", re.M)


def _ad_routes() -> dict[str, Canned]:
    body = json.dumps(SPRING_AD).encode()
    return {"/ads/home-top": Canned(200, [("Content-Type", "application/json")], body)}


def _serve(
    upstream: str, *extra: str, env: dict[str, str] | None = None
) -> AbstractAsyncContextManager[str]:
    return serve_process(upstream, POLICIES, *extra, env=env)


# a new connection per request, so that the kernel hands them to every worker; one client
# (each new httpx client loads the CA bundle: ~30 ms of CPU, 45 s of this file's run)
_NO_KEEPALIVE = httpx.Limits(max_keepalive_connections=0)


async def _fresh_get(url: str) -> httpx.Response:
    return (await _spread([url], 1))[0]


async def _spread(urls: Sequence[str], concurrency: int = 8) -> list[httpx.Response]:
    gate = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(timeout=20, limits=_NO_KEEPALIVE) as client:

        async def one(url: str) -> httpx.Response:
            async with gate:
                return await client.get(url, headers={"cookie": "sw_consent=personal"})

        return list(await asyncio.gather(*(one(url) for url in urls)))


def _click_link(response: httpx.Response) -> str:
    assert response.status_code == 200, response.text
    link: str = response.json()["creative"]["click_url"]
    assert "/_sw/click?" in link, link
    return link


def _total(metrics: str, name: str, labels: str = "") -> float:
    """The sum of ``name``'s samples whose labels contain ``labels``."""
    return sum(
        float(value)
        for sample, found, value in _SAMPLE.findall(metrics)
        if sample == name and labels in (found or "")
    )


async def _settled(base: str, name: str, expected: float, labels: str = "") -> str:
    """A scrape once the other workers' numbers arrived (written every metrics_interval)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 30
    while True:
        metrics = (await _fresh_get(f"{base}/_sw/metrics")).text
        if _total(metrics, name, labels) >= expected or loop.time() > deadline:
            return metrics
        await asyncio.sleep(0.2)


async def _worker_files_settled(metrics_dir: Path, expected: float) -> list[float]:
    """Each worker's clicks from its metrics file, once their sum reached ``expected`` (or 30 s)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 30
    while True:
        per_worker = [
            _total(path.read_text(), "slotwise_clicks_total") for path in metrics_dir.glob("*.prom")
        ]
        if sum(per_worker) >= expected or loop.time() > deadline:
            return per_worker
        await asyncio.sleep(0.2)


@pytest.mark.slow
async def test_two_workers_verify_each_others_clicks_and_count_together(tmp_path: Path) -> None:
    metrics_dir = tmp_path / "metrics"
    async with upstream_server(_ad_routes()) as upstream:
        # the default configuration (memory:// store, no tracking.secret), as the issue found it
        async with _serve(
            upstream.url, "--workers", "2",
            env={"SLOTWISE_PROXY_METRICS_DIR": str(metrics_dir)},
        ) as base:  # fmt: skip
            ads = await _spread([f"{base}/ads/home-top"] * ADS)
            clicks = await _spread([base + _click_link(ad) for ad in ads] * 2)
            assert [c.status_code for c in clicks] == [302] * (2 * ADS), [
                c.status_code for c in clicks if c.status_code != 302
            ][:5]
            assert {c.headers["location"] for c in clicks} == {SPRING_AD["creative"]["click_url"]}
            metrics = await _settled(base, "slotwise_clicks_total", 2 * ADS)
            assert _total(metrics, "slotwise_clicks_total") == 2 * ADS
            assert _total(metrics, "slotwise_requests_total") == ADS
            decided = _total(metrics, "slotwise_decisions_total")
            assert decided + _total(metrics, "slotwise_holdout_total") == ADS  # 10% control
            assert _total(metrics, "slotwise_refused_total", "bad_click_signature") == 0
            assert _total(metrics, "slotwise_request_latency_seconds_count") == ADS
            # both workers answered clicks, and the scrape shows each one's process metrics
            # (each worker rewrites its file every metrics_interval: the scrape above counted the
            # answering worker live, its file may still be one interval behind)
            per_worker = await _worker_files_settled(metrics_dir, 2 * ADS)
            assert len(per_worker) == 2 and min(per_worker) > 0, per_worker
            assert sum(per_worker) == 2 * ADS
            assert len(re.findall(r"^process_resident_memory_bytes\{", metrics, re.M)) == 2
            # each worker froze what its start-up built (proxy.gc_threshold's default)
            frozen = re.findall(r"^process_gc_frozen_objects\{[^}]*\} (\d+)$", metrics, re.M)
            assert len(frozen) == 2 and min(int(n) for n in frozen) > 0, frozen


@pytest.mark.slow
@pytest.mark.redis
async def test_two_proxies_on_one_redis_verify_each_others_clicks(redis: RedisServer) -> None:
    store = f"redis://127.0.0.1:{redis.port}/7"
    async with upstream_server(_ad_routes()) as upstream:
        async with (
            _serve(upstream.url, "--store", store, "--workers", "2") as first,
            _serve(upstream.url, "--store", store) as second,
        ):
            half = ADS // 2
            ads = await _spread(
                [f"{first}/ads/home-top"] * half + [f"{second}/ads/home-top"] * half
            )
            links = [_click_link(ad) for ad in ads]
            assert all(link.startswith("/_sw/click?") for link in links)  # relative: no public_url
            # every link clicked once on each proxy: each verifies what the other signed
            clicks = await _spread([base + link for link in links for base in (first, second)])
            assert [c.status_code for c in clicks] == [302] * (2 * ADS)
            counted = []
            for base in (first, second):
                metrics = await _settled(base, "slotwise_clicks_total", ADS)
                counted.append(metrics)
                assert _total(metrics, "slotwise_clicks_total") == ADS
                assert _total(metrics, "slotwise_requests_total") == half
            decided = sum(_total(m, "slotwise_decisions_total") for m in counted)
            assert decided + sum(_total(m, "slotwise_holdout_total") for m in counted) == ADS
