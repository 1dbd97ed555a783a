"""`slotwise bench proxy` end to end (short runs): every row is measured and reported."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.support.servers import require_binary


@pytest.mark.benchmark
def test_bench_proxy_reports_every_row() -> None:
    require_binary("wrk")
    require_binary("nginx")
    result = subprocess.run(
        [sys.executable, "-m", "slotwise", "bench", "proxy", "--seconds", "2", "--format", "json"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode in (0, 1), result.stderr  # 1: a target was missed, still a report
    report = json.loads(result.stdout)
    names = [row["name"].split(" ")[0] for row in report["rows"]]
    assert names[:3] == ["(a)", "(b)", "(c)"] and {"(d)", "(e)", "(f)", "(g)", "(h)"} <= set(names)
    assert all(row["rps"] > 0 for row in report["rows"])
    # CPU per request beside req/s, for every row at full load (not the paced ones)
    cpu = {
        row["name"].split(" ")[0]: row["cpu_us"]
        for row in report["rows"]
        if " at " not in row["name"]
    }
    assert all(value is not None and value > 0 for value in cpu.values()), cpu
    assert report["engine"]["p50_ms"] > 0
    print(json.dumps(report, indent=2))
