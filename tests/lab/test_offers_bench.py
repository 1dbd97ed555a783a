"""`slotwise bench offers` runs the offers step end to end and reports its figures."""

from __future__ import annotations

import json

import pytest

from slotwise.proxy.cli import main


def test_the_bench_reports_every_figure(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "offers", "--decisions", "200", "--format", "json"]) == 0
    figures = json.loads(capsys.readouterr().out)
    assert figures["decisions"] == 200
    assert 0.0 <= figures["undisturbed_share"] <= 1.0
    for kind in ("step_cpu", "choose", "step"):
        assert 0 < figures[f"{kind}_p50_us"] <= figures[f"{kind}_p99_us"]
    if figures["undisturbed_share"] > 0:
        assert figures["undisturbed_cpu_p50_us"] <= figures["undisturbed_cpu_p99_us"]
