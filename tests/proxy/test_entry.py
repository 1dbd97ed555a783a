"""What `slotwise serve` hands granian (slotwise.proxy.entry.AsgiEntry): requests for the
upstream go straight to the proxy, counted as work in flight; everything else reaches the app."""

from __future__ import annotations

import io
import json
from typing import Any

import httpx
import pytest

from slotwise.proxy.app import ProxyApp
from slotwise.proxy.config import Settings
from slotwise.proxy.config.sections import LogConfig
from slotwise.proxy.entry import AsgiEntry, is_ours
from slotwise.proxy.logs import configure
from tests.conftest import REPO
from tests.proxy.support import SPRING_AD, Canned, running, upstream_server

POLICIES = REPO / "examples" / "adserver" / "policies"


@pytest.fixture(autouse=True)
def _builtin_providers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLOTWISE_PLUGINS", "builtins")


def _ad() -> Canned:
    return Canned(200, [("Content-Type", "application/json")], json.dumps(SPRING_AD).encode())


async def test_the_entry_proxies_and_hands_the_rest_to_the_app() -> None:
    async with upstream_server({"/ads/home-top": _ad()}) as upstream:
        settings = Settings.of(
            upstream_url=upstream.url,
            proxy_policies=str(POLICIES),
            proxy_decision_deadline_ms=2000.0,  # a loaded machine must not fail it open
        )
        app = ProxyApp(settings)
        entry = AsgiEntry(app)
        async with running(entry) as client:  # the lifespan too goes through the entry
            assert app.runtime is not None
            admission = app.runtime.engine.admission
            answer = await client.get("/ads/home-top", headers={"cookie": "sw_consent=personal"})
            assert answer.status_code == 200
            # the upstream's ad, with a decision's trackers: decided, not just forwarded
            (pixel,) = answer.json()["tracking"]["impressions"]
            assert pixel.startswith("/_sw/px?t=impression&did=")
            assert (admission.taken, admission.active) == (1, 0)
            health = await client.get("/_sw/health")  # the app's own endpoint
            assert health.status_code == 200
            encoded = await client.get("/_sw%2fhealth")  # not ours: the upstream's 404
            assert encoded.status_code == 404
            assert (admission.taken, admission.active) == (2, 0)
    assert [target for target, _, _ in upstream.requests] == [b"/ads/home-top", b"/_sw%2fhealth"]


async def test_before_the_start_the_entry_answers_as_the_app_does() -> None:
    entry = AsgiEntry(ProxyApp(Settings.of(upstream_url="http://127.0.0.1:9", proxy_policies="")))
    transport = httpx.ASGITransport(app=entry)
    async with httpx.AsyncClient(transport=transport, base_url="http://proxy.test") as client:
        answer = await client.get("/ads/home-top")
    assert (answer.status_code, answer.text) == (503, "starting\n")


async def test_with_access_logs_requests_go_through_the_app() -> None:
    buffer = io.StringIO()
    configure(LogConfig(format="json", level="info", repeat_interval=60.0), buffer)
    async with upstream_server({"/ads/home-top": _ad()}) as upstream:
        settings = Settings.of(upstream_url=upstream.url, proxy_policies="", log_access=True)
        app = ProxyApp(settings)
        async with running(AsgiEntry(app)) as client:
            assert (await client.get("/ads/home-top")).status_code == 200
            assert app.runtime is not None and app.runtime.engine.admission.taken == 1
    lines: list[dict[str, Any]] = [json.loads(line) for line in buffer.getvalue().splitlines()]
    access = [line for line in lines if line["logger"] == "slotwise.access"]
    assert [(line["path"], line["status"]) for line in access] == [("/ads/home-top", 200)]


@pytest.mark.parametrize(
    ("scope", "ours"),
    [
        ({"raw_path": b"/_sw/health", "path": "/_sw/health"}, True),
        ({"raw_path": b"/_sw%2fhealth", "path": "/_sw/health"}, False),
        ({"raw_path": None, "path": "/_sw/events"}, True),
        ({"path": "/ads/_sw/x"}, False),
    ],
)
def test_ours_by_the_target_as_sent(scope: dict[str, Any], ours: bool) -> None:
    assert is_ours(scope) is ours
