"""The live dashboard's offers, triggers and storefront sections: what `slotwise learn`
computes (LiveReport, incrementally, read in two parts) gives the figures `slotwise report`
gives over the same store, and a view of a later window leaves out what fell out of it."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import msgspec

from slotwise.proxy.report.live import LiveReport
from slotwise.proxy.state import open_store
from tests.proxy.report import test_storefront
from tests.proxy.report.logs import T0
from tests.proxy.report.test_report_cli import _fill, _slotwise
from tests.proxy.report.test_report_sections import _logs


def _events() -> tuple[list[bytes], list[bytes]]:
    decisions, events = _logs()
    visits = [
        test_storefront._envelope(visitor, at, kind, value, 100 + n)
        for n, (visitor, at, kind, value) in enumerate(test_storefront.EVENTS)
    ]
    every = sorted(events + visits, key=lambda e: json.loads(e)["received"])
    return decisions, every


async def _dashboard(url: str, now: float, parts: int) -> list[dict[str, Any]]:
    """The dashboard's report after each update; the updates at ``now``, ``now + 4000``."""
    reports = []
    async with open_store(url) as store:
        live = LiveReport(store, window=7200, join_window=300)
        for at in (now, now + 4000)[:parts]:
            await live.update(at)
            assert live.report is not None
            reports.append(msgspec.to_builtins(live.report))
    return reports


def test_the_dashboard_has_the_reports_offers_triggers_and_storefront(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/state.db"
    decisions, events = _events()
    half = len(events) // 2
    asyncio.run(_fill(url, decisions, events[:half]))
    now = T0 + 2700 + 1800 + 1  # every session's timeout and every join window passed
    (early,) = asyncio.run(_dashboard(url, now, 1))  # the dashboard's first read: half
    asyncio.run(_fill(url, [], events[half:]))
    first, later = asyncio.run(_dashboard(url, now, 2))
    report = json.loads(_slotwise("--store", url, "--format", "json").stdout)
    assert report["offer_sets"] and report["trigger_results"] and report["storefront_kpis"]
    for name in ("offer_sets", "trigger_results", "storefront_kpis"):
        assert first[name] == report[name], name
    assert first["offers"]["status"] == first["triggers"]["status"] == "ok"
    assert first["storefront"]["status"] == "ok"
    assert early["storefront_kpis"] != report["storefront_kpis"]  # it read half the events
    # 4000 s later, the two-hour window starts after every decision (T0 + 0..20) and every
    # session but alice's second (a bounce at T0 + 2700, after her first: a repeat)
    assert later["offer_sets"] == [] and later["trigger_results"] == []
    kpis = later["storefront_kpis"]
    assert kpis["sessions"] == 1 and kpis["orders"] == 0
    assert kpis["bounce_rate"]["value"] == kpis["repeat_sessions"]["value"] == 1.0
