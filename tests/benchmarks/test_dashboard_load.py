"""The dashboard under load: its answers' p99, and the proxy's p99 with and without it.

`slotwise serve` in front of the example ad server, a SQLite store already holding 50,000
recent decisions with their events (the dashboard's backlog). Phase A: 4 keep-alive
connections send ad requests for PHASE seconds (no learner, no dashboard). Then
`slotwise learn` starts (it computes the dashboard and publishes it to the store), and the
same load runs twice more while another client fetches /_sw/dashboard every 100 ms: while
the learner catches up on the backlog, then steady (only the new traffic to read). The two
processes share this machine's cores, so the learner's work shows in the proxy's figures.
Printed: each phase's request p50/p99 and the dashboard's.

.venv/bin/pytest -m benchmark tests/benchmarks/test_dashboard_load.py -s
"""

from __future__ import annotations

import asyncio
import os
import time
from contextlib import AsyncExitStack
from pathlib import Path

import httpx
import msgspec
import pytest

from tests.benchmarks.test_report_scale import T0, _fill, _traffic
from tests.proxy.report.test_dashboard import _learner
from tests.proxy.support import wait_ready
from tests.proxy.test_every_tracker_counted import _processes

pytestmark = pytest.mark.benchmark
TOKEN = "dashboard-token-0123456789"
PHASE = 15.0
CONNECTIONS = 4
REQUEST = (
    b"GET /ads/home-top HTTP/1.1\r\nHost: bench\r\nCookie: sw_uid=u1; sw_consent=personal\r\n\r\n"
)


async def _timed_load(port: int, seconds: float) -> list[float]:
    latencies: list[float] = []
    deadline = time.monotonic() + seconds

    async def connection() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while time.monotonic() < deadline:
                started = time.perf_counter()
                writer.write(REQUEST)
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line[:15].lower() == b"content-length:":
                        length = int(line[15:])
                await reader.readexactly(length)
                latencies.append(time.perf_counter() - started)
        finally:
            writer.close()

    await asyncio.gather(*(connection() for _ in range(CONNECTIONS)))
    return latencies


def _p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


async def test_dashboard_under_load(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLOTWISE_ADMIN_TOKEN", TOKEN)
    url = f"sqlite:///{tmp_path}/state.db"
    decisions, events, _ = _traffic(50_000)
    now = time.time()

    def recent(ts: float) -> float:  # the generated day squeezed into the last half hour
        return now - 1800 + (ts - T0) * 1800 / 86_400

    def moved(data: bytes) -> bytes:
        item = msgspec.json.decode(data)
        if "ts" in item:
            item["ts"] = recent(item["ts"])
        else:
            item["received"] = recent(item["received"])
            item["event"]["time"] = recent(item["event"]["time"])
        return msgspec.json.encode(item)

    decisions = [moved(d) for d in decisions]
    events = [moved(e) for e in events]
    await _fill(url, decisions, events)
    async with _processes(tmp_path, url) as base, AsyncExitStack() as stack:
        port = int(base.rsplit(":", 1)[1])
        async with httpx.AsyncClient(base_url=base, timeout=30) as client:
            await wait_ready(client)
            baseline = await _timed_load(port, PHASE)
            await stack.enter_async_context(_learner(tmp_path, url))
            auth = {"authorization": f"Bearer {TOKEN}"}
            assert (await client.get("/_sw/dashboard", headers=auth)).status_code == 200
            dashboard: list[float] = []

            async def poll(stop: float) -> None:
                while time.monotonic() < stop:
                    started = time.perf_counter()
                    response = await client.get("/_sw/dashboard", headers=auth)
                    assert response.status_code == 200
                    dashboard.append(time.perf_counter() - started)
                    await asyncio.sleep(0.1)

            # catching up on the backlog, then steady: new traffic only
            catching_up, _ = await asyncio.gather(
                _timed_load(port, PHASE), poll(time.monotonic() + PHASE)
            )
            page = (await client.get("/_sw/dashboard", headers=auth)).text
            steady, _ = await asyncio.gather(
                _timed_load(port, PHASE), poll(time.monotonic() + PHASE)
            )
    shown = 'data-campaign="spring"' in page
    print(
        f"\nload average {os.getloadavg()[0]:.1f}; requests without the dashboard:"
        f" {len(baseline)}, p50 {_p(baseline, 0.5):.2f} ms, p99 {_p(baseline, 0.99):.2f} ms;"
        f" while it catches up on 50,000 decisions: {len(catching_up)},"
        f" p50 {_p(catching_up, 0.5):.2f} ms, p99 {_p(catching_up, 0.99):.2f} ms;"
        f" steady: {len(steady)}, p50 {_p(steady, 0.5):.2f} ms,"
        f" p99 {_p(steady, 0.99):.2f} ms; dashboard answers: {len(dashboard)},"
        f" p50 {_p(dashboard, 0.5):.2f} ms, p99 {_p(dashboard, 0.99):.2f} ms;"
        f" the page shows campaign spring: {shown}"
    )
    assert _p(dashboard, 0.99) < 100
