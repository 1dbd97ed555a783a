"""The HTML report in real headless Chromium, offline: every chart is drawn (its screenshot
shows the arms' colours), nothing is fetched, the page needs no script."""

from __future__ import annotations

import asyncio
import base64
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO
from tests.proxy.report.logs import make_logs, write_files
from tests.proxy.report.test_report_cli import _fill
from tests.proxy.report.test_report_sections import _logs
from tests.support.chromium import chromium
from tests.support.png import count_colour

pytestmark = [pytest.mark.browser, pytest.mark.slow]
BLUE = (0x00, 0x72, 0xB2)  # the personalised arm (slotwise.proxy.report.charts)
VERMILLION = (0xD5, 0x5E, 0x00)  # the control arm


def _report(tmp_path: Path) -> Path:
    logs = write_files(make_logs(), tmp_path)
    page = tmp_path / "report.html"
    subprocess.run(
        [sys.executable, "-m", "slotwise", "report", *map(str, logs), "--segment-by",
         "device.type", "--format", "html", "--output", str(page)],
        cwd=REPO, check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    return page


def _render(page: Path, tmp_path: Path) -> tuple[list[dict[str, Any]], dict[str, bytes], int, str]:
    """The page's charts (kind, box, marks, title), a screenshot of each, the resources
    fetched, and a screenshot of the whole page (base64)."""
    with chromium(tmp_path / "chromium") as browser:
        browser.send("Network.enable")
        browser.send("Network.setBlockedURLs", {"urls": ["http://*", "https://*", "ws://*"]})
        browser.send("Emulation.setScriptExecutionDisabled", {"value": True})
        browser.send(
            "Emulation.setDeviceMetricsOverride",
            {"width": 1200, "height": 900, "deviceScaleFactor": 1, "mobile": False},
        )
        browser.navigate(page.as_uri())
        browser.wait_for("document.readyState === 'complete'")
        charts = browser.evaluate(
            "Array.from(document.querySelectorAll('svg.chart')).map(s => {"
            " const r = s.getBoundingClientRect();"
            " return {kind: s.dataset.chart, x: r.x + scrollX, y: r.y + scrollY,"
            " w: r.width, h: r.height, role: s.getAttribute('role'),"
            # pygal's bars and dots (not its backgrounds, legend boxes or hatch patterns)
            " marks: s.querySelectorAll('.series rect.reactive, .series circle.dot').length,"
            " title: s.querySelector(':scope > title').textContent,"
            " desc: s.querySelector(':scope > desc').textContent}; })"
        )
        # nothing fetched, no script in the page, no stylesheet from outside it
        fetched = browser.evaluate(
            "performance.getEntriesByType('resource').length + document.scripts.length"
            " + Array.from(document.styleSheets).filter(s => s.href).length"
        )
        shots = {}
        for chart in charts:
            clip = {k: chart[k[0]] for k in ("x", "y")} | {
                "width": chart["w"],
                "height": chart["h"],
                "scale": 1,
            }
            shot = browser.send(
                "Page.captureScreenshot",
                {"format": "png", "clip": clip, "captureBeyondViewport": True},
            )
            shots[chart["kind"]] = base64.b64decode(shot["data"])
        whole = browser.send("Page.captureScreenshot", {"format": "png"})
    return charts, shots, fetched, whole["data"]


def test_the_html_report_renders_every_chart_offline(tmp_path: Path) -> None:
    page = _report(tmp_path)
    charts, shots, fetched, whole = _render(page, tmp_path)
    assert fetched == 0
    assert [c["kind"] for c in charts] == ["rates-0", "lift-0", "variants-0", "timeline-0"]
    for chart in charts:
        assert chart["w"] > 300 and chart["h"] > 100 and chart["marks"] >= 3, chart
        assert chart["title"] and chart["desc"] and chart["role"] == "img", chart
        blue = count_colour(shots[chart["kind"]], BLUE)
        assert blue > 50, f"{chart['kind']}: the personalised arm is not drawn ({blue} px)"
    for kind in ("rates-0", "timeline-0"):  # the charts with both arms
        assert count_colour(shots[kind], VERMILLION) > 50, kind
    (tmp_path / "report.png").write_bytes(base64.b64decode(whole))


def test_the_offers_triggers_and_lists_charts_render_offline(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/state.db"
    asyncio.run(_fill(url, *_logs()))
    page = tmp_path / "sections.html"
    subprocess.run(
        [sys.executable, "-m", "slotwise", "report", "--store", url, "--format", "html",
         "--output", str(page)],
        cwd=REPO, check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    charts, shots, fetched, _ = _render(page, tmp_path)
    assert fetched == 0
    by_kind = {c["kind"]: c for c in charts}
    for kind in ("offer-net-0", "offer-conversion-0", "triggers", "recs-ctr"):
        chart = by_kind[kind]
        assert chart["w"] > 300 and chart["h"] > 80 and chart["marks"] >= 2, chart
        assert chart["title"] and chart["desc"] and chart["role"] == "img", chart
        blue = count_colour(shots[chart["kind"]], BLUE)
        assert blue > 50, f"{chart['kind']}: nothing drawn in the first colour ({blue} px)"
    assert count_colour(shots["triggers"], VERMILLION) > 50  # the holdout
