"""Admission control through ``slotwise serve`` (issue 21, item 10): past its work threshold a
worker forwards personalisable requests unchanged, counts them, and personalises again as
soon as the work is done.

Work in flight is made deterministic here: requests whose bodies the clients hold back are
taken by the worker and not waiting for the upstream. Queue time is the worker's own probe
request, waiting behind wrk's closed loop (a 1 ms threshold, so that any queue counts). The
2x overload for 60 s is
``scripts/bench_overload.py`` (figures in docs/benchmarks.md, "Hardening").
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import shutil
import sys
from types import ModuleType

import httpx
import pytest

from tests.conftest import REPO
from tests.proxy.faults.support import serve, upstream


async def _held_bodies(port: int, count: int) -> list[asyncio.StreamWriter]:
    writers = []
    for _ in range(count):
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"POST /form HTTP/1.1\r\nHost: shop.test\r\nContent-Length: 100\r\n\r\nab")
        await writer.drain()
        writers.append(writer)
    return writers


async def _metrics(client: httpx.AsyncClient) -> str:
    return (await client.get("/_sw/metrics")).text


async def test_personalisation_is_shed_past_the_work_threshold_and_comes_back() -> None:
    env = {"SLOTWISE_PROXY_SHED_WORK": "3", "SLOTWISE_TRACKING_PUBLIC_URL": "http://shop.test"}
    async with upstream() as up, serve(up.url, env=env) as proxy:
        async with httpx.AsyncClient(base_url=proxy.url, timeout=10) as client:
            assert b"/_sw/px" in (await client.get("/ad")).content  # personalised
            held = await _held_bodies(proxy.port, 4)
            try:
                for _ in range(100):  # the worker has taken all four
                    if "slotwise_work_in_flight 4" in await _metrics(client):
                        break
                    await asyncio.sleep(0.05)
                shed = await client.get("/ad")
                assert shed.status_code == 200
                assert b"/_sw/px" not in shed.content  # the upstream's answer, unchanged
                assert shed.content.startswith(b'{"placement": "home-top"')
                text = await _metrics(client)
                assert 'slotwise_passthrough_total{reason="shed"} 1' in text
                assert "slotwise_shedding 1" in text
                assert "slotwise_loop_busy " in text  # the busy signal is measured (on by default)
                # pass-through requests are served as ever meanwhile
                assert (await client.get("/static/page")).status_code == 200
            finally:
                for writer in held:
                    writer.close()
            for _ in range(100):
                if "slotwise_shedding 0" in await _metrics(client):
                    break
                await asyncio.sleep(0.05)
            assert b"/_sw/px" in (await client.get("/ad")).content  # back at once


async def test_slow_downloads_are_not_work_in_flight() -> None:
    """Answers streaming through to clients that do not read are I/O, not overload."""
    env = {"SLOTWISE_PROXY_SHED_WORK": "3", "SLOTWISE_TRACKING_PUBLIC_URL": "http://shop.test"}
    async with upstream() as up, serve(up.url, env=env) as proxy:
        async with httpx.AsyncClient(base_url=proxy.url, timeout=10) as client:
            stalled = []
            for _ in range(5):
                _, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
                writer.write(b"GET /download HTTP/1.1\r\nHost: shop.test\r\n\r\n")
                stalled.append(writer)
            try:
                await asyncio.sleep(1.0)  # the five answers are streaming, then stall
                assert "slotwise_work_in_flight 0" in await _metrics(client)
                assert b"/_sw/px" in (await client.get("/ad")).content  # not shed
            finally:
                for writer in stalled:
                    writer.close()


def _bench_overload() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "bench_overload", REPO / "scripts" / "bench_overload.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_overload"] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.benchmark
def test_twice_the_personalised_capacity_for_60_seconds() -> None:
    """Issue 21's acceptance: `scripts/bench_overload.py --seconds 60`, one round (run with
    ``-s`` for the figures). Personalisation is shed and counted, the pass-through probe's
    p99 is lower than without shedding, and personalisation is back within 5 s. The absolute
    target (p99 under 50 ms) is printed, not asserted: on a shared machine it moves with the
    CPU the proxy gets (`proxy_cpu_wait`; docs/benchmarks.md, "Hardening"); the lead's
    quiet-machine run is `scripts/bench_overload.py --seconds 60 --rounds 2`, which prints
    the verdict."""
    bench = _bench_overload()
    on = {
        "SLOTWISE_PROXY_SHED_WORK": "128",
        "SLOTWISE_PROXY_SHED_BUSY": "0.9",
        "SLOTWISE_PROXY_SHED_QUEUE_MS": "10",
    }
    (figures,) = bench.measure(60, 1, 2.0, on)
    off, shed = figures["off"], figures["on"]
    print(f"pass-through p99 with shedding: {shed['probe_p99_ms']:.1f} ms (target: under 50)")
    assert off["shed"] == 0 and shed["shed"] > 0
    assert shed["shed"] / (shed["shed"] + shed["decided"]) > 0.3
    assert shed["probe_p99_ms"] < off["probe_p99_ms"]
    assert shed["recovery_s"] < 5.0 and off["recovery_s"] < 5.0


async def _wrk(url: str, seconds: int, connections: int) -> asyncio.subprocess.Process:
    argv = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", url]
    return await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
    )


@pytest.mark.skipif(shutil.which("wrk") is None, reason="needs wrk (scripts/bench-deps)")
async def test_a_queue_outside_the_loop_is_seen_by_the_probe_and_a_share_shed() -> None:
    """The queue time signal end to end: under a closed loop of 128 connections the worker's
    own probe waits behind other requests (in the kernel's buffers and the server's I/O
    thread, where the work in flight does not see them), a share of personalisation is shed
    and counted (the thresholds are 1 ms and 16 requests ahead here; 10 ms and 64 by
    default), and it comes back after."""
    env = {
        "SLOTWISE_PROXY_SHED_WORK": "0",
        "SLOTWISE_PROXY_SHED_BUSY": "0",
        "SLOTWISE_PROXY_SHED_QUEUE_MS": "1",
        "SLOTWISE_PROXY_SHED_QUEUE_REQUESTS": "16",
        "SLOTWISE_TRACKING_PUBLIC_URL": "http://shop.test",
    }
    async with upstream() as up, serve(up.url, env=env) as proxy:
        async with httpx.AsyncClient(base_url=proxy.url, timeout=10) as client:
            text = await _metrics(client)
            assert "slotwise_shed_share 0.000" in text and "slotwise_queue_seconds " in text
            load = await _wrk(f"{proxy.url}/ad", 6, 128)
            try:
                shares, queued = [], []
                for _ in range(40):
                    await asyncio.sleep(0.1)
                    text = await _metrics(client)
                    shares.append(_gauge(text, "slotwise_shed_share"))
                    queued.append(_gauge(text, "slotwise_queue_seconds"))
                    if shares[-1] > 0.2:
                        break
                assert max(shares) > 0.2, (shares, queued)
                assert max(queued) > 0.001, queued
                text = await _metrics(client)
                assert _gauge(text, 'slotwise_passthrough_total{reason="shed"}') > 0
            finally:
                if load.returncode is None:
                    load.terminate()
                await load.wait()
            for _ in range(100):  # the share falls back to 0 once the queue is gone
                if _gauge(await _metrics(client), "slotwise_shed_share") == 0:
                    break
                await asyncio.sleep(0.05)
            assert b"/_sw/px" in (await client.get("/ad")).content


@pytest.mark.skipif(shutil.which("wrk") is None, reason="needs wrk (scripts/bench-deps)")
async def test_a_closed_loop_of_64_connections_is_not_shed() -> None:
    """A load balancer's 64 connections at full speed queue, but never more than 64 requests
    ahead of the probe: with the default floor nothing is shed, whatever the queue time."""
    env = {
        "SLOTWISE_PROXY_SHED_WORK": "0",
        "SLOTWISE_PROXY_SHED_BUSY": "0",
        "SLOTWISE_PROXY_SHED_QUEUE_MS": "1",
        "SLOTWISE_TRACKING_PUBLIC_URL": "http://shop.test",
    }
    async with upstream() as up, serve(up.url, env=env) as proxy:
        async with httpx.AsyncClient(base_url=proxy.url, timeout=10) as client:
            load = await _wrk(f"{proxy.url}/ad", 3, 64)
            queued = []
            while load.returncode is None:
                await asyncio.sleep(0.1)
                queued.append(_gauge(await _metrics(client), "slotwise_queue_requests"))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(load.wait(), 0.01)
            text = await _metrics(client)
            assert 'slotwise_passthrough_total{reason="shed"}' not in text or (
                _gauge(text, 'slotwise_passthrough_total{reason="shed"}') == 0
            )
            assert 0 < max(queued) <= 64 + 1, queued  # the wrk loop, and this client's request


async def test_the_probe_path_answers_only_its_own_worker() -> None:
    """Nobody else can feed the controller: without this worker's token it is not a path."""
    async with upstream() as up, serve(up.url) as proxy:
        async with httpx.AsyncClient(base_url=proxy.url, timeout=10) as client:
            assert (await client.get("/_sw/queue-probe")).status_code == 404
            forged = {"x-slotwise-probe": "0" * 32}
            assert (await client.get("/_sw/queue-probe", headers=forged)).status_code == 404


def _gauge(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not in the metrics")
