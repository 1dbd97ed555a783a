"""Erasure: admin token, loopback only, idempotent, suppresses later events, audited."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable
from pathlib import Path

import httpx
import msgspec
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount

from slotwise.proxy.events import (
    DecisionLog,
    EventCollector,
    EventsConfig,
    events_routes,
    history_key,
)
from slotwise.proxy.events.collector import AuditRecord
from slotwise.proxy.events.erasure import subject_hash
from slotwise.proxy.state import LogRecord, StoreUnavailable, open_store, subject_key
from slotwise.proxy.state.sqlite import SQLiteStore
from tests.proxy.events.conftest import ADMIN_TOKEN, Harness, history_of, settled

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def _events(user: str, *ids: str) -> dict[str, object]:
    return {
        "consent": "personal",
        "events": [{"type": "page_view", "id": i, "user_id": user} for i in ids],
    }


async def test_erasure_removes_state_history_and_log_entries(harness: Harness) -> None:
    client, store = harness.client, harness.store
    await client.post("/_sw/events", json=_events("u1", "a", "b"))
    await client.post("/_sw/events", json=_events("u2", "c"))
    await store.set(subject_key("u1", "profile"), b"{}")
    await store.log_append("decisions", [LogRecord(b"d", subject="u1", id="d1")])
    assert await history_of(store, "u1", 2)  # the erasure must find it
    await settled(harness)

    response = await client.delete("/_sw/admin/users/u1", headers=AUTH)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body == {
        "erased": True, "repeat": False, "keys": 2, "events": 2, "decisions": 1, "queued": 0
    }  # fmt: skip
    assert await store.history(history_key("u1")) == []
    assert await store.get(subject_key("u1", "profile")) is None
    remaining = [e.subject for e in await store.log_read("events")]
    assert remaining == ["u2"]
    assert await store.log_length("decisions") == 0

    again = await client.delete("/_sw/admin/users/u1", headers=AUTH)
    assert again.status_code == 200
    assert again.json() == {
        "erased": True, "repeat": True, "keys": 0, "events": 0, "decisions": 0, "queued": 0
    }  # fmt: skip

    audit = [msgspec.json.decode(e.data, type=AuditRecord) for e in await store.log_read("audit")]
    assert [a.repeat for a in audit] == [False, True]
    assert all(a.subject_sha256 == subject_hash("u1") and a.actor == "127.0.0.1" for a in audit)
    assert all(b"u1" not in e.data for e in await store.log_read("audit"))


async def test_later_events_of_an_erased_user_are_suppressed(harness: Harness) -> None:
    client, store = harness.client, harness.store
    await client.delete("/_sw/admin/users/u1", headers=AUTH)
    response = await client.post("/_sw/events", json=_events("u1", "late"))
    assert response.status_code == 200
    assert response.json()["suppressed"] == 1 and response.json()["accepted"] == 0
    anonymous = {"events": [{"type": "click", "id": "anon", "anonymous_id": "u1"}]}
    await client.post("/_sw/events", json={**anonymous, "consent": "personal"})
    pixel = await client.get("/_sw/px", params={"t": "click", "uid": "u1", "consent": "personal"})
    assert pixel.status_code == 200
    assert await store.log_length("events") == 0
    await asyncio.sleep(0.05)
    assert await store.history(history_key("u1")) == []


async def test_admin_needs_the_token(harness: Harness) -> None:
    missing = await harness.client.delete("/_sw/admin/users/u1")
    assert missing.status_code == 401
    assert missing.json()["error"]["code"] == "unauthorized"
    wrong = await harness.client.delete(
        "/_sw/admin/users/u1", headers={"Authorization": "Bearer wrong-token-wrong-token"}
    )
    assert wrong.status_code == 401
    bad_id = await harness.client.delete("/_sw/admin/users/..%2F*", headers=AUTH)
    assert bad_id.status_code == 400
    assert bad_id.json()["error"]["code"] == "invalid_user_id"


async def _client(config: EventsConfig, tmp_path: Path, client_ip: str) -> httpx.AsyncClient:
    store = open_store("memory://")
    await store.start()
    app = Starlette(routes=[Mount("/_sw", routes=events_routes(EventCollector(store, config)))])
    transport = httpx.ASGITransport(app=app, client=(client_ip, 5000))
    return httpx.AsyncClient(transport=transport, base_url="http://shop.test")


async def test_admin_is_loopback_only_by_default(tmp_path: Path) -> None:
    config = EventsConfig(admin_token=ADMIN_TOKEN)
    async with await _client(config, tmp_path, "203.0.113.9") as client:
        response = await client.delete("/_sw/admin/users/u1", headers=AUTH)
        assert response.status_code == 403
        assert response.json()["error"]["code"] == "admin_loopback_only"
    open_config = EventsConfig(admin_token=ADMIN_TOKEN, admin_loopback_only=False)
    async with await _client(open_config, tmp_path, "203.0.113.9") as client:
        assert (await client.delete("/_sw/admin/users/u1", headers=AUTH)).status_code == 200


async def test_admin_is_off_without_a_token(tmp_path: Path) -> None:
    async with await _client(EventsConfig(), tmp_path, "127.0.0.1") as client:
        response = await client.delete("/_sw/admin/users/u1", headers=AUTH)
        assert response.status_code == 404
        assert "SLOTWISE_ADMIN_TOKEN" in response.json()["error"]["message"]


def test_short_admin_tokens_are_refused() -> None:
    try:
        EventsConfig.load({}, env={"SLOTWISE_ADMIN_TOKEN": "short"})
    except ValueError as exc:
        assert "admin_token" in str(exc)
    else:
        raise AssertionError("a short admin token was accepted")
    assert EventsConfig.load({"max_batch_events": 10}, env={}).max_batch_events == 10


async def test_decisions_still_queued_at_erasure_are_removed_and_counted(
    harness: Harness,
) -> None:
    client, store, collector = harness.client, harness.store, harness.collector
    log = DecisionLog(store, erasure=collector.erasure)
    log.record(b"before", decision_id="d1", subject="u1")
    log.record(b"other", decision_id="d2", subject="u2")
    await store.log_append("decisions", [LogRecord(b"stored", subject="u1", id="d0")])
    response = await client.delete("/_sw/admin/users/u1", headers=AUTH)
    assert response.status_code == 200
    assert response.json()["decisions"] == 2  # one stored, one still queued
    log.record(b"after", decision_id="d3", subject="u1")  # e.g. the profile read was late
    await log.flush()
    stored = {entry.data: entry.subject for entry in await store.log_read("decisions")}
    assert stored == {b"other": "u2"}
    assert log.erased == 2


async def test_a_decision_log_of_another_process_drops_and_settles(harness: Harness) -> None:
    """A worker that did not answer the erasure: its queue is dropped at the flush, and a
    batch that landed after the erasure's deletes is erased again after it lands."""
    client, store = harness.client, harness.store
    other = DecisionLog(store)  # its own Erasure: another process's
    other.record(b"queued", decision_id="q1", subject="u1")
    assert (await client.delete("/_sw/admin/users/u1", headers=AUTH)).status_code == 200
    await other.flush()
    assert await store.log_length("decisions") == 0 and other.erased == 1

    # the race itself: the tombstone read before the erasure, the append after its deletes
    late = DecisionLog(store)
    late.record(b"raced", decision_id="r1", subject="u3")
    real_erased = late._erasure.erased
    calls = 0

    async def erased_then_erasure(subjects: object) -> frozenset[str]:
        nonlocal calls
        calls += 1
        found = await real_erased(subjects)  # type: ignore[arg-type]
        if calls == 1:  # the check before the append passed: now the erasure runs
            assert (await client.delete("/_sw/admin/users/u3", headers=AUTH)).status_code == 200
        return found

    late._erasure.erased = erased_then_erasure  # type: ignore[method-assign]
    await late.flush()
    assert await store.log_length("decisions") == 0
    assert late._erasure.settled == 1


async def test_erasure_and_its_checks_wait_like_writes_not_like_request_reads(
    tmp_path: Path,
) -> None:
    """Erasure and the events' tombstone checks are off the request path: on SQLite they are
    bounded by write_timeout, not by the request path's read timeout. The store's readers
    are kept busy for longer than that read timeout: a request-path read answers 503, the
    events and the erasure wait and succeed."""
    url = f"sqlite://{tmp_path}/state.db?timeout=0.05&write_timeout=5"
    async with open_store(url) as store:
        assert isinstance(store, SQLiteStore)
        readers = store._readers
        assert readers is not None

        async def busy_readers(work: Awaitable[httpx.Response]) -> httpx.Response:
            """``work`` while both reader threads are busy for 0.3 s (a loaded machine)."""
            release = threading.Event()
            for _ in range(2):
                readers.submit(release.wait, 5.0)
            task = asyncio.ensure_future(work)
            with pytest.raises(StoreUnavailable):  # a request-path read: too slow now
                await store.get_many(["erased:x"])
            await asyncio.sleep(0.25)
            release.set()
            return await task

        config = EventsConfig(admin_token=ADMIN_TOKEN, history_max_len=50)
        async with EventCollector(store, config) as collector:
            app = Starlette(routes=[Mount("/_sw", routes=events_routes(collector))])
            transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 40000))
            async with httpx.AsyncClient(transport=transport, base_url="http://shop.test") as c:
                accepted = await busy_readers(c.post("/_sw/events", json=_events("u1", "a")))
                assert accepted.status_code == 200, accepted.text
                erased = await busy_readers(c.delete("/_sw/admin/users/u1", headers=AUTH))
                assert erased.status_code == 200, erased.text
                assert erased.json()["events"] == 1
                later = await busy_readers(c.post("/_sw/events", json=_events("u1", "b")))
                assert later.status_code == 200, later.text
                assert later.json()["suppressed"] == 1
                assert await store.log_length("events") == 0
