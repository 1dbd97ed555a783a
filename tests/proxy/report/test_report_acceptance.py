"""Issue 19's acceptance: the report over a real run of demo traffic.

Real processes on loopback: the example ad server and `slotwise serve` in front of it (the
demo's campaigns, 20% held out, a SQLite store), ad requests of every format (JSON creatives,
OpenRTB native + video, VAST), every response's impression trackers fired and its click
trackers for some decisions (more often for personalised ones), then `slotwise learn --once`
over the same store, and `slotwise report` over it. The report's arms, segments and
intervals must be what was fired, computed by hand here; the HTML must carry the same figures.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import subprocess
import sys
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from slotwise.proxy.decision_log import DecisionRecord
from slotwise.proxy.learn.log import decode
from tests.conftest import REPO
from tests.proxy.report.test_report_cli import _Cells
from tests.proxy.support import wait_ready
from tests.proxy.test_every_tracker_counted import (
    _decision_of,
    _processes,
    _request,
    _stored,
    _trackers,
)

pytestmark = pytest.mark.slow
RESPONSES = 500
CONCURRENCY = 8
Z = 1.959963984540054
SEGMENT_BY = "consent.level"


def _clicks(decision_id: str, control: bool) -> bool:
    """Whether this decision's click trackers fire: 45% of personalised, 25% of control (a
    hash of the id, so the draw does not depend on the order responses come back in)."""
    draw = int(hashlib.sha256(decision_id.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return draw < (0.25 if control else 0.45)


async def _serve(
    client: httpx.AsyncClient, base: str
) -> tuple[set[str], dict[str, list[tuple[str, str]]]]:
    """Send the ad requests and fire every impression tracker. Returns the decision ids seen
    and their trackers (the clicks are fired once the store says which decisions are control)."""
    seen: set[str] = set()
    urls: dict[str, list[tuple[str, str]]] = {}
    gate = asyncio.Semaphore(CONCURRENCY)

    async def one(i: int) -> None:
        method, path, headers, body = _request(i)
        async with gate:
            response = await client.request(method, path, headers=headers, content=body)
            assert response.status_code == 200
            for url in _trackers(base, response.headers["content-type"], response.content):
                kind, decision_id = _decision_of(url)
                seen.add(decision_id)
                urls.setdefault(decision_id, []).append((kind, url))
                if kind == "impression":
                    assert (await client.get(url)).status_code == 200

    await asyncio.gather(*(one(i) for i in range(RESPONSES)))
    return seen, urls


def _slotwise(*argv: str) -> bytes:
    done = subprocess.run(
        [sys.executable, "-m", "slotwise", *argv],
        cwd=REPO, capture_output=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout


def _wilson(x: int, n: int) -> tuple[float, float, float]:
    p = x / n
    denominator = 1 + Z**2 / n
    centre = p + Z**2 / (2 * n)
    spread = Z * math.sqrt(p * (1 - p) / n + Z**2 / (4 * n**2))
    return p, (centre - spread) / denominator, (centre + spread) / denominator


async def test_the_report_of_a_real_run_shows_lift_by_segment(tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path}/state.db"
    async with _processes(tmp_path, store) as base:
        limits = httpx.Limits(max_connections=CONCURRENCY)
        async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30) as client:
            await wait_ready(client)
            seen, urls = await asyncio.wait_for(_serve(client, base), 600)
            decisions_log, _ = await _stored(store, len(seen), len(seen))
            records = {}
            for data in decisions_log:
                record = decode(data, "decisions")
                assert isinstance(record, DecisionRecord)
                records[record.id] = record
            assert set(records) == seen
            clicked = {d for d in seen if _clicks(d, records[d].holdout)}
            for decision_id in sorted(clicked):
                kind, url = next((k, u) for k, u in urls[decision_id] if k != "impression")
                expected = 302 if urlsplit(url).path == "/_sw/click" else 200
                assert (await client.get(url)).status_code == expected
            await _stored(store, len(seen), len(seen) + len(clicked))

    policies = tmp_path / "policies"
    models = tmp_path / "models"
    _slotwise("learn", "--store", store, "--policies", str(policies), "--models", str(models),
              "--once")  # fmt: skip
    report = json.loads(
        _slotwise("report", "--store", store, "--policies", str(policies), "--segment-by",
                  SEGMENT_BY, "--format", "json")
    )  # fmt: skip

    # what was fired, by campaign, segment and arm: [decisions, clicked]
    fired: dict[tuple[str, str, str], list[int]] = {}
    for decision_id, record in records.items():
        arm = "control" if record.holdout else "personalised"
        segment = str(record.signals.get(SEGMENT_BY, "(none)"))
        for key in ((record.campaign, "all", arm), (record.campaign, segment, arm)):
            row = fired.setdefault(key, [0, 0])
            row[0] += 1
            row[1] += decision_id in clicked
    campaigns = {c["name"]: c for c in report["campaigns"]}
    assert set(campaigns) == {r.campaign for r in records.values()}
    checked = 0
    for (campaign, segment, arm), (n, x) in fired.items():
        found = next(s for s in campaigns[campaign]["segments"] if s["segment"] == segment)
        figures = found[arm]
        assert (figures["decisions"], figures["clicked"], figures["impressions"]) == (n, x, n)
        value, low, high = _wilson(x, n)
        rate = figures["click_rate"]
        assert (rate["value"], rate["low"], rate["high"]) == pytest.approx((value, low, high))
        checked += 1
    segments = {s for _, s, _ in fired} - {"all"}
    assert len(segments) >= 2, segments  # a real breakdown, not one bucket
    assert checked >= 12
    # the lift of the campaign with the most traffic, by hand (Newcombe's method 10)
    spring = next(s for s in campaigns["spring_sale"]["segments"] if s["segment"] == "all")
    (n1, x1), (n2, x2) = (
        fired["spring_sale", "all", "personalised"],
        fired["spring_sale", "all", "control"],
    )
    p1, l1, u1 = _wilson(x1, n1)
    p2, l2, u2 = _wilson(x2, n2)
    lift = spring["lifts"][0]["absolute"]
    assert lift["value"] == pytest.approx(p1 - p2)
    assert lift["low"] == pytest.approx(p1 - p2 - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2))
    assert lift["high"] == pytest.approx(p1 - p2 + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2))
    assert campaigns["spring_sale"]["goal"] == "clicks + 10 * conversions"  # from the policy
    assert all(c["sample_ratio"] is not None for c in campaigns.values())
    # the HTML over the same store carries the same figures
    page = tmp_path / "report.html"
    _slotwise("report", "--store", store, "--policies", str(policies), "--segment-by",
              SEGMENT_BY, "--format", "html", "--output", str(page))  # fmt: skip
    cells = _Cells()
    cells.feed(page.read_text(encoding="utf-8"))
    assert cells.charts == 4 * len(campaigns)
    for segment in campaigns["spring_sale"]["segments"]:
        for arm in ("personalised", "control"):
            rate = segment[arm]["click_rate"]
            key = ("spring_sale", segment["segment"], arm)
            assert cells.cells[(*key, "click_rate")] == rate["value"]
            assert cells.cells[(*key, "click_rate.low")] == rate["low"]
    print(
        f"\n{len(records)} decisions ({Counter(r.holdout for r in records.values())[True]}"
        f" control), {len(clicked)} clicked; segments {sorted(segments)}; spring_sale lift {lift}"
    )
