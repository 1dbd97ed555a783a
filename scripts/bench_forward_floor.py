"""How low forwarding's CPU per request can go on slotwise's serving stack: row (f) against
minimal forwarders served the same way.

Usage (needs scripts/bench-deps; from anywhere)::

    .venv/bin/python scripts/bench_forward_floor.py [--rounds 5] [--seconds 6] [--tree PATH]

Starts what `scripts/bench_interleaved.py` starts for row (f) (an nginx upstream serving the
bench's 2 KB creative on CPU 1; wrk, 64 connections, the row's bare GET, on CPU 1) and serves
it, one server at a time pinned to CPU 0, with:

- ``nginx``: nginx ``proxy_pass`` over keep-alive upstream connections (the reference proxy);
- ``asgi-forward``: granian with uvloop and HTTP/1 as `slotwise serve` runs them, and the
  smallest ASGI app that forwards: keep-alive upstream connections (an asyncio Protocol per
  connection, as slotwise's pool), the request's head rebuilt from the scope, the answer's
  head split once and sent in the two ASGI messages. Nothing else: no limits, no hygiene
  beyond the hop-by-hop fields, no metrics, no timeouts, no errors handled, Content-Length
  answers only. No proxy should run it; it is the floor of forwarding in Python on this server;
- ``rsgi-forward``: the same app on granian's RSGI interface (headers as strings both ways);
- ``slotwise``: `slotwise serve` of TREE (default: this checkout) with no policies: row (f).

Servers take turns each round (the order reverses every other round), so all see the same
machine. Prints each round's req/s and the CPU the server's process tree spent per request,
then the medians and each server's per-round ratio to slotwise's CPU per request.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

_HOP = frozenset(
    [b"connection", b"keep-alive", b"proxy-connection", b"te", b"trailer"]
    + [b"transfer-encoding", b"upgrade"]
)
_HOP_STR = frozenset(name.decode() for name in _HOP)


class _Connection(asyncio.Protocol):
    """One keep-alive upstream connection; ``answer`` resolves with (head, body)."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.answer: asyncio.Future[tuple[bytes, bytes]] | None = None
        self.buffered = b""

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        buffered = self.buffered + data if self.buffered else data
        end = buffered.find(b"\r\n\r\n")
        if end < 0:
            self.buffered = buffered
            return
        head = buffered[:end]
        at = head.lower().find(b"\r\ncontent-length:") + 17
        stop = head.find(b"\r\n", at)
        length = int(head[at : stop if stop > 0 else len(head)])
        if len(buffered) - end - 4 < length:
            self.buffered = buffered
            return
        self.buffered = b""
        answer, self.answer = self.answer, None
        assert answer is not None
        answer.set_result((head, buffered[end + 4 : end + 4 + length]))


_idle: list[_Connection] = []


async def _exchange(request: bytes) -> tuple[bytes, bytes]:
    loop = asyncio.get_running_loop()
    if _idle:
        conn = _idle.pop()
    else:
        port = int(os.environ["FLOOR_UPSTREAM_PORT"])
        _, conn = await loop.create_connection(_Connection, "127.0.0.1", port)
    conn.answer = answer = loop.create_future()
    assert conn.transport is not None
    conn.transport.write(request)
    head_and_body = await answer
    _idle.append(conn)
    return head_and_body


async def asgi_forward(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            kind = (await receive())["type"]
            await send({"type": kind + ".complete"})
            if kind == "lifespan.shutdown":
                return
    parts = [scope["method"].encode(), b" ", scope["raw_path"], b" HTTP/1.1\r\n"]
    if scope["query_string"]:
        parts[2] += b"?" + scope["query_string"]
    for name, value in scope["headers"]:
        if name not in _HOP:
            parts += [name, b": ", value, b"\r\n"]
    parts.append(b"\r\n")
    head, body = await _exchange(b"".join(parts))
    lines = head.split(b"\r\n")
    headers = []
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name = name.lower()
        if name not in _HOP:
            headers.append((name, value.strip()))
    status = int(lines[0][9:12])
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def rsgi_forward(scope: Any, proto: Any) -> None:
    target = scope.path + ("?" + scope.query_string if scope.query_string else "")
    parts = [scope.method.encode(), b" ", target.encode(), b" HTTP/1.1\r\n"]
    for name, value in scope.headers.items():
        if name not in _HOP_STR:
            parts += [name.encode(), b": ", value.encode("latin-1"), b"\r\n"]
    parts.append(b"\r\n")
    head, body = await _exchange(b"".join(parts))
    lines = head.decode("latin-1").split("\r\n")
    headers = []
    for line in lines[1:]:
        name, _, value = line.partition(":")
        name = name.lower()
        if name not in _HOP_STR:
            headers.append((name, value.strip()))
    proto.response_bytes(int(lines[0][9:12]), headers, body)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=int, default=6)
    parser.add_argument("--tree", type=Path, default=Path(__file__).resolve().parents[1])
    args = parser.parse_args()
    here = Path(__file__).resolve().parent
    sys.path.insert(0, str(here.parent))
    sys.path.insert(0, str(here))
    from slotwise.lab.proxy_bench import _NGINX_UPSTREAM, _proc, _write_fixtures, _wrk
    from slotwise.proxy.loopback import free_port, wait_for_port

    nginx = "/usr/sbin/nginx"
    names = ["nginx", "asgi-forward", "rsgi-forward", "slotwise"]
    cpu: dict[str, list[float]] = {name: [] for name in names}
    rates: dict[str, list[float]] = {name: [] for name in names}
    with tempfile.TemporaryDirectory(prefix="slotwise-floor-") as tmp:
        d = Path(tmp)
        d.chmod(0o755)
        _write_fixtures(d)
        up = free_port()
        (d / "up.conf").write_text(_NGINX_UPSTREAM.format(d=d, port=up))
        cwd = os.getcwd()
        os.chdir(d)  # outside the repository: its tree would come first otherwise
        try:
            with _proc(["taskset", "-c", "1", nginx, "-c", str(d / "up.conf")], d / "up.log"):
                wait_for_port(up, timeout=20.0)
                for round_ in range(args.rounds):
                    for name in names if round_ % 2 == 0 else names[::-1]:
                        port = free_port()
                        argv, env = _server(name, args.tree, d, port, up, nginx, here)
                        with _proc(argv, d / f"{name}.log", env) as server:
                            wait_for_port(port, timeout=120.0)
                            url = f"http://127.0.0.1:{port}/ads/home-top"
                            _wrk("warm-up", url, 2)
                            row = _wrk(name, url, args.seconds, pid=server.pid)
                        assert row.cpu_us is not None
                        cpu[name].append(row.cpu_us)
                        rates[name].append(row.rps)
                        print(
                            f"round {round_ + 1} {name:13} {row.rps:9,.0f} req/s"
                            f" {row.cpu_us:6.1f} us CPU/request",
                            flush=True,
                        )
        finally:
            os.chdir(cwd)
    print(f"\nmedians over {args.rounds} rounds (load average {os.getloadavg()[0]:.1f} at the end)")
    print("| server | req/s | CPU us/request | CPU / slotwise's, paired median |")
    print("| --- | ---: | ---: | ---: |")
    for name in names:
        paired = statistics.median(a / b for a, b in zip(cpu[name], cpu["slotwise"], strict=True))
        print(
            f"| {name} | {statistics.median(rates[name]):,.0f} |"
            f" {statistics.median(cpu[name]):.1f} | {paired:.3f} |"
        )
    return 0


def _server(
    name: str, tree: Path, d: Path, port: int, up: int, nginx: str, here: Path
) -> tuple[list[str], dict[str, str] | None]:
    from bench_interleaved import _engine_only

    from slotwise.lab.proxy_bench import _NGINX_PROXY

    if name == "nginx":
        conf = d / "px.conf"
        conf.write_text(_NGINX_PROXY.format(d=d, port=port, upstream=up))
        return ["taskset", "-c", "0", nginx, "-c", str(conf)], None
    if name == "slotwise":
        argv = [
            "taskset", "-c", "0", sys.executable, "-m", "slotwise", "serve",
            "--upstream", f"http://127.0.0.1:{up}", "--policies", str(d / "policies-none"),
            "--port", str(port), "--store", "memory://",
        ]  # fmt: skip
        env = dict(
            os.environ,
            PYTHONPATH=str(tree),
            SLOTWISE_PROXY_RELOAD_INTERVAL="0",
            SLOTWISE_PLUGINS="none",
            **_engine_only(tree),
        )
        return argv, env
    interface = name.split("-")[0]
    argv = [
        "taskset", "-c", "0", sys.executable, "-m", "granian", "--interface", interface,
        "--loop", "uvloop", "--http", "1", "--no-ws", "--workers", "1",
        "--port", str(port), "--log-level", "warning", f"{Path(__file__).stem}:{interface}_forward",
    ]  # fmt: skip
    return argv, dict(os.environ, PYTHONPATH=str(here), FLOOR_UPSTREAM_PORT=str(up))


if __name__ == "__main__":
    sys.exit(main())
