"""`slotwise report`'s offers, triggers and recommended lists sections over a SQLite store:
small logs whose figures are computed here by hand, in JSON, text and HTML."""

from __future__ import annotations

import asyncio
import json
import math
from pathlib import Path
from typing import Any

import msgspec
import pytest

from slotwise.proxy.report.document import Report
from tests.proxy.report.logs import T0
from tests.proxy.report.offline import assert_self_contained
from tests.proxy.report.test_report_cli import _fill, _slotwise

Z = 1.959963984540054


def _decision(i: int, id: str, campaign: str, device: str, **extra: Any) -> bytes:
    held = extra.pop("holdout", False)
    slots = (
        []
        if held
        else extra.pop(
            "slots",
            [{"slot": "s", "variant": "v", "probability": 1.0, "candidates": ["v"]}],
        )
    )
    record = {
        "type": "decision", "id": id, "ts": T0 + i, "campaign": campaign, "holdout": held,
        "holdout_share": 0.25, "signals": {"device.type": device, **extra.pop("signals", {})},
        "slots": slots, **extra,
    }  # fmt: skip
    return json.dumps(record).encode()


def _event(i: int, kind: str, decision_id: str | None, **properties: Any) -> bytes:
    event: dict[str, Any] = {"type": kind, "id": f"e{i}", "time": T0 + 100 + i}
    if decision_id is not None:
        event["decision_id"] = decision_id
    if properties:
        event["properties"] = properties
    return json.dumps({"received": T0 + 100 + i, "consent": "personal", "event": event}).encode()


def _order(i: int, value: float, **extra: Any) -> dict[str, Any]:
    return {"order_id": f"order{i}", "items": extra.pop("items", []), "value": value,
            "currency": "EUR", **extra}  # fmt: skip


def _logs() -> tuple[list[bytes], list[bytes]]:
    d = [
        # offer set "welcome": control c1..c3 (holdout), discount_10 shown on o1..o4
        _decision(0, "c1", "offers.welcome", "mobile", holdout=True),
        _decision(1, "c2", "offers.welcome", "desktop", holdout=True),
        _decision(2, "c3", "offers.welcome", "mobile", holdout=True),
        _decision(3, "o1", "offers.welcome", "mobile", offer="o1.discount_10"),
        _decision(4, "o2", "offers.welcome", "desktop", offer="o2.discount_10"),
        _decision(5, "o3", "offers.welcome", "mobile", offer="o3.discount_10"),
        _decision(6, "o4", "offers.welcome", "desktop", offer="o4.discount_10"),
        # trigger cart_abandon: t1..t4 shown the campaign, h1, h2 its holdout
        *[_decision(7 + k, f"t{k + 1}", "rescue", "mobile", trigger="cart_abandon")
          for k in range(4)],
        *[_decision(11 + k, f"h{k + 1}", "rescue", "mobile", trigger="cart_abandon",
                    holdout=True) for k in range(2)],
        # recommendation "similar": three filled lists of two positions
        *[_decision(13 + k, f"r{k + 1}", "similar", "mobile",
                    signals={"recs.strategy": "also_viewed"},
                    slots=[{"slot": str(p), "variant": f"sku{p}", "probability": 1.0,
                            "candidates": []} for p in (1, 2)]) for k in range(3)],
    ]  # fmt: skip
    e = [
        # o1 redeemed, the shop says the discount was 10: revenue 100, discount 10
        _event(0, "purchase", None, **_order(0, 90.0, offer_id="o1.discount_10", discount=10.0)),
        # o2 shown and not redeemed: its decision id, revenue 50, no discount cost
        _event(1, "purchase", "o2", **_order(1, 50.0)),
        # o3 redeemed, no discount said: 10% of the priced items (200): revenue 200, cost 20
        _event(2, "purchase", None, **_order(
            2, 180.0, offer_id="o3.discount_10",
            items=[{"product_id": "p1", "quantity": 2, "price": 100.0}])),
        # a control converts: revenue 40
        _event(3, "purchase", "c1", **_order(3, 40.0)),
        # triggered: t1, t2, t3 convert; holdout: h1
        *[_event(4 + k, "purchase", f"t{k + 1}", **_order(4 + k, 10.0)) for k in range(3)],
        _event(7, "purchase", "h1", **_order(7, 10.0)),
        # the lists: r1 shown 1, 2 clicked 1; r2 shown 1, 2 clicked 2; r3 shown 1
        _event(8, "impression", "r1", slot="1"), _event(9, "impression", "r1", slot="2"),
        _event(10, "click", "r1", slot="1"),
        _event(11, "impression", "r2", slot="1"), _event(12, "impression", "r2", slot="2"),
        _event(13, "click", "r2", slot="2"),
        _event(14, "impression", "r3", slot="1"),
    ]  # fmt: skip
    return d, e


def _wilson(x: float, n: float) -> tuple[float, float, float]:
    p = x / n
    centre = (p + Z * Z / (2 * n)) / (1 + Z * Z / n)
    half = Z * math.sqrt(p * (1 - p) / n + Z * Z / (4 * n * n)) / (1 + Z * Z / n)
    return p, max(0.0, centre - half), min(1.0, centre + half)


def _mean(values: list[float]) -> tuple[float, float, float]:
    n = len(values)
    m = sum(values) / n
    var = sum((v - m) ** 2 for v in values) / (n - 1)
    half = Z * math.sqrt(var / n)
    return m, m - half, m + half


def _est(e: dict[str, Any]) -> tuple[float, float, float]:
    return e["value"], e["low"], e["high"]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('sections')}/state.db"
    asyncio.run(_fill(url, *_logs()))
    return url


@pytest.fixture(scope="module")
def report(store: str) -> dict[str, Any]:
    out = _slotwise("--store", store, "--segment-by", "device.type", "--format", "json")
    data: dict[str, Any] = json.loads(out.stdout)
    msgspec.convert(data, Report)  # the documented schema
    return data


def test_offers_by_arm_and_segment_against_control(report: dict[str, Any]) -> None:
    assert report["offers"]["status"] == "ok"
    (welcome,) = report["offer_sets"]
    assert welcome["name"] == "welcome"
    segments = {s["segment"]: {a["arm"]: a for a in s["arms"]} for s in welcome["segments"]}
    assert [s["segment"] for s in welcome["segments"]][0] == "all"
    arm, control = segments["all"]["discount_10"], segments["all"]["control"]
    assert [a["arm"] for a in welcome["segments"][0]["arms"]] == ["control", "discount_10"]
    # the joins: o1 by its offer id (discount 10), o2 by its decision id (none), o3 by its
    # offer id (10% of 200 = 20); o4 did not buy
    assert (arm["decisions"], arm["converted"]) == (4, 3)
    assert (arm["revenue"], arm["discount"]) == pytest.approx((350.0, 30.0))
    assert _est(arm["conversion_rate"]) == pytest.approx(_wilson(3, 4))
    assert _est(arm["revenue_per_decision"]) == pytest.approx(_mean([100, 50, 200, 0]))
    assert _est(arm["net_per_decision"]) == pytest.approx(_mean([90, 50, 180, 0]))
    assert _est(arm["average_discount"]) == pytest.approx(_mean([10, 0, 20]))
    assert (control["decisions"], control["converted"], control["revenue"]) == (3, 1, 40.0)
    assert _est(control["net_per_decision"]) == pytest.approx(_mean([40, 0, 0]))
    assert control["net_lift"] is None and control["verdict"] == "control"
    # against control: Welch on net per decision, Newcombe on the conversion rate
    net_a, net_c = [90, 50, 180, 0], [40, 0, 0]
    var = [sum((v - sum(x) / len(x)) ** 2 for v in x) / (len(x) - 1) for x in (net_a, net_c)]
    d = 80.0 - 40.0 / 3
    half = Z * math.sqrt(var[0] / 4 + var[1] / 3)
    assert _est(arm["net_lift"]) == pytest.approx((d, d - half, d + half))
    pa, la, ha = _wilson(3, 4)
    pc, lc, hc = _wilson(1, 3)
    low = pa - pc - math.sqrt((pa - la) ** 2 + (hc - pc) ** 2)
    high = pa - pc + math.sqrt((ha - pa) ** 2 + (pc - lc) ** 2)
    assert _est(arm["conversion_lift"]) == pytest.approx((pa - pc, low, high))
    # seven decisions are no finding
    assert arm["verdict"] == "not_enough_data" and arm["enough_data"] is False
    # by segment: mobile has o1, o3 and c1, c3
    mobile = segments["mobile"]
    assert (mobile["discount_10"]["decisions"], mobile["discount_10"]["revenue"]) == (2, 300.0)
    assert (mobile["control"]["decisions"], mobile["control"]["converted"]) == (2, 1)
    desktop = segments["desktop"]
    assert (desktop["discount_10"]["converted"], desktop["discount_10"]["discount"]) == (1, 0.0)


def test_triggers_against_their_holdout(report: dict[str, Any]) -> None:
    assert report["triggers"]["status"] == "ok"
    (t,) = report["trigger_results"]
    assert t["name"] == "cart_abandon"
    assert (t["triggered"]["decisions"], t["triggered"]["converted"]) == (4, 3)
    assert (t["holdout"]["decisions"], t["holdout"]["converted"]) == (2, 1)
    assert _est(t["triggered"]["conversion_rate"]) == pytest.approx(_wilson(3, 4))
    se = math.sqrt(1 / 3 - 1 / 4 + 1 / 1 - 1 / 2)
    ratio = (3 / 4) / (1 / 2)
    assert _est(t["relative"]) == pytest.approx(
        (ratio - 1, ratio * math.exp(-Z * se) - 1, ratio * math.exp(Z * se) - 1)
    )
    assert t["absolute"]["value"] == pytest.approx(0.25)
    assert t["verdict"] == "not_enough_data"


def test_recommended_lists_by_position(report: dict[str, Any]) -> None:
    (similar,) = report["recommendations"]
    assert report["storefront"]["status"] == "ok"
    assert similar["name"] == "similar" and similar["strategies"] == {"also_viewed": 3}
    assert (similar["decisions"], similar["impressions"], similar["clicks"]) == (3, 5, 2)
    assert _est(similar["ctr"]) == pytest.approx(_wilson(2, 5))
    positions = {p["position"]: p for p in similar["positions"]}
    assert (positions[1]["impressions"], positions[1]["clicks"]) == (3, 1)
    assert (positions[2]["impressions"], positions[2]["clicks"]) == (2, 1)
    assert _est(positions[1]["ctr"]) == pytest.approx(_wilson(1, 3))


def test_no_section_claims_a_served_feature_unserved(report: dict[str, Any], store: str) -> None:
    text = _slotwise("--store", store).stdout.decode()
    assert "not served yet" not in text and "not logged" not in text
    assert "offer set welcome" in text and "cart_abandon: triggered 4 decisions" in text
    assert "position  1:" in text
    for section in ("offers", "triggers", "storefront"):
        assert "not served" not in report[section]["reason"]
        assert "not logged" not in report[section]["reason"]


def test_the_html_carries_the_sections_figures(store: str, tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    _slotwise("--store", store, "--format", "html", "--output", str(page))
    html = page.read_text(encoding="utf-8")
    assert_self_contained(html)
    for chart in ('data-chart="offer-net-0"', 'data-chart="offer-conversion-0"',
                  'data-chart="triggers"', 'data-chart="recs-ctr"'):  # fmt: skip
        assert chart in html
    assert 'data-segment="all" data-arm="discount_10"' in html
    assert 'data-field="net_per_decision" data-value="80.0"' in html
    assert '<tr data-trigger="cart_abandon">' in html
    assert 'data-list="similar" data-position="2"' in html


def test_offers_from_exported_logs(tmp_path: Path) -> None:
    """Exported logs carry the learner's rewards: conversion (its revenue), discount_cost."""
    decisions = tmp_path / "decisions.jsonl"
    rewards = tmp_path / "rewards.jsonl"
    decisions.write_bytes(
        b"".join(
            _decision(i, f"o{i}", "offers.spring", "mobile", offer=f"o{i}.free_shipping") + b"\n"
            for i in range(3)
        )
        + _decision(3, "c0", "offers.spring", "mobile", holdout=True)
        + b"\n"
    )
    lines = [
        {"type": "reward", "decision_id": "o0", "ts": T0 + 10, "event": "conversion",
         "value": 60.0},
        {"type": "reward", "decision_id": "o0", "ts": T0 + 10, "event": "discount_cost",
         "value": 5.0},
    ]  # fmt: skip
    rewards.write_text("".join(json.dumps(x) + "\n" for x in lines))
    out = _slotwise(str(decisions), str(rewards), "--format", "json")
    (spring,) = json.loads(out.stdout)["offer_sets"]
    arms = {a["arm"]: a for a in spring["segments"][0]["arms"]}
    shipping = arms["free_shipping"]
    assert (shipping["decisions"], shipping["converted"], shipping["discount"]) == (3, 1, 5.0)
    assert _est(shipping["net_per_decision"]) == pytest.approx(_mean([55, 0, 0]))
    assert arms["control"]["decisions"] == 1
