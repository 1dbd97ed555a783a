"""The live dashboard: the report's views over a recent window, kept up to date in the
background by ``slotwise learn``, served by every proxy from a copy (``/_sw/dashboard``, and
per campaign and arm KPIs in ``/_sw/metrics``).

``LiveReport`` runs in the learner (one per store, beside the proxies, never in a serving
process): every ``refresh`` seconds it reads what is new in the store's decisions and events
logs (from a cursor: each entry once; on the first read, entries older than the window are
skipped on their time alone), feeds a RollingTally (campaign, offer and trigger counts per
five minutes of decision time; a decision is counted once its ``join_window`` closed, so the
dashboard runs that far behind) and RollingSessions (the storefront's sessions), renders
the page and the metrics once, and publishes both to the store (``dashboard:page``,
``dashboard:metrics``, expiring when the learner stops publishing).

``DashboardCache`` runs in each proxy worker from the first request that wants it: every
``refresh`` seconds it reads the two keys and keeps them; a request gets that copy and never
waits on the store or on any counting.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import Any

from slotwise.proxy.report.document import Report, build
from slotwise.proxy.report.store_reader import Cursor, Selection, read_store_from
from slotwise.proxy.report.storefront import RollingSessions, SessionCounts
from slotwise.proxy.report.tally import CampaignTally, RollingTally, Sections
from slotwise.proxy.state import Store

log = logging.getLogger("slotwise.dashboard")
PAUSE_EVERY = 20  # entries counted between yields to the event loop (well under 1 ms)
PAGE = 100  # entries per read of the store
PAGE_KEY = "dashboard:page"
METRICS_KEY = "dashboard:metrics"
STARTING = (
    b'<!doctype html><html lang="en"><head><meta charset="utf-8">'
    b'<meta http-equiv="refresh" content="2"><title>slotwise dashboard</title></head>'
    b"<body><p>No figures yet: <code>slotwise learn</code> computes the dashboard from the"
    b" logs and publishes it to the store every few seconds (unless its"
    b" <code>dashboard.enabled</code> is false). This page reloads by itself."
    b"</p></body></html>"
)


class LiveReport:
    def __init__(
        self,
        store: Store,
        *,
        window: float = 3600.0,
        join_window: float = 300.0,
        refresh: float = 10.0,
        segment_by: Sequence[str] = (),
        publish: bool = False,
    ) -> None:
        self.store = store
        self.publish = publish  # to the store, for the proxies' DashboardCache
        self.window = window
        self.refresh = refresh
        self.tally = RollingTally(segment_by=segment_by, window=join_window)
        self.sessions = RollingSessions(window)  # the storefront KPIs of the window
        self.tally.storefront = self.sessions
        self.cursor = Cursor()
        self.page: bytes = STARTING
        self.metrics: str = ""
        self.report: Report | None = None
        self.updated = 0.0
        self.errors = 0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start the background task (once)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()

    async def _run(self) -> None:
        failing = False
        while True:
            try:
                await self.update()
                failing = False
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the dashboard shows its last figures meanwhile
                self.errors += 1
                if not failing:
                    log.error("dashboard: cannot read the logs, showing the last figures: %s", exc)
                failing = True
            await asyncio.sleep(self.refresh)

    async def update(self, now: float | None = None) -> None:
        """Read what is new, count it, render the page and the metrics."""
        at = time.time() if now is None else now
        await read_store_from(
            self.store, self.tally, Selection(), self.cursor, pause_every=PAUSE_EVERY,
            skip_before=at - self.window - self.tally.window, page=PAGE,
        )  # fmt: skip
        self.tally.advance(at)  # quiet logs: decisions whose window passed are counted
        since = at - self.window
        # fresh tallies and sums: the thread below owns them
        views = self.tally.view(since), self.tally.view_sections(since)
        sessions = self.sessions.view(since, at)
        # building and rendering is pure Python: in a thread, the interpreter hands the event
        # loop back every switch interval instead of after the whole page
        report, page, metrics = await asyncio.to_thread(self._render, views, sessions, since, at)
        self.page, self.metrics, self.report, self.updated = page, metrics, report, at
        if self.publish:
            ttl = max(60.0, 6 * self.refresh)  # a stopped learner's figures expire
            await self.store.set(PAGE_KEY, page, ttl=ttl)
            await self.store.set(METRICS_KEY, metrics.encode(), ttl=ttl)

    def _render(
        self,
        views: tuple[dict[str, CampaignTally], Sections],
        sessions: SessionCounts,
        since: float,
        at: float,
    ) -> tuple[Report, bytes, str]:
        # here, in the learner: a proxy imports this module for DashboardCache alone and never
        # renders, so it never loads pygal (about 50 ms of import on its event loop)
        from slotwise.proxy.report.html import render

        campaigns, sections = views
        report = build(
            self.tally, source="the store, live", since=since, now=at, campaigns=campaigns,
            sections=sections, sessions=sessions,
        )  # fmt: skip
        title = f"slotwise dashboard (the last {self.window / 60:g} minutes)"
        page = render(report, title=title, refresh=max(5, int(self.refresh))).encode()
        return report, page, kpi_metrics(report)


class DashboardCache:
    """A proxy's copy of the dashboard the learner publishes, refreshed in the background."""

    def __init__(self, store: Store, refresh: float = 10.0) -> None:
        self.store = store
        self.refresh = refresh
        self.page: bytes = STARTING
        self.metrics: str = ""
        self.errors = 0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()

    async def read(self) -> None:
        page = await self.store.get(PAGE_KEY)
        metrics = await self.store.get(METRICS_KEY)
        self.page = page if page is not None else STARTING
        self.metrics = metrics.decode() if metrics is not None else ""

    async def _run(self) -> None:
        while True:
            try:
                await self.read()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # keep the last copy
                self.errors += 1
                log.warning("dashboard: cannot read the published figures: %s", exc)
            await asyncio.sleep(self.refresh)


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def kpi_metrics(report: Report) -> str:
    """Per campaign and arm, over the dashboard's window: decisions, clicked and converted
    decisions, conversions, revenue, and the click rate; per recommended list and arm:
    impressions, clicks and CTR; as Prometheus gauges."""
    campaigns = {
        "decisions": "Decisions in the dashboard window",
        "clicked": "Decisions with a click",
        "converted": "Decisions with a conversion",
        "revenue": "Revenue of the decisions' conversions",
        "click_rate": "Clicked decisions / decisions",
    }
    lists = {
        "impressions": "Impressions of the list's items",
        "clicks": "Clicks on the list's items",
        "ctr": "Clicks / impressions",
    }
    arms = [(c.name, c.segments[0].personalised, c.segments[0].control)
            for c in report.campaigns]  # fmt: skip
    list_arms = [(k.name, k.segments[0].personalised, k.segments[0].control)
                 for k in report.recommendations if k.segments]  # fmt: skip
    lines = _gauges("slotwise_kpi_", "campaign", campaigns, arms, "click_rate")
    lines += _gauges("slotwise_kpi_list_", "list", lists, list_arms, "ctr")
    return "\n".join(lines) + "\n"


def _gauges(
    prefix: str,
    kind: str,
    metrics: dict[str, str],
    rows: list[tuple[str, Any, Any]],
    rate: str,
) -> list[str]:
    """One gauge per metric, a sample per (name, arm) that has a value; ``rate`` is read as
    an interval's ``value`` (None: not enough data, no sample), the others as counts."""
    lines: list[str] = []
    for metric, help_text in metrics.items():
        name = f"{prefix}{metric}"
        lines += [
            f"# HELP {name} {help_text}, by {kind} and arm (the live dashboard's window).",
            f"# TYPE {name} gauge",
        ]
        for subject, personalised, control in rows:
            for arm_name, arm in (("personalised", personalised), ("control", control)):
                if arm is None:
                    continue
                value = getattr(arm, metric)
                value = value.value if metric == rate else float(value)
                if value is None:
                    continue
                labels = f'{kind}="{_label(subject)}",arm="{arm_name}"'
                lines.append(f"{name}{{{labels}}} {value!r}")
    return lines
