"""Admission control through ``slotwise serve`` (issue 21, item 10): past its work threshold a
worker forwards personalisable requests unchanged, counts them, and personalises again as
soon as the work is done.

Work in flight is made deterministic here: requests whose bodies the clients hold back are
taken by the worker and not waiting for the upstream. The 2x overload for 60 s is
``scripts/bench_overload.py`` (figures in docs/benchmarks.md, "Hardening").
"""

from __future__ import annotations

import asyncio

import httpx

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
