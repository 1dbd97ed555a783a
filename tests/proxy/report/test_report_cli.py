"""`slotwise report` over exported logs and over a SQLite store: the figures, JSON = HTML."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import msgspec
import pytest

from slotwise.proxy.report import stats
from slotwise.proxy.report.document import Report
from slotwise.proxy.state import LogRecord, open_store
from tests.conftest import REPO
from tests.proxy.report.logs import make_logs, store_entries, write_files
from tests.proxy.report.offline import assert_self_contained


def _slotwise(*argv: str, ok: bool = True) -> subprocess.CompletedProcess[bytes]:
    done = subprocess.run(
        [sys.executable, "-m", "slotwise", "report", *argv],
        cwd=REPO, capture_output=True, timeout=120, check=False,
    )  # fmt: skip
    if ok:
        assert done.returncode == 0, done.stderr.decode()
    return done


def _segment(report: dict[str, Any], name: str) -> dict[str, Any]:
    (campaign,) = report["campaigns"]
    return next(s for s in campaign["segments"] if s["segment"] == name)


def test_the_report_over_exported_logs_counts_every_arm_and_segment(tmp_path: Path) -> None:
    truth = make_logs()
    logs = write_files(truth, tmp_path)
    out = _slotwise(*map(str, logs), "--segment-by", "device.type", "--format", "json")
    report = json.loads(out.stdout)
    msgspec.convert(report, Report)  # the documented schema
    for (segment, arm), (decisions, clicked) in truth.counts.items():
        got = _segment(report, segment)[arm]
        assert (got["decisions"], got["clicked"]) == (decisions, clicked), (segment, arm)
        low, high = stats.wilson(clicked, decisions).low, stats.wilson(clicked, decisions).high
        assert (got["click_rate"]["low"], got["click_rate"]["high"]) == pytest.approx((low, high))
    (campaign,) = report["campaigns"]
    assert campaign["sample_ratio"]["mismatch"] is False
    everyone = _segment(report, "all")
    lift = everyone["lifts"][0]
    assert lift["metric"] == "click_rate" and lift["verdict"] == "better"
    # the tablet segment is small: its lift is "not enough data", never a finding
    tablet = _segment(report, "tablet")
    assert tablet["control"]["decisions"] < stats.MIN_DECISIONS
    assert all(x["verdict"] == "not_enough_data" for x in tablet["lifts"])
    # variants and combinations with their share of the segment's personalised traffic
    variants = {v["name"]: v for v in campaign["variants"] if v["segment"] == "all"}
    personalised = truth.counts["all", "personalised"][0]
    assert variants["cta=shop"]["share"] == 1.0
    assert variants["headline=h1"]["decisions"] + variants["headline=h2"]["decisions"] == (
        personalised
    )
    assert (
        variants["headline=h2"]["click_rate"]["value"]
        > variants["headline=h1"]["click_rate"]["value"]
    )
    assert {c["name"] for c in campaign["combinations"] if c["segment"] == "all"} == {
        "headline=h1, cta=shop",
        "headline=h2, cta=shop",
    }
    assert sum(p["personalised_decisions"] for p in campaign["timeline"]) == personalised
    assert report["offers"]["status"] == "no_data"


def test_a_broken_split_is_flagged(tmp_path: Path) -> None:
    truth = make_logs(4000)
    for d in truth.decisions:
        d["holdout_share"] = 0.1  # the log says 10%, the split was 20%
    logs = write_files(truth, tmp_path)
    report = json.loads(_slotwise(*map(str, logs), "--format", "json").stdout)
    assert report["campaigns"][0]["sample_ratio"]["mismatch"] is True
    text = _slotwise(*map(str, logs)).stdout.decode()
    assert "MISMATCH" in text


class _Cells(HTMLParser):
    """(campaign, segment, arm, field) -> data-value of the segments tables' cells."""

    def __init__(self) -> None:
        super().__init__()
        self.campaign = ""
        self.row: dict[str, str] = {}
        self.cells: dict[tuple[str, str, str], float] = {}
        self.charts = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "section" and "data-campaign" in a:
            self.campaign = a["data-campaign"]
        if tag == "svg" and "chart" in a.get("class", ""):
            self.charts += 1
        if tag == "tr" and "data-arm" in a:
            self.row = a
        elif tag == "tr":
            self.row = {}
        if tag == "td" and self.row and "data-value" in a:
            row = (self.campaign, self.row["data-segment"], self.row["data-arm"])
            self.cells[(*row, a["data-field"])] = float(a["data-value"])
            for bound in ("low", "high"):
                if f"data-{bound}" in a:
                    self.cells[(*row, f"{a['data-field']}.{bound}")] = float(a[f"data-{bound}"])


def test_the_html_shows_the_json_figures(tmp_path: Path) -> None:
    logs = write_files(make_logs(), tmp_path)
    common = (*map(str, logs), "--segment-by", "device.type")
    report = json.loads(_slotwise(*common, "--format", "json").stdout)
    page = tmp_path / "report.html"
    _slotwise(*common, "--format", "html", "--output", str(page))
    html = page.read_text(encoding="utf-8")
    assert_self_contained(html)
    cells = _Cells()
    cells.feed(html)
    assert cells.charts == 4  # rates, lift, variants, timeline
    compared = 0
    for segment in report["campaigns"][0]["segments"]:
        for arm in ("personalised", "control"):
            figures = segment[arm]
            key = ("spring", segment["segment"], arm)
            assert cells.cells[(*key, "decisions")] == figures["decisions"]
            assert cells.cells[(*key, "clicked")] == figures["clicked"]
            for bound in ("value", "low", "high"):
                name = "click_rate" if bound == "value" else f"click_rate.{bound}"
                assert cells.cells[(*key, name)] == figures["click_rate"][bound]
                compared += 1
    assert compared == 3 * 2 * 4


async def _fill(url: str, decisions: list[bytes], events: list[bytes]) -> None:
    store = open_store(url)
    async with store:
        for log, data in (("decisions", decisions), ("events", events)):
            for start in range(0, len(data), 500):
                await store.log_append(log, [LogRecord(d) for d in data[start : start + 500]])


def test_the_report_over_the_store_reads_impressions_and_clicks(tmp_path: Path) -> None:
    truth = make_logs(3000)
    url = f"sqlite:///{tmp_path}/state.db"
    asyncio.run(_fill(url, *store_entries(truth)))
    report = json.loads(_slotwise("--store", url, "--format", "json").stdout)
    everyone = _segment(report, "all")
    for arm in ("personalised", "control"):
        decisions, clicked = truth.counts["all", arm]
        assert everyone[arm]["decisions"] == decisions
        assert everyone[arm]["impressions"] == decisions  # every decision had an impression
        assert everyone[arm]["clicked"] == clicked
    assert report["totals"]["unmatched_events"] == 0
    # --since/--until and --campaign select decisions; the rest is counted as outside
    half = truth.decisions[1500]["ts"]
    part = json.loads(_slotwise("--store", url, "--since", str(half), "--format", "json").stdout)
    assert part["totals"]["outside"] == 1500
    assert part["campaigns"][0]["decisions"] == 1500
    none = json.loads(_slotwise("--store", url, "--campaign", "x", "--format", "json").stdout)
    assert none["campaigns"] == []


def test_bad_input_gets_a_clear_error(tmp_path: Path) -> None:
    missing = _slotwise(str(tmp_path / "nope.jsonl"), ok=False)
    assert missing.returncode == 2 and b"no such log file" in missing.stderr
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"type": "decision"}\n')
    broken = _slotwise(str(bad), ok=False)
    assert broken.returncode == 1 and f"{bad}:1".encode() in broken.stderr
    assert b"Traceback" not in broken.stderr
    no_store = _slotwise("--store", f"sqlite:///{tmp_path}/none.db", ok=False)
    assert no_store.returncode != 0 and b"nothing was created" in no_store.stderr
    times = _slotwise(str(bad), "--since", "tomorrow", ok=False)
    assert times.returncode != 0 and b"--since" in times.stderr


def test_the_schema_is_printed() -> None:
    schema = json.loads(_slotwise("--schema").stdout)
    assert "Report" in schema["$defs"] and "Lift" in schema["$defs"]
