"""Storefront KPIs over the store's events: sessions by a 30-minute inactivity timeout, bounce
rate, conversion, average order value, session time, repeat sessions; every figure known."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest

from slotwise.proxy.report import stats
from slotwise.proxy.report.storefront import SessionTally
from slotwise.proxy.state import LogRecord, open_store
from tests.conftest import REPO

T0 = 1_764_547_200.0
# (visitor, seconds after T0, type, order value)
EVENTS = [
    # alice: one session of three events and an order of 30, then 40 minutes later a bounce
    ("alice", 0, "page_view", 0),
    ("alice", 60, "product_view", 0),
    ("alice", 300, "purchase", 30.0),
    ("alice", 300 + 2400, "page_view", 0),
    # bob: a bounce, then 10 minutes later (same session) an order of 50
    ("bob", 100, "page_view", 0),
    ("bob", 700, "purchase", 50.0),
    # carol: a bounce; dave: two page views (not a bounce)
    ("carol", 200, "page_view", 0),
    ("dave", 400, "page_view", 0),
    ("dave", 500, "page_view", 0),
]


def _envelope(visitor: str, at: float, kind: str, value: float, n: int) -> bytes:
    properties: dict[str, object] = {}
    if kind == "purchase":
        properties = {"order_id": f"o{n}", "items": [], "value": value, "currency": "EUR"}
    event = {"type": kind, "id": f"e{n}", "time": T0 + at, "anonymous_id": visitor,
             "properties": properties}  # fmt: skip
    return json.dumps({"received": T0 + at, "consent": "personal", "event": event}).encode()


def test_sessions_in_process() -> None:
    tally = SessionTally()
    for visitor, at, kind, value in sorted(EVENTS, key=lambda e: e[1]):
        tally.add(T0 + at, visitor, kind, value)
    tally.finish()
    assert tally.sessions == 5  # alice twice, bob, carol, dave
    assert tally.bounced == 2  # alice's second, carol
    assert tally.converted == 2 and tally.orders == 2 and tally.revenue == 80.0
    assert tally.repeat == 1  # alice's second session
    assert tally.seconds == 300 + 600 + 100  # alice's first, bob's, dave's


async def _fill(url: str) -> None:
    ordered = sorted(enumerate(EVENTS), key=lambda item: item[1][1])
    async with open_store(url) as store:
        await store.log_append("events", [LogRecord(_envelope(*event, n)) for n, event in ordered])


def test_the_report_shows_the_storefront_kpis(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/state.db"
    asyncio.run(_fill(url))
    done = subprocess.run(
        [sys.executable, "-m", "slotwise", "report", "--store", url, "--format", "json"],
        cwd=REPO, capture_output=True, timeout=120, check=True,
    )  # fmt: skip
    report = json.loads(done.stdout)
    kpis = report["storefront_kpis"]
    assert report["storefront"]["status"] == "ok"
    assert kpis["sessions"] == 5 and kpis["orders"] == 2 and kpis["revenue"] == 80.0
    bounce = stats.wilson(2, 5)
    assert kpis["bounce_rate"] == {"value": 0.4, "low": bounce.low, "high": bounce.high}
    assert kpis["conversion_rate"]["value"] == 0.4
    assert kpis["repeat_sessions"]["value"] == 0.2
    assert kpis["average_order_value"]["value"] == 40.0
    assert kpis["session_seconds"]["value"] == pytest.approx(1000 / 5)
    html = subprocess.run(
        [sys.executable, "-m", "slotwise", "report", "--store", url, "--format", "html"],
        cwd=REPO, capture_output=True, timeout=120, check=True,
    ).stdout.decode()  # fmt: skip
    assert 'data-field="bounce_rate" data-value="0.4"' in html
