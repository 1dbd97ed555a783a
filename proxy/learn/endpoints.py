"""The learner service's own HTTP endpoints (``slotwise learn --serve HOST:PORT``).

``GET /health`` answers 200 while the learner reads the store (its last read succeeded, at most
``stale_after`` seconds ago), else 503 with the reason; ``GET /metrics`` is Prometheus text:
what was read, learned and published, the rewards still inside their window, store failures and
the process's own figures. A deliberately small HTTP/1.1 responder (one request per connection,
GET and HEAD only): an orchestrator's probe and a Prometheus scrape are all it serves.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from dataclasses import dataclass
from typing import Any

from slotwise.proxy.metrics_share import process_metrics

_MAX_HEAD = 8192


@dataclass(slots=True)
class LearnerHealth:
    """What the loop reports: when its last read succeeded, and its last failure."""

    last_ok: float = 0.0
    last_error: str = ""
    store_failures: int = 0
    started: float = 0.0

    def ok(self) -> None:
        self.last_ok = time.monotonic()
        self.last_error = ""

    def failed(self, error: str) -> None:
        self.store_failures += 1
        self.last_error = error


class LearnerEndpoints:
    """/health and /metrics of one learner service."""

    def __init__(self, service: Any, health: LearnerHealth, stale_after: float = 30.0) -> None:
        self.service = service
        self.health = health
        self.stale_after = stale_after
        self._server: asyncio.Server | None = None

    async def start(self, host: str, port: int) -> int:
        """Listen; the port (useful with 0)."""
        self._server = await asyncio.start_server(self._answer, host, port)
        return int(self._server.sockets[0].getsockname()[1])

    async def aclose(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def problem(self) -> str | None:
        """Why the learner is not healthy, or None."""
        if self.health.last_error:
            return f"the store failed: {self.health.last_error}"
        if self.health.last_ok == 0.0:
            return "not started"
        if time.monotonic() - self.health.last_ok > self.stale_after:
            return f"no read of the store for more than {self.stale_after:g}s"
        return None

    def metrics(self) -> str:
        service = self.service
        stats = service.stats
        learned = service.learner.stats
        rows = [
            ("slotwise_learner_decisions_read_total", "counter", "Decisions read from the store.",
             stats.read_decisions),
            ("slotwise_learner_events_read_total", "counter", "Events read from the store.",
             stats.read_events),
            ("slotwise_learner_bad_records_total", "counter", "Records that did not decode.",
             stats.bad_records),
            ("slotwise_learner_examples_total", "counter", "Joined decisions learned from.",
             learned.examples),
            ("slotwise_learner_models_published_total", "counter", "Model versions published.",
             len(stats.published)),
            ("slotwise_learner_pending_decisions", "gauge",
             "Decisions whose reward window is still open.", service.joiner.pending),
            ("slotwise_learner_store_failures_total", "counter", "Failed reads of the store.",
             self.health.store_failures),
            ("slotwise_learner_up", "gauge", "1 while the learner reads the store.",
             int(self.problem() is None)),
        ]  # fmt: skip
        lines = []
        for name, kind, text, value in rows:
            lines += [f"# HELP {name} {text}", f"# TYPE {name} {kind}", f"{name} {value}"]
        return "\n".join(lines) + "\n" + process_metrics(os.getpid())

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            method, path, *_ = head[:_MAX_HEAD].split(b"\r\n", 1)[0].decode("latin-1").split(" ")
            status, body, kind = self._route(method, path.split("?", 1)[0])
            writer.write(
                f"HTTP/1.1 {status}\r\ncontent-type: {kind}\r\ncontent-length: {len(body)}\r\n"
                "connection: close\r\n\r\n".encode()
                + (b"" if method == "HEAD" else body)
            )
            await writer.drain()
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, ValueError):
            pass
        except ConnectionError:
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    def _route(self, method: str, path: str) -> tuple[str, bytes, str]:
        text = "text/plain; charset=utf-8"
        if method not in ("GET", "HEAD"):
            return "405 Method Not Allowed", b"GET or HEAD\n", text
        if path == "/health":
            problem = self.problem()
            if problem is None:
                return "200 OK", b"ok\n", text
            return "503 Service Unavailable", f"{problem}\n".encode(), text
        if path == "/metrics":
            return "200 OK", self.metrics().encode(), "text/plain; version=0.0.4; charset=utf-8"
        return "404 Not Found", b"/health or /metrics\n", text
