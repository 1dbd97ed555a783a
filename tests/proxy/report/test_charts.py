"""The charts pygal draws for the report: self-contained, described, the arms' colours, too
little data hatched; and a proxy serving the dashboard never loads pygal."""

from __future__ import annotations

import subprocess
import sys
from xml.etree import ElementTree

from slotwise.proxy.report.charts import CONTROL, PERSONALISED, Row, interval_chart, line_chart
from tests.conftest import REPO
from tests.proxy.report.offline import assert_self_contained


def _parse(svg: str) -> ElementTree.Element:
    return ElementTree.fromstring(svg)  # well-formed XML, no namespace


def test_an_interval_chart_is_self_contained_and_described() -> None:
    rows = [
        ("mobile", Row("personalised", 0.12, 0.10, 0.14), Row("control", 0.10, 0.08, 0.12)),
        ("tablet", Row("personalised", 0.2, 0.01, 0.5, True), Row("control", None, None, None)),
    ]  # fmt: skip
    svg = interval_chart("rates-0", "Click rate by segment", rows)
    assert_self_contained(svg)
    root = _parse(svg)
    assert root.get("data-chart") == "rates-0" and root.get("role") == "img"
    assert "chart" in (root.get("class") or "").split()
    assert [child.tag for child in root[:2]] == ["title", "desc"]
    assert root[0].text == "Click rate by segment"
    desc = root[1].text or ""
    assert "mobile: personalised 12.0% (10.0% to 14.0%), control 10.0%" in desc
    assert "tablet: personalised 20.0% (1.0% to 50.0%) not enough data, control no data" in desc
    bars = [r for r in root.iter("rect") if "tooltip-trigger" in (r.get("class") or "")]
    assert len(bars) == 3  # the missing control figure is not drawn
    hatched = [r for r in bars if "url(#rates-0-faint-0)" in (r.get("style") or "")]
    assert len(hatched) == 1
    pattern = next(p for p in root.iter("pattern") if p.get("id") == "rates-0-faint-0")
    assert PERSONALISED in ElementTree.tostring(pattern, encoding="unicode")
    style = "".join(s.text or "" for s in root.iter("style"))
    assert PERSONALISED.lower() in style.lower() and CONTROL.lower() in style.lower()
    # the axis covers every interval bound: pygal alone scales to the values
    labels = [t.text for t in root.iter("text") if t.text and t.text.endswith("%")]
    assert any(float(label[:-1]) >= 50.0 for label in labels), labels


def test_a_line_chart_draws_both_arms_with_the_control_dashed() -> None:
    labels = ["10:00", "10:05", "10:10"]
    personalised = [Row("", 0.1, 0.08, 0.12), Row("", None, None, None), Row("", 0.12, 0.1, 0.14)]
    control = [Row("", 0.09, 0.07, 0.11), Row("", 0.08, 0.06, 0.1), Row("", 0.1, 0.08, 0.12)]
    svg = line_chart(
        "timeline-0", "Click rate over time", labels,
        [("personalised", personalised), ("control", control)],
    )  # fmt: skip
    assert_self_contained(svg)
    root = _parse(svg)
    dots = [c for c in root.iter("circle") if "dot" in (c.get("class") or "")]
    assert len(dots) == 5  # the missing point is a gap
    assert "10:05 no data" in (root[1].text or "")
    style = "".join(s.text or "" for s in root.iter("style"))
    assert "stroke-dasharray: 6,4" in style or "stroke-dasharray:6,4" in style


def test_a_proxy_serving_the_dashboard_never_loads_pygal() -> None:
    done = subprocess.run(
        [sys.executable, "-c", "import sys, slotwise.proxy.report.live, slotwise.proxy.app;"
         " print('pygal' in sys.modules)"],
        cwd=REPO, capture_output=True, text=True, check=True, timeout=120,
    )  # fmt: skip
    assert done.stdout.strip() == "False"
