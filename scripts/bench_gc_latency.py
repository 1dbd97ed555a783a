"""Paced browser-like requests against `slotwise serve` at several `proxy.gc_threshold` values.

Usage (from anywhere; needs scripts/bench-deps)::

    .venv/bin/python scripts/bench_gc_latency.py [--thresholds 700,2000,10000] [--rate 4000]
        [--rounds 4] [--seconds 8]

One nginx upstream serving the bench's creatives (CPU 1) and one `slotwise serve` per threshold
(one worker, memory store, built-in providers, the bench's 3-slot campaign, CPU 0), all started
first; then, round by round (the order reversed every other round), wrk on CPU 1 sends each
one browser-like requests (`slotwise bench proxy`'s row (e) headers) at ``--rate`` with random
(exponential) gaps, the way visitors arrive. Prints each run's rate, p50, p99 and the worker's
CPU per request, then the medians per threshold with each worker's collections by generation
and its decisions failed open for the deadline: what a larger young generation (fewer, longer
collections) does to the latency users see, beside what it saves.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import tempfile
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from slotwise.lab.proxy_bench import (  # noqa: E402
    _BROWSER,
    _CONNECTIONS,
    _NGINX_UPSTREAM,
    _PACED,
    Row,
    _proc,
    _write_fixtures,
    _wrk,
)
from slotwise.proxy.loopback import free_port, wait_for_port  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--thresholds", default="700,2000,10000")
    parser.add_argument("--rate", type=float, default=4000.0, help="requests per second")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--seconds", type=int, default=8)
    args = parser.parse_args()
    thresholds = [t.strip() for t in args.thresholds.split(",") if t.strip()]
    d = Path(tempfile.mkdtemp(prefix="slotwise-gc-latency-"))
    d.chmod(0o755)  # nginx workers run as an unprivileged user
    _write_fixtures(d)
    mean = _CONNECTIONS / args.rate * 1000  # each connection's mean gap, ms
    paced = d / "paced-browser.lua"
    paced.write_text(_BROWSER + _PACED["random gaps"].format(mean=f"{mean:.3f}", interval=1))
    up_port = free_port()
    (d / "up.conf").write_text(_NGINX_UPSTREAM.format(d=d, port=up_port))
    results: dict[str, list[Row]] = {t: [] for t in thresholds}
    with contextlib.ExitStack() as stack:
        upstream = ["taskset", "-c", "1", "nginx", "-c", str(d / "up.conf")]
        stack.enter_context(_proc(upstream, d / "up.log"))
        wait_for_port(up_port, timeout=20.0)
        servers: dict[str, tuple[int, int]] = {}
        for threshold in thresholds:
            port = free_port()
            env = dict(
                os.environ,
                SLOTWISE_PROXY_RELOAD_INTERVAL="0",
                SLOTWISE_PLUGINS="builtins",
                SLOTWISE_PROXY_SHED_BUSY="1",  # measured, never sheds
                SLOTWISE_PROXY_SHED_QUEUE_MS="60000",
                SLOTWISE_PROXY_GC_THRESHOLD=threshold,
            )
            serve = [
                "taskset", "-c", "0", sys.executable, "-m", "slotwise", "serve",
                "--upstream", f"http://127.0.0.1:{up_port}", "--policies", str(d / "policies"),
                "--port", str(port), "--store", "memory://",
            ]  # fmt: skip
            proxy = stack.enter_context(_proc(serve, d / f"proxy-{threshold}.log", env))
            wait_for_port(port, timeout=30.0)
            servers[threshold] = (port, proxy.pid)
            _wrk("warm-up", f"http://127.0.0.1:{port}/ads/home-top", 3)
        for n in range(args.rounds):
            for threshold in thresholds if n % 2 == 0 else thresholds[::-1]:
                port, pid = servers[threshold]
                url = f"http://127.0.0.1:{port}/ads/home-top"
                row = _wrk(threshold, url, args.seconds, paced, pid=pid)
                results[threshold].append(row)
                print(
                    f"round {n + 1}, gc_threshold {threshold}: {row.rps:,.0f} req/s, p50 "
                    f"{row.p50_ms:.2f} ms, p99 {row.p99_ms:.2f} ms, {row.cpu_us or 0:.1f} us CPU"
                    "/request",
                    flush=True,
                )
        # what the collector did meanwhile, and whether a pause ever cost a decision its
        # deadline (engine time is wall-clock time: a collection inside it counts)
        finals = {t: _scrape(port) for t, (port, _) in servers.items()}
    for threshold, rows in results.items():
        metrics = finals[threshold]
        print(
            f"gc_threshold {threshold}: median p99 "
            f"{statistics.median(r.p99_ms for r in rows):.2f} ms, p50 "
            f"{statistics.median(r.p50_ms for r in rows):.2f} ms, "
            f"{statistics.median(r.cpu_us or 0 for r in rows):.1f} us CPU/request; collections "
            f"by generation {_samples(metrics, 'process_gc_collections_total')}, deadline "
            f"fail-opens {sum(_samples(metrics, 'slotwise_fail_open_total', 'deadline')):.0f}"
        )
    return 0


def _scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/_sw/metrics", timeout=10) as answer:
        text: str = answer.read().decode()
    return text


def _samples(metrics: str, name: str, label: str = "") -> list[float]:
    return [
        float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith(name + "{") and label in line
    ]


if __name__ == "__main__":
    sys.exit(main())
