"""``slotwise bench proxy``: throughput and latency of the proxy against baselines, in one run.

Rows, all against the same upstream (nginx serving the example ad server's JSON creatives,
about 2 KB each), with wrk at 64 connections:

- (a) the upstream directly;
- (b) through slotwise, a campaign set loaded but none applying to the response;
- (c) through slotwise, personalising a 3-slot campaign (headline, image, CTA);
- (d) nginx ``proxy_pass`` (keep-alive upstream), the reference proxy, when nginx is installed;
- (c') as (c) without signal providers and (f) forwarding only (no policies): where the time
  goes; (e) as (c) with the headers a browser sends (agent, language, referrer, consent and
  user cookies, country), so the providers have real work;
- (g) and (h): requests as browsers send them from 1,000 consenting users whose profiles and
  event histories are in the store (written through the proxy's own endpoints first,
  slotwise.lab.proxy_bench_users), to a campaign whose rules read them: (g) with the rule
  chooser, (h) with the bandit chooser (a proxy with ``bandit.models_dir``: untrained models,
  so VW predicts for every decision).

Beside req/s, every row reports the CPU time the serving process (and its workers) spent per
request during the run, from ``/proc``: on a shared machine the throughput moves with the
neighbours, CPU per request much less.

The proxy (one worker) and nginx-as-proxy are pinned to CPU 0; the upstream and wrk share
CPU 1. Then the latency check: (a) and (b) paced at half of (b)'s peak rate (wrk's Lua
``delay``), twice: with random (exponential) gaps between a connection's requests, which the
target reads, and with fixed gaps. wrk fires its timers on millisecond ticks, so with fixed
gaps the 64 connections send in bursts that no arrival process of real visitors has (the
upstream alone shows a p50 several times the one with random gaps at the same rate); random
gaps give arrivals close to a Poisson process at the same mean rate. Engine time per decision
comes from an in-process run of the decision code on the same body (p50/p99 over thousands of
decisions) and from the proxy's histogram.
``--repeat N`` measures everything N times and reports the median of every row and of every
per-run figure the targets read (each run's (c) against its own (d), its paced (b) against its
own paced (a)), with how many runs met each target: on a shared machine single runs move by
tens of percent. Needs wrk and nginx: ``scripts/bench-deps``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from slotwise.lab import proxy_bench_users as users
from slotwise.proxy.cli import EXIT_FAILED, UsageError
from slotwise.proxy.loopback import free_port, wait_for_port

_CONNECTIONS = 64
_BENCH_POLICY = (
    """policy "bench" version 1

campaign spring_sale {
  applies when ad.campaign_id == "cmp-spring"
"""
    + users.CREATIVE_SLOTS
    + """  optimize clicks
}
"""
)
_NGINX_UPSTREAM = """worker_processes 1; daemon off; pid {d}/up.pid; error_log {d}/up-error.log;
events {{ worker_connections 4096; }}
http {{ access_log off; keepalive_requests 10000000; keepalive_timeout 120s;
  server {{ listen 127.0.0.1:{port};
    location /ads/ {{ alias {d}/www/; default_type application/json; }} }} }}
"""
_NGINX_PROXY = """worker_processes 1; daemon off; pid {d}/px.pid; error_log {d}/px-error.log;
events {{ worker_connections 4096; }}
http {{ access_log off; keepalive_requests 10000000;
  upstream origin {{ server 127.0.0.1:{upstream}; keepalive 128; }}
  server {{ listen 127.0.0.1:{port};
    location / {{ proxy_pass http://origin; proxy_http_version 1.1;
                  proxy_set_header Connection ""; }} }} }}
"""
_PACED = {
    # exponential gaps with this mean (ms), from a fixed seed: the same arrivals for (a) and (b)
    "random gaps": """local mean = {mean}
math.randomseed(1)
function delay() return math.floor(-math.log(1 - math.random()) * mean + 0.5) end
""",
    "fixed gaps": """local interval = {interval}
function delay() return interval end
""",
}
# What a browser sends with an ad request: the providers parse a real agent, a language, a
# referrer, the consent and user cookies, a country (wrk's bare requests leave them idle)
_BROWSER = """wrk.headers["User-Agent"] = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) \
AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1"
wrk.headers["Accept-Language"] = "de-DE,de;q=0.9,en;q=0.8"
wrk.headers["Referer"] = "https://www.google.com/"
wrk.headers["Cookie"] = "sw_uid=u-12345; sw_consent=personal"
wrk.headers["CF-IPCountry"] = "DE"
"""


@dataclass
class Row:
    name: str
    rps: float
    p50_ms: float
    p99_ms: float
    cpu_us: float | None = None  # CPU per request of the process that served the row


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seconds", type=int, default=10, help="duration of each wrk run")
    parser.add_argument("--format", choices=["text", "json", "markdown"], default="text")
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="measure everything this many times; report medians and per-run ratios",
    )


def run(args: argparse.Namespace) -> int:
    if args.repeat < 1:
        raise UsageError(f"--repeat must be 1 or more, got {args.repeat}")
    if args.seconds < 1:
        raise UsageError(f"--seconds must be 1 or more, got {args.seconds}")
    wrk = shutil.which("wrk")
    nginx = shutil.which("nginx") or (
        "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None
    )
    if wrk is None or nginx is None:
        raise UsageError(
            "needs wrk and nginx: run scripts/bench-deps (apt-get install wrk nginx-light)"
        )
    if shutil.which("taskset") is None or (os.cpu_count() or 1) < 2:
        raise UsageError("needs taskset and at least 2 CPUs (proxy on one, load on the other)")
    runs = [_one_run(nginx, args.seconds) for _ in range(args.repeat)]
    report = _report(runs, args.seconds)
    _print(report, args.format)
    return 0 if all(report["checks"].values()) else EXIT_FAILED


def _one_run(nginx: str, seconds: int) -> dict[str, Any]:
    """Every row once, in one set of processes, with the engine time and histogram."""
    with tempfile.TemporaryDirectory(prefix="slotwise-bench-") as tmp:
        d = Path(tmp)
        d.chmod(0o755)  # nginx workers run as an unprivileged user
        _write_fixtures(d)
        up_port, proxy_port, nginx_port = free_port(), free_port(), free_port()
        (d / "up.conf").write_text(_NGINX_UPSTREAM.format(d=d, port=up_port))
        (d / "px.conf").write_text(_NGINX_PROXY.format(d=d, port=nginx_port, upstream=up_port))
        rows: list[Row] = []
        up_conf = ["taskset", "-c", "1", nginx, "-c", str(d / "up.conf")]
        with _proc(up_conf, d / "up.log") as up:
            wait_for_port(up_port, timeout=20.0)
            upstream = f"http://127.0.0.1:{up_port}"
            rows.append(
                _wrk("(a) upstream direct", f"{upstream}/ads/home-top", seconds, pid=up.pid)
            )
            serve = [
                "taskset", "-c", "0", sys.executable, "-m", "slotwise", "serve",
                "--upstream", upstream, "--policies", str(d / "policies"),
                "--port", str(proxy_port), "--store", "memory://",
            ]  # fmt: skip
            # the built-in signal providers (an installed third-party provider is not measured)
            env = dict(
                os.environ,
                SLOTWISE_PROXY_RELOAD_INTERVAL="0",
                SLOTWISE_PLUGINS="builtins",
                SLOTWISE_ADMIN_TOKEN=users.ADMIN_TOKEN,  # the users' profiles go in by the API
            )
            # the engine at full speed is measured, not admission control shedding its work
            # (1: the busy share is measured as by default, and never sheds; the queue time
            # is probed as by default, against a threshold no closed loop reaches)
            env["SLOTWISE_PROXY_SHED_BUSY"] = "1"
            env["SLOTWISE_PROXY_SHED_QUEUE_MS"] = "60000"
            with _proc(serve, d / "proxy.log", env) as px:
                wait_for_port(proxy_port, timeout=20.0)
                proxy = f"http://127.0.0.1:{proxy_port}"
                _wrk("warm-up", f"{proxy}/ads/home-top", 2)
                rows.append(
                    _wrk(
                        "(b) slotwise, no campaign applies",
                        f"{proxy}/ads/footer",
                        seconds,
                        pid=px.pid,
                    )
                )
                rows.append(
                    _wrk(
                        "(c) slotwise, 3-slot campaign",
                        f"{proxy}/ads/home-top",
                        seconds,
                        pid=px.pid,
                    )
                )
                half = rows[1].rps / 2
                for gaps in _PACED:  # random gaps first: the pair the target reads
                    paced = _paced_script(d, half, gaps)
                    for row, url in (
                        ("(a) upstream direct", f"{upstream}/ads/footer"),
                        ("(b) slotwise", f"{proxy}/ads/footer"),
                    ):
                        rows.append(
                            _wrk(f"{row} at {half:,.0f} req/s, {gaps}", url, seconds, paced)
                        )  # paced: the CPU per request is not the point here
                browser = d / "browser.lua"
                browser.write_text(_BROWSER)
                rows.append(
                    _wrk(
                        "(e) slotwise, 3-slot campaign, browser-like requests",
                        f"{proxy}/ads/home-top",
                        seconds,
                        browser,
                        pid=px.pid,
                    )
                )
                rows.append(_users_row("(g)", "rule chooser", proxy, d, seconds, px.pid))
                histogram = _decision_histogram(proxy)
            # the bandit chooser: the same requests, the same users, VW choosing
            bandit = dict(env, SLOTWISE_BANDIT_MODELS_DIR=str(d / "models"))
            with _proc(serve, d / "proxy-bandit.log", bandit) as px:
                wait_for_port(proxy_port, timeout=20.0)
                proxy = f"http://127.0.0.1:{proxy_port}"
                _wrk("warm-up", f"{proxy}/ads/home-top", 2)
                rows.append(_users_row("(h)", "bandit chooser", proxy, d, seconds, px.pid))
            # the same campaign without signal providers: the proxy's and engine's own cost
            # (its policy drops the two rules: without providers their signals do not exist)
            bare = dict(env, SLOTWISE_PLUGINS="none")
            bare_serve = [
                str(d / "policies-bare") if a == str(d / "policies") else a for a in serve
            ]
            with _proc(bare_serve, d / "proxy-bare.log", bare) as px:
                wait_for_port(proxy_port, timeout=20.0)
                _wrk("warm-up", f"{proxy}/ads/home-top", 2)
                rows.append(
                    _wrk(
                        "(c') slotwise, 3-slot, no providers",
                        f"{proxy}/ads/home-top",
                        seconds,
                        pid=px.pid,
                    )
                )
            # forwarding only: no policies, so no signals, parsing or decisions
            forward = [str(d / "policies-none") if a == str(d / "policies") else a for a in serve]
            with _proc(forward, d / "proxy-forward.log", bare) as px:
                wait_for_port(proxy_port, timeout=20.0)
                _wrk("warm-up", f"{proxy}/ads/home-top", 2)
                rows.append(
                    _wrk(
                        "(f) slotwise, forwarding only",
                        f"{proxy}/ads/home-top",
                        seconds,
                        pid=px.pid,
                    )
                )
            nginx_proxy = ["taskset", "-c", "0", nginx, "-c", str(d / "px.conf")]
            with _proc(nginx_proxy, d / "px.log") as px:
                wait_for_port(nginx_port, timeout=20.0)
                _wrk("warm-up", f"http://127.0.0.1:{nginx_port}/ads/home-top", 2)
                rows.append(
                    _wrk(
                        "(d) nginx proxy_pass",
                        f"http://127.0.0.1:{nginx_port}/ads/home-top",
                        seconds,
                        pid=px.pid,
                    )
                )
        engine = _engine_time(d)
    return {
        "rows": [asdict(r) for r in rows],
        "engine": engine,
        "decision_histogram_p99_bucket_ms": histogram,
        "figures": _figures(rows, engine),
    }


def _report(runs: list[dict[str, Any]], seconds: int) -> dict[str, Any]:
    """One run as it was; several as the median of every row and of every per-run figure.

    The targets compare figures of the same run ((c) against that run's (d), the paced (b)
    against that run's paced (a)), so it is those per-run figures whose medians are checked.
    """
    first = runs[0]
    report: dict[str, Any] = {"seconds": seconds, "connections": _CONNECTIONS}
    if len(runs) == 1:
        report.update(first)
    else:
        rows = []
        for position, row in enumerate(first["rows"]):
            name = re.sub(r" at [\d,]+ req/s", " at half of (b)'s peak", row["name"])
            cpu = [r for run in runs if (r := run["rows"][position].get("cpu_us")) is not None]
            rows.append(
                {
                    "name": name,
                    **{
                        key: statistics.median(run["rows"][position][key] for run in runs)
                        for key in ("rps", "p50_ms", "p99_ms")
                    },
                    "cpu_us": statistics.median(cpu) if cpu else None,
                }
            )
        report["rows"] = rows
        report["engine"] = {
            key: statistics.median(run["engine"][key] for run in runs) for key in first["engine"]
        }
        report["decision_histogram_p99_bucket_ms"] = first["decision_histogram_p99_bucket_ms"]
        report["figures"] = {
            key: statistics.median(run["figures"][key] for run in runs) for key in first["figures"]
        }
        report["runs"] = runs
    report["checks"] = _checks(report["figures"])
    report["met_in_runs"] = {
        check: sum(_checks(run["figures"])[check] for run in runs) for check in report["checks"]
    }
    report["repeat"] = len(runs)
    return report


def _users_row(letter: str, chooser: str, proxy: str, d: Path, seconds: int, pid: int) -> Row:
    """Browser-like requests of consenting users with profiles and histories in the store."""
    users.seed(proxy)
    url = f"{proxy}/ads/{users.PLACEMENT}"
    script = d / "browser-users.lua"
    _wrk("warm-up", url, 2, script)
    name = f"{letter} slotwise, browser-like users with profiles, {chooser}"
    return _wrk(name, url, seconds, script, pid=pid)


def _write_fixtures(d: Path) -> None:
    (d / "www").mkdir()
    (d / "policies").mkdir()
    (d / "policies" / "bench.sw").write_text(_BENCH_POLICY)
    (d / "policies-bare").mkdir()
    (d / "policies-none").mkdir()
    rules = [line for line in _BENCH_POLICY.splitlines() if line.strip().startswith("rule ")]
    bare = "\n".join(line for line in _BENCH_POLICY.splitlines() if line not in rules)
    (d / "policies-bare" / "bench.sw").write_text(bare)
    for placement, campaign in (("home-top", "cmp-spring"), ("footer", "cmp-evergreen")):
        ad = {
            "request_id": "r1",
            "placement": placement,
            "campaign_id": campaign,
            "creative": {
                "id": "cr-1",
                "headline": "Spring collection",
                "image_url": "https://cdn.example/spring/default.jpg",
                "cta": "Shop",
                "click_url": "https://shop.example/spring?utm_source=adserver",
            },
            "tracking": {"impressions": ["https://adserver.example/imp?c=1"], "clicks": []},
            "disclaimer": "",
        }
        pad = 2048 - len(json.dumps(ad))
        ad["disclaimer"] = ("Offer valid while stocks last. " * 80)[:pad]
        (d / "www" / placement).write_text(json.dumps(ad))
    users.write_fixtures(d)


def _wrk(
    name: str, url: str, seconds: int, script: Path | None = None, *, pid: int | None = None
) -> Row:
    """One wrk run; with ``pid``, also the CPU that process (and its children) spent per
    request meanwhile."""
    argv = ["taskset", "-c", "1", "wrk", "-t1", f"-c{_CONNECTIONS}", f"-d{seconds}s", "--latency"]
    if script is not None:
        argv += ["-s", str(script)]
    spent = cpu_seconds(pid) if pid is not None else 0.0
    out = subprocess.run([*argv, url], capture_output=True, text=True, check=True).stdout
    if pid is not None:
        spent = cpu_seconds(pid) - spent
    if "Non-2xx" in out or "Socket errors" in out:
        print(f"warning: {name}: wrk reported errors:\n{out}", file=sys.stderr)
    requests = int(_find(r"(\d+) requests in", out))
    return Row(
        name,
        float(_find(r"Requests/sec:\s+([\d.]+)", out)),
        # anchored: a "+/- Stdev" column such as "80.50%" must not be read as the median
        _ms(_find(r"(?m)^\s+50%\s+(\S+)", out)),
        _ms(_find(r"(?m)^\s+99%\s+(\S+)", out)),
        spent / requests * 1e6 if pid is not None and requests else None,
    )


def cpu_seconds(pid: int) -> float:
    """User + system CPU of ``pid`` and every process below it (granian's or nginx's workers)."""
    ticks = os.sysconf("SC_CLK_TCK")
    children: dict[int, list[int]] = {}
    times: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # gone meanwhile
            continue
        children.setdefault(int(fields[1]), []).append(int(entry.name))
        times[int(entry.name)] = (int(fields[11]) + int(fields[12])) / ticks
    total, stack = 0.0, [pid]
    while stack:
        current = stack.pop()
        total += times.get(current, 0.0)
        stack.extend(children.get(current, ()))
    return total


def _paced_script(d: Path, rate: float, gaps: str) -> Path:
    # each connection waits so that all of them together send about ``rate`` requests/s
    mean = _CONNECTIONS / rate * 1000
    path = d / f"paced-{gaps.split()[0]}.lua"
    path.write_text(_PACED[gaps].format(interval=max(1, round(mean)), mean=f"{mean:.3f}"))
    return path


def _engine_time(d: Path) -> dict[str, float]:
    """p50/p99 of the decision code itself (parse, select, choose, rewrite, serialise)."""
    import asyncio

    from slotwise.plugins.gather import Gathered
    from slotwise.plugins.registry import load_schema
    from slotwise.proxy.chooser import RuleChooser
    from slotwise.proxy.decide import Engine, open_document, personalise
    from slotwise.proxy.events.decisions import DecisionLog
    from slotwise.proxy.exchange import Exchange
    from slotwise.proxy.metrics import ProxyMetrics
    from slotwise.proxy.policy_snapshot import PolicySnapshot, compile_directory
    from slotwise.proxy.state.memory import MemoryStore
    from slotwise.proxy.tracking import ClickSigner
    from slotwise.proxy.upstream.connection import UpstreamResponse
    from slotwise.types import NoHistory

    policy = compile_directory(d / "policies", load_schema())
    metrics = ProxyMetrics()
    engine = Engine(
        upstream=None,  # type: ignore[arg-type]
        policies=PolicySnapshot(None, load_schema(), metrics),
        chooser=RuleChooser(),
        # nothing here records decisions; the compiled Engine takes a real (unstarted) log
        decision_log=DecisionLog(MemoryStore()),
        metrics=metrics,
        signer=ClickSigner(b"b" * 32, "http://proxy"),
    )
    body = (d / "www" / "home-top").read_bytes()
    response = UpstreamResponse(200, [(b"content-type", b"application/json")], None, 1.0)  # type: ignore[arg-type]
    gathered = Gathered({"device.type": "mobile", "geo.country": "DE"}, False, None, NoHistory())
    scope: dict[str, Any] = {"headers": [(b"host", b"proxy")], "scheme": "http"}
    samples = []
    for _ in range(20_000):
        started = time.perf_counter()
        exchange = Exchange(scope, started, policy=policy, gathered=gathered)
        exchange.document, exchange.codings = open_document(engine, response, body, b"")
        assert exchange.document is not None
        personalise(engine, exchange)
        samples.append(time.perf_counter() - started)
        assert exchange.out is not None
    samples.sort()
    del asyncio
    return {
        "p50_ms": samples[len(samples) // 2] * 1000,
        "p99_ms": samples[int(len(samples) * 0.99)] * 1000,
        "mean_ms": statistics.fmean(samples) * 1000,
    }


def _decision_histogram(proxy: str) -> float | None:
    import httpx

    text = httpx.get(f"{proxy}/_sw/metrics").text
    buckets = re.findall(r'slotwise_decision_latency_seconds_bucket\{le="([^"]+)"\} (\d+)', text)
    total = float(buckets[-1][1]) if buckets else 0.0
    for bound, count in buckets:
        if total and float(count) >= 0.99 * total:
            return float(bound) * 1000 if bound != "+Inf" else None
    return None


def _figures(rows: list[Row], engine: dict[str, float]) -> dict[str, float]:
    """What the targets read, from the rows of one run."""
    # "(b) slotwise at 7,500 req/s, random gaps" -> "(b) random gaps"
    by = {
        r.name.split(" ")[0] + (" " + r.name.split(", ")[-1] if " at " in r.name else ""): r
        for r in rows
    }
    figures = {
        "c_rps": by["(c)"].rps,
        "engine_p99_ms": engine["p99_ms"],
        "b_paced_p99_over_a_ms": by["(b) random gaps"].p99_ms - by["(a) random gaps"].p99_ms,
        # shown, not checked: wrk's millisecond timer ticks make these arrivals bursts
        "b_fixed_paced_p99_over_a_ms": by["(b) fixed gaps"].p99_ms - by["(a) fixed gaps"].p99_ms,
    }
    if "(d)" in by:
        figures["c_share_of_d"] = by["(c)"].rps / by["(d)"].rps
        if "(f)" in by:  # forwarding alone: the most any personalising row could reach
            figures["f_share_of_d"] = by["(f)"].rps / by["(d)"].rps
    return figures


def _checks(figures: dict[str, float]) -> dict[str, bool]:
    checks = {
        "(c) >= 6000 req/s": figures["c_rps"] >= 6000,
        "engine p99 <= 1 ms": figures["engine_p99_ms"] <= 1.0,
        "(b) adds <= 2 ms p99 over (a) at half of (b)'s peak": (
            figures["b_paced_p99_over_a_ms"] <= 2.0
        ),
    }
    if "c_share_of_d" in figures:
        checks["(c) >= 25% of (d)"] = figures["c_share_of_d"] >= 0.25
    return checks


def _print(report: dict[str, Any], fmt: str) -> None:
    if fmt == "json":
        print(json.dumps(report, indent=2))
        return
    rows = report["rows"]
    if fmt == "markdown":
        print("| run | req/s | CPU us/request | p50 ms | p99 ms |\n|---|---:|---:|---:|---:|")
        for r in rows:
            print(
                f"| {r['name']} | {r['rps']:,.0f} | {_cpu(r)} | {r['p50_ms']:.2f} "
                f"| {r['p99_ms']:.2f} |"
            )
    else:
        for r in rows:
            print(
                f"{r['name']:<66} {r['rps']:>9,.0f} req/s  {_cpu(r):>6} us CPU/req  "
                f"p50 {r['p50_ms']:6.2f} ms  p99 {r['p99_ms']:6.2f} ms"
            )
    e = report["engine"]
    print(
        f"\nengine time per decision (in-process, 20,000 decisions): p50 {e['p50_ms']:.3f} ms, "
        f"p99 {e['p99_ms']:.3f} ms; proxy histogram p99 bucket <= "
        f"{report['decision_histogram_p99_bucket_ms']} ms"
    )
    f = report["figures"]
    repeat = report["repeat"]
    median = f" (medians of {repeat} runs)" if repeat > 1 else ""
    share = f", (c)/(d) {f['c_share_of_d']:.1%}" if "c_share_of_d" in f else ""
    if "f_share_of_d" in f:
        share += f" (forwarding alone, (f)/(d): {f['f_share_of_d']:.1%})"
    print(
        f"targets read{median}: (c) {f['c_rps']:,.0f} req/s{share}, paced (b) p99 over (a) "
        f"{f['b_paced_p99_over_a_ms']:+.2f} ms (random gaps; with fixed gaps "
        f"{f['b_fixed_paced_p99_over_a_ms']:+.2f} ms, not checked)"
    )
    for check, ok in report["checks"].items():
        runs = f" (met in {report['met_in_runs'][check]} of {repeat} runs)" if repeat > 1 else ""
        print(f"  {'PASS' if ok else 'FAIL'}  {check}{runs}")


def _cpu(row: dict[str, Any]) -> str:
    cpu = row.get("cpu_us")
    return "-" if cpu is None else f"{cpu:.1f}"


def _find(pattern: str, text: str) -> str:
    match = re.search(pattern, text)
    if match is None:
        raise RuntimeError(f"unexpected wrk output: {text[:500]}")
    return match.group(1)


def _ms(value: str) -> float:
    match = re.match(r"[\d.]+", value)
    if match is None:
        raise RuntimeError(f"unexpected wrk latency {value!r}")
    number = float(match.group(0))
    if value.endswith("m"):
        return number * 60_000
    if value.endswith("us"):
        return number / 1000
    if value.endswith("ms"):
        return number
    if value.endswith("s"):
        return number * 1000
    return number


class _proc:
    """Run a process for the duration of a ``with`` block; stop it (by its pid) afterwards."""

    def __init__(self, argv: list[str], log: Path, env: dict[str, str] | None = None) -> None:
        self.argv, self.log, self.env = argv, log, env
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> subprocess.Popen[bytes]:
        with open(self.log, "wb") as out:
            self.process = subprocess.Popen(
                self.argv, stdout=out, stderr=subprocess.STDOUT, env=self.env
            )
        return self.process

    def __exit__(self, *exc: object) -> None:
        assert self.process is not None
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
