"""The proxy's log lines: JSON (or text) with request ids that match the upstream's, the access
log, fail-opens sampled per cause with the exception for engine_error, no line repeated within
the repeat interval; and the same through `slotwise serve --workers 2`."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from slotwise.proxy.app import ProxyApp
from slotwise.proxy.choice import Choice, SlotChoice
from slotwise.proxy.config import Settings
from slotwise.proxy.config.sections import LogConfig
from slotwise.proxy.logs import RepeatFilter, configure
from tests.conftest import REPO
from tests.proxy.support import SPRING_AD, Canned, running, upstream_server, wait_ready
from tests.support.servers import free_port

POLICIES = REPO / "examples" / "adserver" / "policies"


@pytest.fixture(autouse=True)
def _builtin_providers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLOTWISE_PLUGINS", "builtins")


@pytest.fixture
def lines() -> io.StringIO:
    """slotwise's log lines, JSON, into a buffer (tests/conftest.py restores the loggers)."""
    buffer = io.StringIO()
    configure(LogConfig(format="json", level="info", repeat_interval=60.0), buffer)
    return buffer


def _parsed(buffer: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in buffer.getvalue().splitlines()]


class Exploding:
    def choose(self, *args: Any) -> Any:
        raise RuntimeError("the chooser broke")


class Garbage:
    def choose(self, campaign: Any, *args: Any) -> Choice:
        # a well-formed answer (compiled code checks the declared type) naming a slot the
        # campaign does not have: the engine trips over it, an engine_error
        pick = SlotChoice("no-such-slot", "v", 1.0, ("v",))
        return Choice(campaign.name, "rules", False, 0.0, False, (pick,), {})


def _ad() -> Canned:
    return Canned(200, [("Content-Type", "application/json")], json.dumps(SPRING_AD).encode())


@pytest.mark.parametrize(
    ("chooser", "cause", "exception", "campaign"),
    [
        (Garbage(), "engine_error", "KeyError", None),
        (Exploding(), "chooser_error", "RuntimeError: the chooser broke", "spring_sale"),
    ],
)
async def test_an_engine_error_is_logged_once_with_its_exception_and_request_id(
    lines: io.StringIO, chooser: Any, cause: str, exception: str, campaign: str | None
) -> None:
    async with upstream_server({"/ads/home-top": _ad()}) as upstream:
        settings = Settings.of(upstream_url=upstream.url, proxy_policies=str(POLICIES))
        async with running(ProxyApp(settings, chooser=chooser)) as client:
            for i in range(5):
                response = await client.get("/ads/home-top", headers={"x-request-id": f"req-{i}"})
                assert response.json() == SPRING_AD  # failed open: the upstream's answer
    sent = [headers["x-request-id"] for _, headers, _ in upstream.requests]
    assert sent == [f"req-{i}" for i in range(5)]
    failed = [line for line in _parsed(lines) if line["logger"] == "slotwise.proxy.fail_open"]
    assert len(failed) == 1, failed  # one a minute per cause; the metrics count all five
    line = failed[0]
    assert line["cause"] == cause and line["request_id"] == "req-0"
    assert line["level"] == "warning" and line.get("campaign") == campaign
    assert exception in line["exception"]
    assert line["time"].endswith("Z") and "T" in line["time"]


async def test_the_access_log_names_the_request_id_the_upstream_got(lines: io.StringIO) -> None:
    async with upstream_server({"/ads/home-top": _ad()}) as upstream:
        settings = Settings.of(
            upstream_url=upstream.url, proxy_policies=str(POLICIES), log_access=True
        )
        async with running(ProxyApp(settings)) as client:
            await client.get("/ads/home-top", headers={"x-request-id": "from-the-client"})
            await client.get("/ads/home-top")
            await client.get("/nowhere")
    access = [line for line in _parsed(lines) if line["logger"] == "slotwise.access"]
    sent = [headers["x-request-id"] for _, headers, _ in upstream.requests]
    assert [line["request_id"] for line in access] == sent
    assert sent[0] == "from-the-client" and len(sent[1]) == 16
    assert [line["status"] for line in access] == [200, 200, 404]
    assert access[2]["path"] == "/nowhere" and access[2]["duration_ms"] >= 0


def test_a_line_is_not_repeated_within_the_interval() -> None:
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.addFilter(RepeatFilter(60.0))
    logger = logging.getLogger("slotwise.test_repeats")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        for _ in range(10):
            logger.error("model rejected, the previous one keeps serving: %s", "bad checksum")
        logger.error("another line")
        assert buffer.getvalue().count("model rejected") == 1
        assert "another line" in buffer.getvalue()
        held = handler.filters[0]
        assert isinstance(held, RepeatFilter)
        held._seen = {k: (0.0, n) for k, (_, n) in held._seen.items()}  # the minute is over
        record = logging.LogRecord(
            "slotwise.test_repeats", logging.ERROR, "", 0,
            "model rejected, the previous one keeps serving: %s", ("bad checksum",), None,
        )  # fmt: skip
        assert held.filter(record) and record.suppressed == 9
    finally:
        logger.removeHandler(handler)


def test_text_for_a_terminal_json_otherwise() -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    for stream, first in ((Terminal(), "2"), (io.StringIO(), "{")):
        logger = logging.getLogger("slotwise.test_shape")
        configure(LogConfig(format="auto"), stream)
        logger.warning("hello", extra={"cause": "deadline"})
        text = stream.getvalue()
        assert text.startswith(first), text
        assert "hello" in text and "deadline" in text


@pytest.mark.slow
async def test_serve_writes_json_lines_whose_request_ids_match_the_upstreams(
    tmp_path: Path,
) -> None:
    port = free_port()
    log_file = tmp_path / "serve.log"
    async with upstream_server({"/ads/home-top": _ad()}) as upstream:
        env = dict(
            os.environ,
            SLOTWISE_PLUGINS="builtins",
            SLOTWISE_LOG_FORMAT="json",
            SLOTWISE_LOG_ACCESS="true",
            # every personalisable answer misses a 1 microsecond deadline: fail-open lines
            SLOTWISE_PROXY_DECISION_DEADLINE_MS="0.01",
        )
        with log_file.open("w") as sink:
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "slotwise", "serve", "--upstream", upstream.url,
                "--policies", str(POLICIES), "--port", str(port), "--workers", "2",
                env=env, stdout=sink, stderr=sink,
            )  # fmt: skip
            try:
                base = f"http://127.0.0.1:{port}"
                async with httpx.AsyncClient(base_url=base) as client:
                    await wait_ready(client, attempts=600)
                for i in range(40):
                    async with httpx.AsyncClient(base_url=base) as fresh:  # spread over workers
                        headers = {"x-request-id": f"client-{i}"} if i % 2 else {}
                        response = await fresh.get("/ads/home-top", headers=headers)
                        assert response.status_code == 200
            finally:
                process.terminate()
                await asyncio.wait_for(process.wait(), 20)
    parsed = [json.loads(line) for line in log_file.read_text().splitlines()]  # every line
    assert all({"time", "level", "logger", "message"} <= set(line) for line in parsed)
    access = [line for line in parsed if line["logger"] == "slotwise.access"]
    sent = {headers["x-request-id"] for _, headers, _ in upstream.requests}
    assert len(sent) == 40 and {line["request_id"] for line in access} == sent
    assert {f"client-{i}" for i in range(1, 40, 2)} <= sent
    failed = [line for line in parsed if line["logger"] == "slotwise.proxy.fail_open"]
    assert 1 <= len(failed) <= 2  # one per cause per worker per minute
    assert all(line["cause"] == "deadline" and line["request_id"] in sent for line in failed)
    assert any(line["logger"] == "slotwise.serve" for line in parsed)
