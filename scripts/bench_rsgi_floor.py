"""The ASGI server's floor against granian's RSGI interface: CPU per request of do-nothing apps.

Usage (needs wrk; from anywhere)::

    .venv/bin/python scripts/bench_rsgi_floor.py [--rounds 4] [--seconds 5]

Three apps, each answering every request with the same 2 KB JSON body and one header, served by
granian (one worker, uvloop, HTTP/1, pinned to CPU 0) and driven by wrk (64 connections, CPU 1,
the browser-like request headers of `bench proxy`'s rows (e)/(g)): ``asgi`` (the interface
slotwise serves today), ``rsgi`` (granian's native interface) and ``rsgi-bridge`` (RSGI with the
translation slotwise's request path would need to keep its ASGI-shaped code: the request's
headers as a list of byte pairs, its target as bytes, the answer's headers back to strings).
Rounds run the apps in turn; prints req/s and the CPU the granian process tree spent per
request (``slotwise.lab.proxy_bench.cpu_seconds``) per round, then the medians.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

BODY = b'{"creative":"' + b"x" * 2020 + b'"}'
HEADERS = [
    "User-Agent: Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15",
    "Accept-Language: de-DE,de;q=0.9,en;q=0.8",
    "Referer: https://www.google.com/",
    "Cookie: sw_uid=u-12345; sw_consent=personal",
    "CF-IPCountry: DE",
]
APPS = {"asgi": "asgi", "rsgi": "rsgi", "rsgi-bridge": "rsgi"}


async def asgi(scope: dict[str, Any], receive: Callable[[], Awaitable[Any]], send: Any) -> None:
    if scope["type"] != "http":
        return
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": BODY})


async def rsgi(scope: Any, proto: Any) -> None:
    proto.response_bytes(200, [("content-type", "application/json")], BODY)


async def rsgi_bridge(scope: Any, proto: Any) -> None:
    # what an RSGI front to the ASGI-shaped request path would do per request, both ways
    headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in scope.headers.items()]
    target = scope.path.encode()
    if scope.query_string:
        target += b"?" + scope.query_string.encode()
    shaped = {"method": scope.method, "path": scope.path, "raw_path": target, "headers": headers}
    answer = [(b"content-type", b"application/json")]
    assert shaped["method"]
    proto.response_bytes(200, [(k.decode("latin-1"), v.decode("latin-1")) for k, v in answer], BODY)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--seconds", type=int, default=5)
    args = parser.parse_args()
    here = Path(__file__).resolve()
    sys.path.insert(0, str(here.parents[1]))
    from slotwise.lab.proxy_bench import cpu_seconds
    from slotwise.proxy.loopback import free_port, wait_for_port

    results: dict[str, list[tuple[float, float]]] = {name: [] for name in APPS}
    for round_ in range(args.rounds):
        for name, interface in APPS.items():
            port = free_port()
            target = f"{here.stem}:{name.replace('-', '_')}"
            argv = ["taskset", "-c", "0", sys.executable, "-m", "granian", "--interface"]
            argv += [interface, "--loop", "uvloop", "--http", "1", "--no-ws", "--workers", "1"]
            argv += ["--port", str(port), "--log-level", "warning", target]
            env = {**os.environ, "PYTHONPATH": str(here.parent)}
            # its own process group: granian's worker is a child that must stop with it
            server = subprocess.Popen(
                argv, env=env, stdout=subprocess.DEVNULL, start_new_session=True
            )
            try:
                wait_for_port(port, timeout=90.0)  # a loaded machine starts slowly
                url = f"http://127.0.0.1:{port}/ads/home-top"
                wrk = ["taskset", "-c", "1", "wrk", "-t1", "-c64"]
                for h in HEADERS:
                    wrk += ["-H", h]
                subprocess.run([*wrk, "-d1s", url], capture_output=True, check=True)  # warm
                spent = cpu_seconds(server.pid)
                out = subprocess.run(
                    [*wrk, f"-d{args.seconds}s", url], capture_output=True, text=True, check=True
                ).stdout
                spent = cpu_seconds(server.pid) - spent
            finally:
                os.killpg(server.pid, signal.SIGTERM)
                try:
                    server.wait(timeout=20)
                except subprocess.TimeoutExpired:  # granian still starting ignores SIGTERM
                    os.killpg(server.pid, signal.SIGKILL)
                    server.wait()
            if "Non-2xx" in out or "Socket errors" in out:
                print(f"warning: {name}: wrk reported errors:\n{out}", file=sys.stderr)
            count = int(_find(r"(\d+) requests in", out))
            if count == 0:  # the machine stalled the server for the whole run: not a sample
                print(f"warning: {name}: no request answered:\n{out}", file=sys.stderr)
                continue
            rate = float(_find(r"Requests/sec:\s+([\d.]+)", out))
            results[name].append((rate, spent / count * 1e6))
            print(f"round {round_ + 1} {name:12} {rate:10,.0f} req/s {spent / count * 1e6:6.1f} us")
        time.sleep(0.5)
    print(f"medians over {args.rounds} rounds (load average {os.getloadavg()[0]:.1f} at the end):")
    for name, rows in results.items():
        rate = statistics.median(r for r, _ in rows)
        cpu = statistics.median(c for _, c in rows)
        print(f"  {name:12} {rate:10,.0f} req/s {cpu:6.1f} us CPU/request")
    return 0


def _find(pattern: str, text: str) -> str:
    found = re.search(pattern, text)
    if found is None:
        raise SystemExit(f"wrk's output has no {pattern!r}:\n{text}")
    return found.group(1)


if __name__ == "__main__":
    sys.exit(main())
