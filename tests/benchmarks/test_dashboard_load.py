"""The dashboard under load: its answers' p99, and what computing and serving it costs the
proxy's p99, against the learner running without it.

`slotwise serve` (one worker) in front of the example ad server, a SQLite store already
holding 50,000 recent decisions with their events, which `slotwise learn --once` learns
first (so no phase catches up on a backlog). Then ROUNDS rounds of two phases, their order
alternating (A B, B A, A B ...) so that drift in the machine's load falls on both:

- A: `slotwise learn` runs with `dashboard.enabled = false` (it learns from the new
  traffic, computes no dashboard); nobody asks for /_sw/dashboard;
- B: `slotwise learn` runs with the dashboard on (it reads the new entries, counts them,
  renders the page and the KPIs every `dashboard.refresh_interval`, 10 s, and publishes
  them), and another client fetches /_sw/dashboard every 100 ms.

Each phase starts a fresh learner, waits SETTLE seconds and until it uses under a fifth of a
core (started; in B also until the proxy serves the first page the learner published, its
one catch-up over the window done), then 4 keep-alive
connections send ad requests for PHASE seconds. Printed per phase: requests, p50, p99, the
learner's CPU seconds; then the medians over the rounds of A's and B's p99, of the paired
difference B - A, and the dashboard answers' p50/p99 over every B phase.

.venv/bin/pytest -m benchmark tests/benchmarks/test_dashboard_load.py -s
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import msgspec
import pytest

from tests.benchmarks.test_report_scale import T0, _fill, _traffic
from tests.conftest import REPO
from tests.proxy.support import wait_ready
from tests.proxy.test_every_tracker_counted import _processes

pytestmark = pytest.mark.benchmark
TOKEN = "dashboard-token-0123456789"
AUTH = {"authorization": f"Bearer {TOKEN}"}
PHASE = float(os.environ.get("BENCH_DASHBOARD_PHASE", "20"))
ROUNDS = int(os.environ.get("BENCH_DASHBOARD_ROUNDS", "6"))
SETTLE = 5.0
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


def _cpu(pid: int) -> float:
    """The process's user + system CPU seconds (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _learn_argv(tmp_path: Path, store: str, *extra: str) -> list[str]:
    return [sys.executable, "-m", "slotwise", "learn", "--store", store, "--policies",
            str(tmp_path / "policies"), "--models", str(tmp_path / "models"), *extra]  # fmt: skip


@asynccontextmanager
async def _learner(tmp_path: Path, store: str, dashboard: bool) -> AsyncIterator[int]:
    """`slotwise learn` with the dashboard on or off; its pid. Stopped by its pid."""
    env = dict(os.environ, SLOTWISE_DASHBOARD_ENABLED="true" if dashboard else "false")
    log = (tmp_path / "learn.log").open("ab")
    process = subprocess.Popen(
        _learn_argv(tmp_path, store), cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        yield process.pid
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def _moved(data: bytes, now: float) -> bytes:
    """The generated day squeezed into the last half hour before ``now``."""

    def recent(ts: float) -> float:
        return now - 1800 + (ts - T0) * 1800 / 86_400

    item = msgspec.json.decode(data)
    if "ts" in item:
        item["ts"] = recent(item["ts"])
    else:
        item["received"] = recent(item["received"])
        item["event"]["time"] = recent(item["event"]["time"])
    return msgspec.json.encode(item)


async def _settled(pid: int) -> None:
    """Until the process used under a fifth of a core over a second (60 s at most)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        before = _cpu(pid)
        await asyncio.sleep(1.0)
        if _cpu(pid) - before < 0.2:
            return


class _Phase(msgspec.Struct):
    dashboard: bool
    requests: int
    p50: float
    p99: float
    learner_cpu: float


async def _phase(
    tmp_path: Path, url: str, port: int, client: httpx.AsyncClient, dashboard: bool,
    answers: list[float],
) -> _Phase:  # fmt: skip
    async with _learner(tmp_path, url, dashboard) as pid:
        await asyncio.sleep(SETTLE)
        await _settled(pid)  # started: imports, models loaded, the first reads done
        if dashboard:  # the learner's first page (its catch-up over the window) is served
            deadline = time.monotonic() + 120
            while "data-campaign=" not in (await client.get("/_sw/dashboard", headers=AUTH)).text:
                assert time.monotonic() < deadline, "the learner published no dashboard"
                await asyncio.sleep(0.5)
        cpu = _cpu(pid)
        stop = time.monotonic() + PHASE

        async def poll() -> None:
            while dashboard and time.monotonic() < stop:
                started = time.perf_counter()
                response = await client.get("/_sw/dashboard", headers=AUTH)
                assert response.status_code == 200
                answers.append(time.perf_counter() - started)
                await asyncio.sleep(0.1)

        latencies, _ = await asyncio.gather(_timed_load(port, PHASE), poll())
        cpu = _cpu(pid) - cpu
    return _Phase(dashboard, len(latencies), _p(latencies, 0.5), _p(latencies, 0.99), cpu)


async def test_dashboard_under_load(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLOTWISE_ADMIN_TOKEN", TOKEN)
    url = f"sqlite:///{tmp_path}/state.db"
    decisions, events, _ = _traffic(50_000)
    now = time.time()
    await _fill(url, [_moved(d, now) for d in decisions], [_moved(e, now) for e in events])
    answers: list[float] = []
    phases: list[_Phase] = []
    async with _processes(tmp_path, url) as base:
        port = int(base.rsplit(":", 1)[1])
        async with httpx.AsyncClient(base_url=base, timeout=30) as client:
            await wait_ready(client)
            learned = subprocess.run(
                _learn_argv(tmp_path, url, "--once"), cwd=REPO, capture_output=True, timeout=600
            )  # the backlog, learnt before any phase
            assert learned.returncode == 0, learned.stderr.decode()[-2000:]
            for i in range(ROUNDS):
                for dashboard in (False, True) if i % 2 == 0 else (True, False):
                    phase = await _phase(tmp_path, url, port, client, dashboard, answers)
                    phases.append(phase)
                    print(
                        f"\nround {i + 1} {'B (dashboard)' if dashboard else 'A (none)     '}:"
                        f" {phase.requests} requests, p50 {phase.p50:.2f} ms,"
                        f" p99 {phase.p99:.2f} ms, learner CPU {phase.learner_cpu:.2f} s,"
                        f" load average {os.getloadavg()[0]:.1f}",
                        flush=True,
                    )
    a = [p for p in phases if not p.dashboard]
    b = [p for p in phases if p.dashboard]
    differences = [pb.p99 - pa.p99 for pa, pb in zip(a, b, strict=True)]
    print(
        f"\nmedians over {ROUNDS} rounds: p99 without the dashboard"
        f" {statistics.median(p.p99 for p in a):.2f} ms, with it"
        f" {statistics.median(p.p99 for p in b):.2f} ms, difference B - A (paired)"
        f" {statistics.median(differences):+.2f} ms (per round:"
        f" {', '.join(f'{d:+.2f}' for d in differences)}); p50"
        f" {statistics.median(p.p50 for p in a):.2f} / {statistics.median(p.p50 for p in b):.2f}"
        f" ms; learner CPU per phase {statistics.median(p.learner_cpu for p in a):.2f} /"
        f" {statistics.median(p.learner_cpu for p in b):.2f} s; dashboard answers"
        f" {len(answers)}, p50 {_p(answers, 0.5):.2f} ms, p99 {_p(answers, 0.99):.2f} ms"
    )
    assert _p(answers, 0.99) < 100


async def test_the_dashboards_cpu_per_refresh(tmp_path: Path) -> None:
    """What the learner spends on the dashboard, in CPU time (steady under a loaded machine):
    the first update over a window holding 50,000 decisions and their events, then updates
    each reading 10 s of traffic at 1,200 decisions/s (12,000 decisions and their events,
    what the load above sends), rendered and published to a SQLite store; medians of ROUNDS.

    .venv/bin/pytest -m benchmark tests/benchmarks/test_dashboard_load.py -s -k cpu
    """
    from slotwise.proxy.report.live import LiveReport
    from slotwise.proxy.state import LogRecord, open_store

    url = f"sqlite:///{tmp_path}/state.db"
    per = 12_000
    decisions, events, _ = _traffic(50_000 + ROUNDS * per)
    now = time.time()
    decisions = [_moved(d, now - 600) for d in decisions]
    events = [_moved(e, now - 600) for e in events]
    times = [msgspec.json.decode(d)["ts"] for d in decisions]
    received = [msgspec.json.decode(e)["received"] for e in events]
    await _fill(
        url,
        decisions[:50_000],
        [e for e, r in zip(events, received, strict=True) if r < times[50_000]],
    )
    steady: list[float] = []
    async with open_store(url) as store:
        live = LiveReport(store, publish=True)
        started = time.process_time()
        await live.update(now)
        first = time.process_time() - started
        for i in range(ROUNDS):
            low, high = 50_000 + i * per, 50_000 + (i + 1) * per
            top = times[high] if high < len(times) else float("inf")
            await store.log_append("decisions", [LogRecord(d) for d in decisions[low:high]])
            new = [e for e, r in zip(events, received, strict=True) if times[low] <= r < top]
            await store.log_append("events", [LogRecord(e) for e in new])
            started = time.process_time()
            await live.update(now + 10 * (i + 1))
            steady.append(time.process_time() - started)
        assert live.report is not None and live.report.campaigns
    print(
        f"\nthe dashboard's first update (50,000 decisions in the window): {first:.2f} s of CPU;"
        f" each later one reading 12,000 new decisions and their events: median"
        f" {statistics.median(steady):.3f} s (rounds: {', '.join(f'{s:.3f}' for s in steady)}),"
        f" {statistics.median(steady) / 10:.1%} of a core at a 10 s refresh"
    )
