"""A recommended list with a holdout, through `slotwise serve`: the control visitors get the
shop's own list (tracked alike), the personalised ones slotwise's; their impression and click
pixels (with the visitor's id), add-to-carts and purchases sent as the SDK sends them. Then
`slotwise report` and the live dashboard `slotwise learn` publishes (the page and the KPI
metrics every proxy serves) give each arm's list CTR by position, its conversion, the lift
with its interval, and the storefront KPIs of the sessions by arm: every figure checked
against a hand computation from what the test fired."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from slotwise.proxy.bandit.holdout import holdout_position
from slotwise.proxy.report import stats
from slotwise.proxy.report.live import METRICS_KEY, PAGE_KEY
from slotwise.proxy.state import open_store
from tests.conftest import REPO
from tests.proxy.recommend.test_storefront_e2e import (
    CONFIG,
    ITEMS,
    SHOP,
    Visitor,
    _storefront_behind_slotwise,
)

pytestmark = [pytest.mark.slow]
LIST = "home_for_you"
SHARE = 0.5
VISITORS = 16
SHOWN = 4  # the first positions each visitor sees
HOT = [i["id"] for i in ITEMS if i["category"] == "candles-and-lights" and i["available"]][:3]


def _cli(*argv: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "slotwise", *argv], cwd=REPO, capture_output=True, text=True,
        timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout


def _arm(visitor: Visitor) -> str:
    return "control" if holdout_position(LIST, visitor.id) < SHARE else "personalised"


def _policies(tmp_path: Path) -> Path:
    policy = (SHOP / "policies" / "storefront.sw").read_text()
    head = 'recommend home_for_you at "$.sections.for_you.items" {\n'
    assert head in policy
    policy = policy.replace(head, head + "  holdout 50%\n")
    folder = tmp_path / "policies"
    folder.mkdir()
    (folder / "storefront.sw").write_text(policy)
    return folder


class _Arm:
    """What the test did in one arm: the hand computation's inputs."""

    def __init__(self) -> None:
        self.decisions = 0
        self.shown: dict[int, int] = {}
        self.clicked: dict[int, int] = {}
        self.converted = 0
        self.sessions = 0
        self.bounced = 0
        self.orders: list[float] = []


async def _pixel(visitor: Visitor, url: str) -> None:
    response = await visitor.client.get(f"{url}&aid={visitor.id}")
    assert response.status_code in (200, 204), response.text


async def _serve(tmp_path: Path) -> tuple[dict[str, _Arm], list[list[str]], list[list[str]]]:
    arms = {"personalised": _Arm(), "control": _Arm()}
    lists: dict[str, list[list[str]]] = {"personalised": [], "control": []}
    async with _storefront_behind_slotwise(tmp_path, _policies(tmp_path)) as base:
        crowd = Visitor(base)
        try:
            for product in HOT:  # views that make something trend: a list to fill
                await crowd.view(product)
            deadline = time.monotonic() + 30
            while True:  # until the catalogue is loaded the shop's list goes out untracked
                home = await crowd.get("/api/home")
                if all("tracking" in item for item in home["sections"]["for_you"]["items"]):
                    arms[_arm(crowd)].decisions += 1
                    break
                assert time.monotonic() < deadline, "the home page list was never filled"
                await asyncio.sleep(0.2)
        finally:
            await crowd.aclose()
        for i in range(VISITORS):
            visitor = Visitor(base)
            try:
                home = await visitor.get("/api/home")
                arm = arms[_arm(visitor)]
                items = home["sections"]["for_you"]["items"]
                assert items and all("tracking" in item for item in items)
                lists[_arm(visitor)].append([item["id"] for item in items])
                arm.decisions += 1
                arm.sessions += 1
                did = re.search(r"did=([^&]+)", items[0]["tracking"]["click"])
                assert did is not None
                await visitor.events({"type": "page_view", "properties": {"path": "/"}})
                for position, item in enumerate(items[:SHOWN], 1):
                    await _pixel(visitor, item["tracking"]["impression"])
                    arm.shown[position] = arm.shown.get(position, 0) + 1
                interacted = False
                if i % 3:  # two visitors in three click position 1 or 2
                    # (a list refreshed from one view so far holds one item: position 1)
                    position = min(1 + i % 2, len(items))
                    await _pixel(visitor, items[position - 1]["tracking"]["click"])
                    arm.clicked[position] = arm.clicked.get(position, 0) + 1
                    interacted = True
                if i % 4 == 1:  # one in four puts it in the cart and buys it
                    product = items[0]
                    props = {"product_id": product["id"], "price": 10.0, "currency": "GBP"}
                    await visitor.events(
                        {"type": "add_to_cart", "decision_id": did[1], "properties": props}
                    )
                    value = 20.0 + i
                    await visitor.events({
                        "type": "purchase", "decision_id": did[1],
                        "properties": {"order_id": f"o-{i}", "value": value, "currency": "GBP",
                                       "items": [{"product_id": product["id"]}]},
                    })  # fmt: skip
                    arm.converted += 1
                    arm.orders.append(value)
                    interacted = True
                arm.bounced += not interacted
            finally:
                await visitor.aclose()
    return arms, lists["personalised"], lists["control"]


async def _published(store_url: str, expect: str, timeout: float = 60.0) -> tuple[str, str]:
    """The dashboard page and metrics `slotwise learn` published, once ``expect`` is in."""
    deadline = time.monotonic() + timeout
    async with open_store(store_url) as store:
        while True:
            metrics = await store.get(METRICS_KEY)
            page = await store.get(PAGE_KEY)
            if metrics is not None and page is not None and expect in metrics.decode():
                return page.decode(), metrics.decode()
            assert time.monotonic() < deadline, "the learner never published the list's KPIs"
            await asyncio.sleep(0.5)


def _estimate(got: dict[str, Any], expected: stats.Interval) -> None:
    assert (got["value"], got["low"], got["high"]) == pytest.approx(
        (expected.value, expected.low, expected.high)
    )


def _check_list(home: dict[str, Any], arms: dict[str, _Arm]) -> None:
    overall = home["segments"][0]
    assert overall["segment"] == "all"
    for name in ("personalised", "control"):
        got, did = overall[name], arms[name]
        impressions, clicks = sum(did.shown.values()), sum(did.clicked.values())
        assert (got["decisions"], got["impressions"], got["clicks"], got["converted"]) == (
            did.decisions, impressions, clicks, did.converted
        )  # fmt: skip
        _estimate(got["ctr"], stats.wilson(clicks, impressions))
        _estimate(got["conversion_rate"], stats.wilson(did.converted, did.decisions))
        positions = {p["position"]: p for p in got["positions"]}
        for position, shown in did.shown.items():
            clicked = did.clicked.get(position, 0)
            assert (positions[position]["impressions"], positions[position]["clicks"]) == (
                shown, clicked
            )  # fmt: skip
            _estimate(positions[position]["ctr"], stats.wilson(clicked, shown))
    p, c = arms["personalised"], arms["control"]
    lifts = {lift["metric"]: lift for lift in overall["lifts"]}
    pi, pc = sum(p.shown.values()), sum(p.clicked.values())
    ci, cc = sum(c.shown.values()), sum(c.clicked.values())
    _estimate(lifts["ctr"]["absolute"], stats.rate_difference(pc, pi, cc, ci))
    # 16 visitors: far from enough to call it
    assert lifts["ctr"]["verdict"] == "not_enough_data"


async def test_list_ctr_and_storefront_kpis_by_arm(tmp_path: Path) -> None:
    arms, personalised, control = await _serve(tmp_path)
    assert personalised and control, "both arms drew visitors"
    # the control group got the shop's own list, the same for everyone; the others slotwise's
    assert all(ids == control[0] for ids in control)
    assert all(ids != control[0] for ids in personalised)
    store = f"sqlite://{tmp_path}/state.db"
    report = json.loads(_cli("report", "--store", store, "--format", "json"))
    home = {k["name"]: k for k in report["recommendations"]}[LIST]
    _check_list(home, arms)

    # the storefront KPIs of the sessions that saw the list, by arm
    by_arm = {a["name"]: a for a in report["storefront_by_arm"]}[LIST]["segments"][0]
    for name in ("personalised", "control"):
        got, did = by_arm[name], arms[name]
        assert got["sessions"] == did.sessions and got["orders"] == len(did.orders)
        _estimate(got["conversion_rate"], stats.wilson(did.converted, did.sessions))
        _estimate(got["bounce_rate"], stats.wilson(did.bounced, did.sessions))
        total = sum(did.orders)
        squares = sum(v * v for v in did.orders)
        _estimate(
            got["average_order_value"], stats.mean(stats.Moments(len(did.orders), total, squares))
        )
        assert got["enough_data"] is False  # a handful of sessions: shown as such
    lifts = {lift["metric"]: lift for lift in by_arm["lifts"]}
    p, c = arms["personalised"], arms["control"]
    _estimate(
        lifts["conversion_rate"]["absolute"],
        stats.rate_difference(p.converted, p.sessions, c.converted, c.sessions),
    )
    assert {lift["verdict"] for lift in lifts.values()} == {"not_enough_data"}

    text = _cli("report", "--store", store)
    assert "sessions exposed to home_for_you, by arm:" in text and "lift CTR:" in text

    # the live dashboard: `slotwise learn` counts the same logs incrementally and publishes
    # the page and the metrics every proxy serves (/_sw/dashboard, /_sw/metrics)
    config = tmp_path / "learn.toml"
    config.write_text(
        CONFIG.format(feed=SHOP / "catalogue.jsonl")
        + "\n[dashboard]\njoin_window = 1.0\nrefresh_interval = 1.0\n"
    )
    log = (tmp_path / "learn.log").open("wb")
    learner = subprocess.Popen(
        [sys.executable, "-m", "slotwise", "learn", "--config", str(config), "--store", store,
         "--policies", str(tmp_path / "policies"), "--models", str(tmp_path / "models")],
        cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        expect = f'slotwise_kpi_list_impressions{{list="{LIST}",arm="control"}}'
        page, metrics = await _published(store, expect)
    finally:
        learner.terminate()
        try:
            learner.wait(15)
        except subprocess.TimeoutExpired:
            learner.kill()
            learner.wait()
        log.close()
    for name in ("personalised", "control"):
        did = arms[name]
        impressions, clicks = sum(did.shown.values()), sum(did.clicked.values())
        labels = f'{{list="{LIST}",arm="{name}"}}'
        assert f"slotwise_kpi_list_impressions{labels} {float(impressions)!r}" in metrics
        assert f"slotwise_kpi_list_clicks{labels} {float(clicks)!r}" in metrics
        ctr = stats.wilson(clicks, impressions).value
        assert f"slotwise_kpi_list_ctr{labels} {ctr!r}" in metrics
    assert 'data-chart="recs-arms"' in page and 'data-chart="storefront-arms"' in page
    row = re.search(
        rf'<tr data-list="{LIST}" data-segment="all" data-arm="control">(.*?)</tr>', page
    )
    assert row is not None
    impressions = sum(arms["control"].shown.values())
    assert f'data-field="impressions" data-value="{impressions!r}"' in row[1]
