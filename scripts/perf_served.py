"""Where a served request's CPU goes: `slotwise serve` under wrk, sampled by perf.

Usage (from anywhere; needs scripts/bench-deps and perf, Debian's ``linux-perf``)::

    .venv/bin/python scripts/perf_served.py ROW [--seconds 10] [--tree PATH]

ROW is one of `scripts/bench_interleaved.py`'s letters b, c, e, f, g, h. Starts what that
script starts for the row (an nginx upstream on CPU 1; one `slotwise serve` worker of TREE,
default this checkout, pinned to CPU 0 with the same settings; for g and h the browser-like
users stored through the proxy's endpoints; wrk on CPU 1), warms it, then records the worker
process with ``perf record --call-graph dwarf`` while wrk runs. Prints the CPU per request
(the server's processes, as bench_interleaved reads it) and, from the samples:

- the share of each thread kind (``python``: the event loop's thread, where slotwise runs;
  ``tokio-rt-worker``: granian's I/O threads) and of each binary ([kernel.kallsyms]: the
  sockets' system calls, loopback delivery included; python3.11: the interpreter, which
  compiled code calls too; the compiled modules' own library...);
- the inclusive share of each compiled function (mypyc's ``CPyDef_<module>___<function>``) of
  all samples, the top 30: what the request path's own steps cost, ASGI server included in
  the denominator.

In-process figures (scripts/bench_inprocess.py, bench_instructions.py) leave the ASGI server,
the client's socket and their thread hand-over out; this shows how large that part is.
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from bench_interleaved import ROWS, _engine_only  # noqa: E402

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

_FRAME = re.compile(r"\s+[0-9a-f]+ (.*?)(?:\+0x[0-9a-f]+)? \((.*)\)$")
_COMPILED = re.compile(r"^CPyDef_(\w+?)___(\w+?)(?:_gen_____mypyc_generator_helper__)?$")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("row", choices=sorted(name[1] for name in ROWS))
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--tree", type=Path, default=HERE.parent)
    args = parser.parse_args()
    for tool in ("perf", "wrk"):
        if shutil.which(tool) is None:
            print(f"needs {tool}: scripts/bench-deps (wrk, nginx), linux-perf", file=sys.stderr)
            return 2
    path, lua, server = next(v for k, v in ROWS.items() if k[1] == args.row)
    with tempfile.TemporaryDirectory(prefix="slotwise-perf-") as tmp:
        d = Path(tmp)
        d.chmod(0o755)
        _write_fixtures(d)
        (d / "browser.lua").write_text(_BROWSER)
        up = free_port()
        (d / "up.conf").write_text(_NGINX_UPSTREAM.format(d=d, port=up))
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        with _proc(["taskset", "-c", "1", nginx, "-c", str(d / "up.conf")], d / "up.log"):
            wait_for_port(up, timeout=20.0)
            data = d / "perf.data"
            per_request = _record(args, d, up, path, lua, server, data)
            print(f"row ({args.row}), tree {args.tree}: {per_request:.1f} us CPU/request")
            _report(data)
    return 0


def _record(
    args: argparse.Namespace,
    d: Path,
    up: int,
    path: str,
    lua: str | None,
    server: str,
    data: Path,
) -> float:
    port = free_port()
    policies = d / ("policies-none" if server == "forward" else "policies")
    argv = [
        "taskset", "-c", "0", sys.executable, "-m", "slotwise", "serve",
        "--upstream", f"http://127.0.0.1:{up}", "--policies", str(policies),
        "--port", str(port), "--store", "memory://",
    ]  # fmt: skip
    env = dict(
        os.environ,
        PYTHONPATH=str(args.tree),
        SLOTWISE_PROXY_RELOAD_INTERVAL="0",
        SLOTWISE_PLUGINS="builtins" if server != "forward" else "none",
        SLOTWISE_ADMIN_TOKEN=users.ADMIN_TOKEN,
        **_engine_only(args.tree),
    )
    if server == "bandit":
        env["SLOTWISE_BANDIT_MODELS_DIR"] = str(d / "models")
    cwd = os.getcwd()
    os.chdir(d)  # outside the repository: its tree would come first otherwise
    try:
        with _proc(argv, d / "serve.log", env) as proc:
            wait_for_port(port, timeout=120.0)
            script = d / lua if lua else None
            if server != "forward":
                users.seed(f"http://127.0.0.1:{port}")
            url = f"http://127.0.0.1:{port}{path}"
            _wrk("warm-up", url, 3, script)
            workers = subprocess.run(
                ["pgrep", "-P", str(proc.pid)], capture_output=True, text=True
            ).stdout.split()
            worker = workers[-1] if workers else str(proc.pid)
            record = [
                "perf", "record", "-q", "-F", "1999", "-g", "--call-graph", "dwarf,16384",
                "-p", worker, "-o", str(data), "--", "sleep", str(max(1, args.seconds - 2)),
            ]  # fmt: skip
            recorder = subprocess.Popen(record, stderr=subprocess.DEVNULL)
            spent = cpu_seconds(proc.pid)
            measured = _wrk(f"({args.row})", url, args.seconds, script)
            spent = cpu_seconds(proc.pid) - spent
            recorder.wait(timeout=120)
    finally:
        os.chdir(cwd)
    return float(spent / (measured.rps * args.seconds) * 1e6)


def _report(data: Path) -> None:
    script = subprocess.run(
        ["perf", "script", "-i", str(data), "-F", "comm,ip,sym,dso"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    threads: collections.Counter[str] = collections.Counter()
    binaries: collections.Counter[str] = collections.Counter()
    compiled: collections.Counter[str] = collections.Counter()
    samples = 0
    for block in script.split("\n\n"):
        lines = block.strip("\n").splitlines()
        if not lines:
            continue
        samples += 1
        threads[lines[0].split()[0]] += 1
        frames = [m for m in map(_FRAME.match, lines[1:]) if m]
        placed = [f for f in frames if f.group(2) != "inlined"]  # an inlined frame's caller
        if placed:
            binaries[placed[0].group(2).rsplit("/", 1)[-1]] += 1
        seen = set()
        for frame in frames:
            found = _COMPILED.match(frame.group(1))
            if found:
                seen.add(f"{found.group(1)}.{found.group(2)}")
        compiled.update(seen)
    if not samples:
        print("perf recorded no samples")
        return
    print(f"{samples:,} samples of the worker")
    for title, counts, top in (
        ("thread", threads, 5),
        ("binary (self)", binaries, 10),
        ("compiled function (inclusive)", compiled, 30),
    ):
        print(f"\nby {title}:")
        for name, count in counts.most_common(top):
            print(f"  {count / samples:6.1%}  {name}")


if __name__ == "__main__":
    sys.exit(main())
