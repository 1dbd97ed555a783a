"""A store that cannot answer: 503 + Retry-After, never a 2xx that drops events."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount

from slotwise.proxy.events import DecisionLog, EventCollector, EventsConfig, events_routes
from slotwise.proxy.state import Store, StoreWriteUncertain, open_store
from tests.proxy.events.conftest import ADMIN_TOKEN, Harness
from tests.support.servers import redis_server


async def test_events_answer_503_while_redis_is_down(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with redis_server(tmp_path) as server:
        store = open_store(server.url)
        await store.start()
        config = EventsConfig(admin_token=ADMIN_TOKEN, retry_after=7)
        app = Starlette(routes=[Mount("/_sw", routes=events_routes(EventCollector(store, config)))])
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 1))
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            ok = await client.post("/_sw/events", json={"events": [{"type": "click", "id": "a"}]})
            assert ok.status_code == 200
            server.stop()
            down = await client.post("/_sw/events", json={"events": [{"type": "click", "id": "b"}]})
            assert down.status_code == 503
            assert down.headers["retry-after"] == "7"
            assert down.json()["error"]["code"] == "store_unavailable"
            pixel = await client.get("/_sw/px", params={"t": "click", "id": "c"})
            assert pixel.status_code == 503
            erase = await client.delete(
                "/_sw/admin/users/u1", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
            )
            assert erase.status_code == 503
            # validation needs no store
            check = await client.post(
                "/_sw/events/validate", json={"events": [{"type": "click", "id": "d"}]}
            )
            assert check.status_code == 200
        await store.close()
    # the operator learns why, once per interval, not once per refused request
    reports = [r.getMessage() for r in caplog.records if r.name == "slotwise.events"]
    assert len(reports) == 1 and "events could not be stored (1 request(s)" in reports[0]
    assert "redis" in reports[0]


async def test_decision_log_never_blocks_and_catches_up(tmp_path: Path) -> None:
    url = f"sqlite://{tmp_path}/state.db"
    async with open_store(url) as store, DecisionLog(store, max_pending=3) as decisions:
        assert decisions.record(b"1", decision_id="d1", subject="u1")
        assert decisions.record(b"2", decision_id="d2", subject=None)
        # written in the background, without a flush: waited for (a loaded machine is slow)
        deadline = asyncio.get_running_loop().time() + 10
        while len(entries := await store.log_read("decisions")) < 2:
            assert asyncio.get_running_loop().time() < deadline, entries
            await asyncio.sleep(0.02)
        assert [e.data for e in entries] == [b"1", b"2"]
        assert (await store.log_read("decisions"))[0].subject == "u1"
        await decisions.flush()


async def test_concurrent_flushes_append_each_record_once_and_lose_none(tmp_path: Path) -> None:
    # the background task and an explicit flush (shutdown, erasure) used to take the same
    # batch and pop it twice: records lost, or an IndexError from the empty queue
    url = f"sqlite://{tmp_path}/state.db"
    async with open_store(url) as store, DecisionLog(store, batch=7) as decisions:
        for n in range(200):
            assert decisions.record(b"%d" % n, decision_id=f"d{n}", subject=None)
        await asyncio.gather(decisions.flush(), decisions.flush(), decisions.flush())
        assert decisions.pending == 0
        entries = await store.log_read("decisions", count=1000)
        assert sorted(int(e.data) for e in entries) == list(range(200))
        assert decisions.appended == 200


class _GatedAppends:
    """A store whose log appends wait at a gate (duck-typed, as tests/support/faults.py)."""

    def __init__(self, inner: Store) -> None:
        self.inner = inner
        self.gate = asyncio.Event()
        self.waiting = asyncio.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def log_append(self, *args: Any, **kwargs: Any) -> Any:
        self.waiting.set()
        await self.gate.wait()
        return await self.inner.log_append(*args, **kwargs)


async def test_a_flush_waits_for_the_batch_already_in_flight() -> None:
    # the background task had taken the record off the queue: a flush that saw an empty queue
    # returned at once, before the record was in the log
    async with open_store("memory://") as inner:
        store = _GatedAppends(inner)
        async with DecisionLog(store) as decisions:  # type: ignore[arg-type]
            try:
                assert decisions.record(b"1", decision_id="d1", subject=None)
                await asyncio.wait_for(store.waiting.wait(), 10)  # in flight, the queue empty
                assert decisions.pending == 0
                flushed = asyncio.create_task(decisions.flush())
                await asyncio.sleep(0.05)
                done_early = flushed.done()
            finally:
                store.gate.set()  # the shutdown's own flush must not wait at the gate
            assert not done_early
            await asyncio.wait_for(flushed, 10)
            assert [e.data for e in await inner.log_read("decisions")] == [b"1"]


async def test_decision_log_queues_while_redis_is_down_and_drops_beyond_the_bound(
    tmp_path: Path,
) -> None:
    with redis_server(tmp_path) as server:
        store = open_store(server.url)
        await store.start()
        async with DecisionLog(store, max_pending=2, retry_delay=0.05) as decisions:
            server.stop()
            assert decisions.record(b"1", decision_id="d1", subject=None)
            assert decisions.record(b"2", decision_id="d2", subject=None)
            assert not decisions.record(b"3", decision_id="d3", subject=None)
            assert decisions.dropped == 1
            await asyncio.sleep(0.2)
            assert decisions.pending == 2  # kept for retry, not lost
        await store.close()


async def test_a_write_the_store_did_not_confirm_is_not_called_lost(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a timed-out write may still land: the answer must not say "nothing was stored", since
    # the client would then be right to doubt a resend (it is safe: ids deduplicate)
    async def unconfirmed(*args: object, **kwargs: object) -> None:
        raise StoreWriteUncertain("redis did not confirm a write within write_timeout")

    monkeypatch.setattr(harness.collector, "collect", unconfirmed)
    answer = await harness.client.post(
        "/_sw/events", json={"events": [{"type": "click", "id": "a"}]}
    )
    assert answer.status_code == 503
    message = answer.json()["error"]["message"]
    assert "may still complete" in message and "nothing was stored" not in message
