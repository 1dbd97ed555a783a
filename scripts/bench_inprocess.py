"""CPU per request of one tree's ProxyApp in process (no ASGI server, no wrk), by bench row.

Usage (from outside the repository; needs nginx, scripts/bench-deps)::

    taskset -c 0 .venv/bin/python scripts/bench_inprocess.py TREE ROW [--rounds 5] [--n 2000]

TREE is a source tree (this one, or a `git worktree add --detach /tmp/base REV`); ROW is one
of `slotwise bench proxy`'s letters b, c, e, f, g, h (h: the bandit chooser). The app runs in
this process on uvloop, its lifespan started by hand; the lifespan and the requests go through
its ASGI entry (what `slotwise serve` hands granian, where the tree has one), against an nginx
upstream serving the bench's creatives (on CPU 1); for rows g and h the 1,000 users' profiles
and events are stored through its own endpoints first (slotwise.lab.proxy_bench_users' data).
Then ``--rounds`` blocks of ``--n`` requests, 64 at a time, each block timed with
``time.process_time()``: prints CPU us per request per block, the median and the minimum (on a
machine shared with other jobs the minimum is the steadier figure). Run trees alternately to
compare them.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import importlib.util
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parents[1]
UA = (
    b"Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
    b"(KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1"
)
PATHS = {
    "b": "/ads/footer",
    "c": "/ads/home-top",
    "e": "/ads/home-top",
    "f": "/ads/home-top",
    "g": "/ads/member-top",
    "h": "/ads/member-top",
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tree", type=Path)
    parser.add_argument("row", choices=sorted(PATHS))
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument(
        "--handshake",
        type=Path,
        help="a directory: before and after the measured blocks, write 'ready' / 'done' there "
        "and wait for 'go' / 'exit' (scripts/bench_instructions.py switches callgrind's "
        "instrumentation on and off in between)",
    )
    parser.add_argument(
        "--gc",
        action="store_true",
        help="also print the garbage collector's collections per generation during the measured "
        "blocks, with their pauses (median, p90, longest) and CPU per request",
    )
    args = parser.parse_args()
    sys.path.insert(0, str(args.tree.resolve()))  # the tree measured, whatever the cwd
    # this tree's fixtures (the tree before may not have the users' module)
    spec = importlib.util.spec_from_file_location(
        "bench_users", HERE / "slotwise" / "lab" / "proxy_bench_users.py"
    )
    assert spec is not None and spec.loader is not None
    users = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(users)
    import uvloop

    from slotwise.lab.proxy_bench import _NGINX_UPSTREAM, _proc, _write_fixtures
    from slotwise.proxy.loopback import free_port, wait_for_port

    d = Path(tempfile.mkdtemp(prefix="slotwise-inprocess-"))
    d.chmod(0o755)
    _write_fixtures(d)
    users.write_fixtures(d)
    port = free_port()
    (d / "up.conf").write_text(_NGINX_UPSTREAM.format(d=d, port=port))
    nginx = ["taskset", "-c", "1", "nginx", "-c", str(d / "up.conf")]
    with _proc(nginx, d / "up.log"):
        wait_for_port(port, timeout=20.0)
        uvloop.run(_measure(args, d, port, users))
    return 0


def _headers(row: str, n: int) -> list[tuple[bytes, bytes]]:
    headers = [(b"host", b"proxy"), (b"accept", b"*/*")]
    if row in "egh":
        headers += [
            (b"user-agent", UA),
            (b"accept-language", b"de-DE,de;q=0.9,en;q=0.8"),
            (b"referer", b"https://www.google.com/"),
            (b"cf-ipcountry", b"DE"),
        ]
        user = b"u-12345" if row == "e" else f"u-{n % 1000}".encode()
        headers.append((b"cookie", b"sw_uid=" + user + b"; sw_consent=personal"))
    return headers


async def _measure(args: argparse.Namespace, d: Path, port: int, users: Any) -> None:
    from slotwise.proxy.app import ProxyApp
    from slotwise.proxy.config import load_settings

    row = args.row
    environ = {
        "SLOTWISE_UPSTREAM_URL": f"http://127.0.0.1:{port}",
        "SLOTWISE_PROXY_POLICIES": str(d / ("policies-none" if row == "f" else "policies")),
        "SLOTWISE_PROXY_RELOAD_INTERVAL": "0",
        "SLOTWISE_STORE_URL": "memory://",
        "SLOTWISE_ADMIN_TOKEN": users.ADMIN_TOKEN,
    }
    if row == "h":
        environ["SLOTWISE_BANDIT_MODELS_DIR"] = str(d / "models")
    os.environ["SLOTWISE_PLUGINS"] = "none" if row == "f" else "builtins"
    app = ProxyApp(load_settings(environ=environ))
    try:  # what `slotwise serve` hands its server, in a tree that has it
        from slotwise.proxy.entry import AsgiEntry

        entry: Any = AsgiEntry(app)
    except ImportError:
        entry = app
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    # the lifespan through the entry too: it sets the worker's garbage collector
    life = asyncio.create_task(entry({"type": "lifespan"}, inbox.get, outbox.put))
    await inbox.put({"type": "lifespan.startup"})
    assert (await outbox.get())["type"] == "lifespan.startup.complete"
    if row in "gh":
        await _seed(app, users)
    counter = [0]

    async def one() -> None:
        n = counter[0] = counter[0] + 1
        path = PATHS[row]
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": b"",
            "root_path": "",
            "headers": _headers(row, n),
            "client": ("127.0.0.1", 40000),
            "server": ("127.0.0.1", 8000),
        }
        status: list[int] = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: Any) -> None:
            if message["type"] == "http.response.start":
                status.append(message["status"])

        await entry(scope, receive, send)
        assert status == [200], status

    async def block(count: int) -> None:
        slots = asyncio.Semaphore(64)

        async def limited() -> None:
            async with slots:
                await one()

        await asyncio.gather(*(limited() for _ in range(count)))

    await block(1000)  # warm-up
    if args.handshake is not None:
        _signal_and_wait(args.handshake, "ready", "go")
    per_request = []
    pauses: dict[int, list[float]] = {0: [], 1: [], 2: []}
    if args.gc:
        gc.callbacks.append(_pause_timer(pauses))
    for _ in range(args.rounds):
        started = time.process_time()
        await block(args.n)
        per_request.append((time.process_time() - started) / args.n * 1e6)
    if args.gc:
        gc.callbacks.pop()
        _print_pauses(pauses, args.rounds * args.n)
    if args.handshake is not None:
        _signal_and_wait(args.handshake, "done", "exit")
    blocks = " ".join(f"{v:.1f}" for v in per_request)
    print(
        f"{args.tree} row {row}: {blocks} us CPU/request; median "
        f"{statistics.median(per_request):.1f}, min {min(per_request):.1f}"
    )
    await inbox.put({"type": "lifespan.shutdown"})
    await outbox.get()
    await life


def _pause_timer(pauses: dict[int, list[float]]) -> Any:
    started = [0.0]

    def timer(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
        else:
            pauses[info["generation"]].append((time.perf_counter() - started[0]) * 1e6)

    return timer


def _print_pauses(pauses: dict[int, list[float]], requests: int) -> None:
    total = sum(sum(p) for p in pauses.values())
    print(
        f"gc: threshold {gc.get_threshold()}, {gc.get_freeze_count():,} objects frozen, "
        f"{total / requests:.2f} us per request in collections"
    )
    for generation, found in pauses.items():
        if found:
            found.sort()
            print(
                f"gc: generation {generation}: {len(found)} collections, pause median "
                f"{statistics.median(found):,.0f} us, p90 {found[int(len(found) * 0.9)]:,.0f} us, "
                f"longest {found[-1]:,.0f} us"
            )


def _signal_and_wait(where: Path, say: str, until: str) -> None:
    """Write ``where/say``, then block (the event loop too: nothing runs) until ``where/until``."""
    (where / say).touch()
    while not (where / until).exists():
        time.sleep(0.05)


async def _seed(app: Any, users: Any) -> None:
    """The users' profiles and events, through the app's own endpoints (users.seed's data)."""
    import httpx

    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://proxy.test") as client:
        for method, path, body, headers in users.seed_requests():
            answer = await client.request(method, path, json=body, headers=headers)
            assert answer.status_code < 300, answer.text


if __name__ == "__main__":
    sys.exit(main())
