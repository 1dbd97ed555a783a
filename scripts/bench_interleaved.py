"""Interleaved before/after rounds of `slotwise bench proxy`'s rows (b), (c), (e), (f), (g), (h).

Usage (from anywhere; needs scripts/bench-deps)::

    .venv/bin/python scripts/bench_interleaved.py BASE_REV [--rounds 4] [--seconds 6]

Checks BASE_REV out as a git worktree in /tmp (or uses ``--base-tree DIR``, a tree checked out
and built already: a fresh worktree has no compiled modules, so a tree with them runs in pure
Python there), then runs the tree before (through PYTHONPATH) and this working tree side by
side: one nginx upstream serving the bench's 2 KB creatives on CPU 1, each tree's `slotwise
serve` (one worker, memory store, built-in providers, the bench's 3-slot campaign) pinned to
CPU 0, and wrk on CPU 1, alternating between the two trees (which goes first alternates too),
so both see the same machine. Prints each
round's req/s and the medians with their ratio (after / before) per row, and beside them the
CPU each tree's proxy (server and workers) spent per request during its wrk runs: on this
2-core machine throughput moves by 20% between runs, CPU per request by a few percent, so the
latter is the figure the 3% budget on the request path reads (docs/benchmarks.md).

Rows (g) and (h) are browser-like requests of 1,000 consenting users whose profiles and event
histories the proxy's own endpoints stored first (slotwise.lab.proxy_bench_users), with the
rule chooser (g) and with the bandit chooser (h, a second `slotwise serve` per tree with
`bandit.models_dir` set: untrained models, so VW predicts for every decision); row (f) is a
third process per tree with no policies (forwarding only).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from slotwise.lab import proxy_bench_users as users  # noqa: E402
from slotwise.lab.proxy_bench import (  # noqa: E402
    _BROWSER,
    _NGINX_UPSTREAM,
    _proc,
    _write_fixtures,
    _wrk,
    cpu_seconds,
)
from slotwise.proxy.loopback import free_port, wait_for_port  # noqa: E402

# row -> (path, wrk script or None, which server)
ROWS = {
    "(b) no campaign applies": ("/ads/footer", None, "rules"),
    "(c) 3-slot campaign": ("/ads/home-top", None, "rules"),
    "(e) 3-slot campaign, browser-like": ("/ads/home-top", "browser.lua", "rules"),
    "(f) forwarding only": ("/ads/home-top", None, "forward"),
    "(g) browser-like users, rule chooser": (
        f"/ads/{users.PLACEMENT}",
        "browser-users.lua",
        "rules",
    ),
    "(h) browser-like users, bandit chooser": (
        f"/ads/{users.PLACEMENT}",
        "browser-users.lua",
        "bandit",
    ),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("base", help="the git revision to compare against")
    parser.add_argument(
        "--base-tree",
        type=Path,
        help="a tree of BASE already checked out (and built with scripts/build_native.py, so "
        "that both trees run compiled): used as it is instead of a fresh worktree",
    )
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--seconds", type=int, default=6)
    parser.add_argument(
        "--rows", default="bce", help="which rows to run, by letter, of bcefgh (default: bce)"
    )
    args = parser.parse_args()
    for row in list(ROWS):
        if row[1] not in args.rows:
            del ROWS[row]
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not shutil.which("wrk") or not Path(nginx).exists():
        print("needs wrk and nginx: run scripts/bench-deps", file=sys.stderr)
        return 2
    if args.base_tree is not None:
        return _compare(nginx, args.base_tree.resolve(), args.rounds, args.seconds)
    base = Path(tempfile.mkdtemp(prefix="slotwise-base-"))
    subprocess.run(
        ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(base), args.base],
        check=True,
        capture_output=True,
    )
    try:
        return _compare(nginx, base, args.rounds, args.seconds)
    finally:
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(base)],
            capture_output=True,
        )


NEVER_MS = 60_000  # a queue-time threshold no closed loop reaches: probed, never shed


def _engine_only(tree: Path) -> dict[str, str]:
    """The settings that keep a tree's admission control from shedding at full speed (the
    engine's cost is measured; 1: the loop's busy share is measured as by default, and never
    sheds; the queue time is probed as by default, against a threshold never reached), for a
    tree that has them (an older one sheds by work in flight only, past 128: never with
    wrk's 64 connections)."""
    sections = tree / "proxy" / "config" / "sections.py"
    settings = {"SLOTWISE_PROXY_SHED_BUSY": "1"} if "shed_busy" in sections.read_text() else {}
    if (tree / "proxy" / "queue_probe.py").exists():  # the probe runs and costs, never sheds
        settings["SLOTWISE_PROXY_SHED_QUEUE_MS"] = str(NEVER_MS)
    return settings


def _compare(nginx: str, base: Path, rounds: int, seconds: int) -> int:
    results: dict[str, dict[str, list[float]]] = {
        tree: {row: [] for row in ROWS} for tree in ("before", "after")
    }
    cpu: dict[str, dict[str, list[float]]] = {
        tree: {row: [] for row in ROWS} for tree in ("before", "after")
    }
    with tempfile.TemporaryDirectory(prefix="slotwise-interleaved-") as tmp:
        d = Path(tmp)
        d.chmod(0o755)
        _write_fixtures(d)  # the browser-like users' fixtures too
        (d / "browser.lua").write_text(_BROWSER)
        up_port = free_port()
        (d / "up.conf").write_text(_NGINX_UPSTREAM.format(d=d, port=up_port))
        with _proc(["taskset", "-c", "1", nginx, "-c", str(d / "up.conf")], d / "up.log"):
            wait_for_port(up_port, timeout=20.0)
            servers = sorted({server for _, _, server in ROWS.values()})
            trees = {"before": base, "after": ROOT}
            ports = {(tree, server): free_port() for tree in trees for server in servers}
            procs = []
            pids: dict[tuple[str, str], int] = {}
            for (tree, server), port in ports.items():
                policies = d / ("policies-none" if server == "forward" else "policies")
                argv = [
                    "taskset", "-c", "0", sys.executable, "-m", "slotwise", "serve",
                    "--upstream", f"http://127.0.0.1:{up_port}", "--policies",
                    str(policies), "--port", str(port), "--store", "memory://",
                ]  # fmt: skip
                env = dict(
                    os.environ,
                    PYTHONPATH=str(trees[tree]),
                    SLOTWISE_PROXY_RELOAD_INTERVAL="0",
                    SLOTWISE_PLUGINS="builtins" if server != "forward" else "none",
                    SLOTWISE_ADMIN_TOKEN=users.ADMIN_TOKEN,
                    **_engine_only(trees[tree]),
                )
                if server == "bandit":
                    env["SLOTWISE_BANDIT_MODELS_DIR"] = str(d / f"models-{tree}")
                procs.append(_proc(argv, d / f"{tree}-{server}.log", env))
            # started outside the repository: Python would put the cwd's tree first otherwise
            cwd = os.getcwd()
            os.chdir(d)
            try:
                for key, proc in zip(ports, procs, strict=True):
                    pids[key] = proc.__enter__().pid
                for (_, server), port in ports.items():
                    wait_for_port(port, timeout=120.0)
                    _wrk("warm-up", f"http://127.0.0.1:{port}/ads/home-top", 2)
                    if server != "forward":
                        users.seed(f"http://127.0.0.1:{port}")
                        member = f"http://127.0.0.1:{port}/ads/{users.PLACEMENT}"
                        _wrk("warm-up", member, 2, d / "browser-users.lua")
                for n in range(rounds):
                    order = ["before", "after"] if n % 2 == 0 else ["after", "before"]
                    for tree in order:
                        for row, (path, lua, server) in ROWS.items():
                            script = d / lua if lua else None
                            url = f"http://127.0.0.1:{ports[tree, server]}{path}"
                            spent = cpu_seconds(pids[tree, server])
                            measured = _wrk(row, url, seconds, script)
                            spent = cpu_seconds(pids[tree, server]) - spent
                            results[tree][row].append(measured.rps)
                            cpu[tree][row].append(spent / (measured.rps * seconds) * 1e6)
                    print(f"round {n + 1}: " + _round_line(results, n), flush=True)
            finally:
                os.chdir(cwd)
                for proc in procs:
                    proc.__exit__()
    print()
    # the machine drifts between rounds: the ratios of each round's pair, taken a few
    # seconds apart, scatter less than the ratio of the two medians
    print(
        "| row | req/s before | req/s after | after / before (paired) "
        "| CPU us/request before | after | after / before (paired) |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for row in ROWS:
        before = statistics.median(results["before"][row])
        after = statistics.median(results["after"][row])
        cpu_before = statistics.median(cpu["before"][row])
        cpu_after = statistics.median(cpu["after"][row])
        paired = _paired(results, row)
        paired_cpu = _paired(cpu, row)
        print(
            f"| {row} | {before:,.0f} | {after:,.0f} | {after / before:.3f} ({paired:.3f}) "
            f"| {cpu_before:.1f} | {cpu_after:.1f} | {cpu_after / cpu_before:.3f} "
            f"({paired_cpu:.3f}) |"
        )
    print()
    for tree in ("before", "after"):
        for row in ROWS:
            runs = " ".join(f"{v:,.0f}" for v in results[tree][row])
            us = " ".join(f"{v:.1f}" for v in cpu[tree][row])
            print(f"{tree} {row}: {runs} req/s; {us} us CPU/request")
    return 0


def _paired(results: dict[str, dict[str, list[float]]], row: str) -> float:
    pairs = zip(results["after"][row], results["before"][row], strict=True)
    return statistics.median(after / before for after, before in pairs)


def _round_line(results: dict[str, dict[str, list[float]]], n: int) -> str:  # noqa: D103
    parts = []
    for row in ROWS:
        before, after = results["before"][row][n], results["after"][row][n]
        parts.append(f"{row.split()[0]} {before:,.0f} -> {after:,.0f}")
    return "; ".join(parts)


if __name__ == "__main__":
    sys.exit(main())
