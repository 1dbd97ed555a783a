"""`slotwise bench proxy`'s report: per-run figures, medians over runs, and the checks.

The measurement itself (wrk, nginx, the proxy) is tests/benchmarks/test_proxy_bench.py.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest

from slotwise.lab.proxy_bench import _PACED, Row, _figures, _paced_script, _report
from slotwise.proxy.cli import main


def _run(c: float, d: float, a_paced_p99: float, b_paced_p99: float, engine_p99: float) -> Any:
    rows = [
        Row("(a) upstream direct", 30000, 2.0, 4.0),
        Row("(b) slotwise, no campaign applies", 8000, 6.0, 12.0),
        Row("(c) slotwise, 3-slot campaign", c, 9.0, 18.0),
        Row("(a) upstream direct at 4,000 req/s, random gaps", 4000, 1.0, a_paced_p99),
        Row("(b) slotwise at 4,000 req/s, random gaps", 4000, 1.5, b_paced_p99),
        # bursts at wrk's timer ticks: far worse, and never what a target reads
        Row("(a) upstream direct at 4,000 req/s, fixed gaps", 4000, 1.0, a_paced_p99 + 1),
        Row("(b) slotwise at 4,000 req/s, fixed gaps", 4000, 1.5, b_paced_p99 + 9),
        Row("(c') slotwise, 3-slot, no providers", 9000, 7.0, 14.0),
        Row("(f) slotwise, forwarding only", 15000, 3.0, 8.0),
        Row("(d) nginx proxy_pass", d, 1.5, 9.0),
    ]
    engine = {"p50_ms": 0.05, "p99_ms": engine_p99, "mean_ms": 0.06}
    return {
        "rows": [asdict(r) for r in rows],
        "engine": engine,
        "decision_histogram_p99_bucket_ms": 0.1,
        "figures": _figures(rows, engine),
    }


def test_one_run_is_checked_on_its_own_figures() -> None:
    report = _report([_run(7000, 26000, 3.0, 4.5, 0.05)], seconds=10)
    assert report["figures"]["c_share_of_d"] == 7000 / 26000
    # shown, not checked: forwarding alone bounds what (c) could reach against (d)
    assert report["figures"]["f_share_of_d"] == 15000 / 26000
    assert "(f) " not in " ".join(report["checks"])
    assert report["figures"]["b_paced_p99_over_a_ms"] == 1.5
    assert report["figures"]["b_fixed_paced_p99_over_a_ms"] == 9.5
    assert report["checks"] == {
        "(c) >= 6000 req/s": True,
        "engine p99 <= 1 ms": True,
        "(b) adds <= 2 ms p99 over (a) at half of (b)'s peak": True,
        "(c) >= 25% of (d)": True,
    }
    assert report["repeat"] == 1 and "runs" not in report


def test_several_runs_check_the_medians_of_per_run_figures() -> None:
    runs = [
        _run(7000, 20000, 3.0, 4.0, 0.05),  # 35% of its own (d); paced +1.0 ms
        _run(6500, 32000, 2.0, 6.0, 0.06),  # 20.3%; +4.0 ms
        _run(5500, 30000, 2.5, 5.5, 0.07),  # 18.3%; +3.0 ms
    ]
    report = _report(runs, seconds=10)
    rows = {row["name"]: row for row in report["rows"]}
    assert rows["(c) slotwise, 3-slot campaign"]["rps"] == 6500
    # the paced rows' rates differ per run: their names say what they are instead
    assert rows["(b) slotwise at half of (b)'s peak, random gaps"]["p99_ms"] == 5.5
    assert rows["(b) slotwise at half of (b)'s peak, fixed gaps"]["p99_ms"] == 14.5
    # the share of (d) is the median of each run's own share, not median(c) / median(d)
    assert report["figures"]["c_share_of_d"] == 6500 / 32000
    assert report["figures"]["b_paced_p99_over_a_ms"] == 3.0
    assert report["checks"]["(c) >= 6000 req/s"] is True
    assert report["checks"]["(c) >= 25% of (d)"] is False
    assert report["met_in_runs"] == {
        "(c) >= 6000 req/s": 2,
        "engine p99 <= 1 ms": 3,
        "(b) adds <= 2 ms p99 over (a) at half of (b)'s peak": 1,
        "(c) >= 25% of (d)": 1,
    }
    assert len(report["runs"]) == 3 and report["engine"]["p99_ms"] == 0.06


def test_paced_scripts_send_at_the_rate_asked(tmp_path: Path) -> None:
    # 64 connections at 6,400 req/s: each waits 10 ms on average between its requests
    fixed = _paced_script(tmp_path, 6400, "fixed gaps").read_text()
    random = _paced_script(tmp_path, 6400, "random gaps").read_text()
    assert "local interval = 10\n" in fixed
    assert "local mean = 10.000\n" in random and "math.randomseed(1)" in random
    assert sorted(_PACED) == ["fixed gaps", "random gaps"]


def test_repeat_must_be_positive(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "proxy", "--repeat", "0"]) == 2
    assert "--repeat must be 1 or more, got 0" in capsys.readouterr().err
