"""Adding up the workers' metrics (slotwise.proxy.metrics_share.merge)."""

from __future__ import annotations

import os
from pathlib import Path

from slotwise.proxy.metrics_share import SharedMetrics, clear, merge, process_metrics

_A = """# HELP slotwise_requests_total Requests.
# TYPE slotwise_requests_total counter
slotwise_requests_total{status="2xx"} 3
# HELP slotwise_latency_seconds Latency.
# TYPE slotwise_latency_seconds histogram
slotwise_latency_seconds_bucket{le="0.1"} 2
slotwise_latency_seconds_bucket{le="+Inf"} 3
slotwise_latency_seconds_sum 0.25
slotwise_latency_seconds_count 3
# HELP slotwise_decision_log_pending Pending.
# TYPE slotwise_decision_log_pending gauge
slotwise_decision_log_pending 2
# HELP slotwise_policy_info Version.
# TYPE slotwise_policy_info gauge
slotwise_policy_info{version="v2"} 1
"""
_B = _A.replace("} 3\n", "} 4\n").replace("pending 2", "pending 5")
_B = _B.replace('version="v2"', 'version="v1"').replace('status="2xx"', 'status="5xx"')


def test_counters_add_up_over_every_worker_gauges_over_live_ones() -> None:
    merged = merge([(_A, True), (_A, True), (_B, False)])
    assert 'slotwise_requests_total{status="2xx"} 6\n' in merged
    assert 'slotwise_requests_total{status="5xx"} 4\n' in merged  # a dead worker's counts stay
    assert 'slotwise_latency_seconds_bucket{le="+Inf"} 10\n' in merged
    assert "slotwise_latency_seconds_sum 0.75\n" in merged
    assert "slotwise_decision_log_pending 4\n" in merged  # the dead worker's 5 is gone
    assert 'slotwise_policy_info{version="v2"} 1\n' in merged
    assert 'version="v1"' not in merged
    assert merged.count("# TYPE slotwise_requests_total counter") == 1
    assert merge([(_A, True), (_B, True)]).count("slotwise_policy_info{") == 2


def test_info_gauges_take_the_largest_and_store_up_the_smallest() -> None:
    up = "# TYPE slotwise_store_up gauge\nslotwise_store_up {}\n"
    info = '# TYPE slotwise_model_info gauge\nslotwise_model_info{{campaign="c"}} {}\n'
    assert "slotwise_store_up 0\n" in merge([(up.format(1), True), (up.format(0), True)])
    assert 'info{campaign="c"} 1\n' in merge([(info.format(1), True), (info.format(1), True)])


def test_each_workers_file_is_read_by_the_others(tmp_path: Path) -> None:
    me = SharedMetrics(tmp_path, pid=os.getpid())
    other = SharedMetrics(tmp_path, pid=os.getppid())
    dead = SharedMetrics(tmp_path, pid=2**22 + 7)  # above pid_max's default: no such process
    other.write(_B + process_metrics(os.getppid()))
    dead.write(_B + process_metrics(os.getppid()).replace(str(os.getppid()), str(dead.pid)))
    merged = me.merged(_A + process_metrics(os.getpid()))
    assert 'slotwise_requests_total{status="5xx"} 8\n' in merged
    assert "slotwise_decision_log_pending 7\n" in merged
    assert merged.count("process_resident_memory_bytes{") == 2  # the dead worker's is left out
    assert f'process_cpu_seconds_total{{worker="{dead.pid}"}}' not in merged
    clear(tmp_path)
    assert not list(tmp_path.glob("*.prom"))
