"""Run the standalone event collector in a subprocess, and drive it for crash tests."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.support.servers import free_port, wait_for_port


@dataclass
class EventsServer:
    port: int
    process: subprocess.Popen[bytes]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def kill(self) -> None:
        """SIGKILL the server and its worker processes (by PID, workers first): no shutdown
        hooks, no flush, exactly what a crash looks like."""
        for pid in _descendants(self.process.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()
        for pid in _descendants(self.process.pid):  # a worker that outlived its parent
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def _descendants(pid: int) -> list[int]:
    """Child processes of ``pid``, deepest first (from /proc: only processes we started)."""
    children: list[int] = []
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as listing:
            direct = [int(p) for p in listing.read().split()]
    except OSError:
        return []
    for child in direct:
        children.extend(_descendants(child))
        children.append(child)
    return children


@contextmanager
def events_server(
    store_url: str,
    log: Path,
    *,
    static: Path | None = None,
    env: dict[str, str] | None = None,
    port: int | None = None,
    proxy: bool = False,
    upstream: str | None = None,
) -> Iterator[EventsServer]:
    """The collector on a free port; ``proxy=True`` runs ``slotwise serve`` (in front of
    ``upstream``) instead of the standalone collector (no ``static`` then)."""
    port = port or free_port()
    if proxy:  # the real thing: `slotwise serve` (granian) with the events mounted at /_sw
        policies = log.parent / "policies"
        policies.mkdir(exist_ok=True)
        args = [
            sys.executable, "-m", "slotwise", "serve",
            "--upstream", upstream or f"http://127.0.0.1:{free_port()}",
            "--policies", str(policies),
            "--store", store_url, "--host", "127.0.0.1", "--port", str(port),
            "--log-level", "error",
        ]  # fmt: skip
    else:
        args = [
            sys.executable, "-m", "slotwise.proxy.events.serve",
            "--store", store_url, "--host", "127.0.0.1", "--port", str(port),
        ]  # fmt: skip
    if static is not None and not proxy:
        args += ["--static", str(static)]
    with open(log, "ab") as out:
        process = subprocess.Popen(
            args, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}
        )
    server = EventsServer(port, process)
    try:
        wait_for_port(port, timeout=20)
        yield server
    finally:
        server.stop()


@dataclass
class LoadResult:
    acked: set[str] = field(default_factory=set)  # event ids of batches answered 2xx
    refused: int = 0  # batches answered 503 (store down): the client keeps them
    failed: int = 0  # connection errors: the reply was lost, the client keeps them


async def steady_load(
    base_url: str, stop: asyncio.Event, *, workers: int = 6, batch: int = 20, tag: str = ""
) -> LoadResult:
    """POST batches of unique events until ``stop`` is set; remember which were acknowledged."""
    result = LoadResult()
    counter = 0

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal counter
        while not stop.is_set():
            ids = []
            for _ in range(batch):
                counter += 1
                ids.append(f"{tag}e{counter}")
            body = {"events": [{"type": "page_view", "id": i} for i in ids]}
            try:
                response = await client.post("/_sw/events", json=body, timeout=2.0)
            except httpx.HTTPError:
                result.failed += 1
                await asyncio.sleep(0.02)
                continue
            if response.status_code == 200:
                result.acked.update(ids)
            elif response.status_code == 503:
                result.refused += 1
                await asyncio.sleep(0.02)
            else:
                raise AssertionError(f"unexpected {response.status_code}: {response.text}")

    async with httpx.AsyncClient(base_url=base_url) as client:
        await asyncio.gather(*(worker(client) for _ in range(workers)))
    return result


async def load_then(action_after: float, base_url: str, action: object, tag: str) -> LoadResult:
    """Run ``steady_load`` and call ``action()`` (a crash) after ``action_after`` seconds."""
    stop = asyncio.Event()
    load = asyncio.create_task(steady_load(base_url, stop, tag=tag))
    await asyncio.sleep(action_after)
    await asyncio.to_thread(action)  # type: ignore[arg-type]
    await asyncio.sleep(0.3)  # requests in flight at the crash fail now
    stop.set()
    return await load


def crash_delay(rng: random.Random) -> float:
    return rng.uniform(0.4, 1.2)


@contextmanager
def static_server(directory: Path, log: Path) -> Iterator[str]:
    """A plain HTTP server for ``directory`` (the upstream the proxy sits in front of)."""
    port = free_port()
    args = [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", "--directory",
            str(directory), str(port)]  # fmt: skip
    with open(log, "ab") as out:
        process = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_for_port(port)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
