"""Bad input: every case gets the right status, a stable code, the field path, and nothing
is stored. Cases are data (bad_input.json); size limits are generated here."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount

from slotwise.proxy.events import EventCollector, EventsConfig, events_routes
from slotwise.proxy.state import open_store
from tests.proxy.events.conftest import Harness

CASES: list[dict[str, Any]] = json.loads((Path(__file__).parent / "bad_input.json").read_text())
LIMITS = EventsConfig()


async def _refused(harness: Harness, body: bytes, content_type: str = "application/json") -> Any:
    response = await harness.client.post(
        "/_sw/events", content=body, headers={"Content-Type": content_type}
    )
    assert await harness.store.log_length("events") == 0, "nothing partial may be stored"
    validate = await harness.client.post(
        "/_sw/events/validate", content=body, headers={"Content-Type": content_type}
    )
    assert validate.status_code == response.status_code
    return response


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
async def test_bad_input(harness: Harness, case: dict[str, Any]) -> None:
    body = case["body"].encode("latin-1" if case.get("latin1") else "utf-8")
    response = await _refused(harness, body, case.get("content_type", "application/json"))
    assert response.status_code == case["status"], response.text
    error = response.json()["error"]
    assert error["message"]
    if "code" in case:
        assert error["code"] == case["code"]
    paths = [r["path"] for r in error.get("rejections", [])]
    for path in case.get("paths", []):
        assert path in paths, f"{path} not among {paths}"
    if "reason" in case:
        assert any(case["reason"] in r["reason"] for r in error["rejections"]), error


def _click(index: int, padding: int = 0) -> dict[str, Any]:
    props = {"extra": {"pad": "x" * padding}} if padding else {}
    return {"type": "click", "id": f"c{index}", "properties": props}


async def test_event_over_32_kb_is_413(harness: Harness) -> None:
    body = msgspec.json.encode({"events": [_click(0), _click(1, LIMITS.max_event_bytes)]})
    response = await _refused(harness, body)
    assert response.status_code == 413
    error = response.json()["error"]
    assert error["code"] == "event_too_large"
    assert [r["path"] for r in error["rejections"]] == ["$.events[1]"]


async def test_batch_over_500_events_is_413(harness: Harness) -> None:
    body = msgspec.json.encode({"events": [_click(i) for i in range(501)]})
    response = await _refused(harness, body)
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "too_many_events"
    ok = msgspec.json.encode({"events": [_click(i) for i in range(500)]})
    accepted = await harness.client.post("/_sw/events", content=ok)
    assert accepted.status_code == 200 and accepted.json()["accepted"] == 500


async def test_batch_over_500_kb_is_413(harness: Harness) -> None:
    events = [_click(i, 20_000) for i in range(30)]  # each under 32 KB, ~600 KB in all
    response = await _refused(harness, msgspec.json.encode({"events": events}))
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "batch_too_large"
    assert "500" in response.json()["error"]["message"] or "512000" in response.text


@pytest.mark.parametrize("inside", [False, True], ids=["the batch", "an event"])
async def test_json_nested_too_deeply_is_400(harness: Harness, inside: bool) -> None:
    deep = b"[" * 5000 + b"]" * 5000
    body = b'{"events": [{"type": "click", "id": "a", "properties": {"x": %s}}]}' % deep
    response = await _refused(harness, body if inside else deep)
    assert response.status_code == 400
    assert "nested too deeply" in response.text


async def test_hostile_free_text_is_stored_verbatim(harness: Harness) -> None:
    query = "'; DROP TABLE log; -- <img src=x onerror=alert(1)> \u202e \U0001f600 {u}*"
    body = {"events": [{"type": "search", "id": "s1", "properties": {"query": query}}]}
    response = await harness.client.post("/_sw/events", json=body)
    assert response.status_code == 200
    (entry,) = await harness.store.log_read("events")
    assert msgspec.json.decode(entry.data)["event"]["properties"]["query"] == query


async def test_repeated_ids_are_one_stored_event(harness: Harness) -> None:
    body = {"events": [{"type": "click", "id": "same"}] * 5}
    response = await harness.client.post("/_sw/events", json=body)
    assert response.status_code == 200
    assert response.json()["accepted"] == 1 and response.json()["duplicates"] == 4
    assert await harness.store.log_length("events") == 1


async def test_a_body_that_trickles_in_answers_408_and_stores_nothing() -> None:
    async with open_store("memory://") as store:
        config = EventsConfig(body_timeout=0.2)
        async with EventCollector(store, config) as collector:
            app = Starlette(routes=[Mount("/_sw", routes=events_routes(collector))])
            transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 40000))
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:

                async def trickle():  # type: ignore[no-untyped-def]
                    yield b'{"events": [{"type": "click", '
                    await asyncio.sleep(5)  # the timeout is over long before
                    yield b'"id": "a"}]}'

                response = await client.post("/_sw/events", content=trickle())
            assert response.status_code == 408
            assert response.json()["error"]["code"] == "body_timeout"
            assert await store.log_length("events") == 0
