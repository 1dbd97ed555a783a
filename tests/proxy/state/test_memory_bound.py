"""memory:// is `slotwise serve`'s default: its logs stay within ``max_log_entries``."""

from __future__ import annotations

import asyncio
import gc
import logging

import pytest

from slotwise.proxy.state import LogRecord, StoreConfigError, open_store
from slotwise.proxy.state.memory import DEFAULT_MAX_LOG_ENTRIES, MemoryStore


def _records(first: int, count: int) -> list[LogRecord]:
    return [LogRecord(b"r%d" % i, subject=None, id=f"id-{i}") for i in range(first, first + count)]


async def test_a_log_keeps_its_newest_entries(caplog: pytest.LogCaptureFixture) -> None:
    store = MemoryStore(max_log_entries=10)
    with caplog.at_level(logging.WARNING, logger="slotwise.proxy.state.memory"):
        for batch in range(5):
            await store.log_append("decisions", _records(batch * 5, 5), dedup_ttl=60.0)
    assert await store.log_length("decisions") <= 10
    kept = await store.log_read("decisions", count=100)
    # the newest survive, in order, and positions keep increasing past what was shed
    assert [e.data for e in kept] == [b"r%d" % i for i in range(25 - len(kept), 25)]
    assert [int(e.position) for e in kept] == list(range(26 - len(kept), 26))
    assert sum("the oldest are dropped" in r.message for r in caplog.records) == 1


async def test_dedup_ids_are_bounded_too() -> None:
    store = MemoryStore(max_log_entries=10)
    for batch in range(10):
        await store.log_append("events", _records(batch * 4, 4), dedup_ttl=3600.0)
    assert len(store._logs["events"].dedup) <= 10
    # a retried recent batch is still recognised
    assert await store.log_append("events", _records(36, 4), dedup_ttl=3600.0) == [None] * 4


async def test_a_consumer_group_reads_on_after_a_shed() -> None:
    store = MemoryStore(max_log_entries=10)
    await store.log_append("decisions", _records(0, 5))
    first = await store.log_group_read("decisions", "learner", "c1", count=5)
    assert [e.data for e in first] == [b"r%d" % i for i in range(5)]
    await store.log_append("decisions", _records(5, 20))  # sheds r0..r15 or so
    rest = await store.log_group_read("decisions", "learner", "c1", count=100)
    assert rest and rest[-1].data == b"r24"
    assert [int(e.position) for e in rest] == sorted(int(e.position) for e in rest)
    assert int(rest[0].position) > int(first[-1].position)
    # entries pending from before the shed and now gone are skipped, not an error
    pending = await store.log_group_read("decisions", "learner", "c1", pending=True, count=100)
    assert pending == rest


def test_the_url_sets_the_bound() -> None:
    assert open_store("memory://").max_log_entries == DEFAULT_MAX_LOG_ENTRIES  # type: ignore[attr-defined]
    assert open_store("memory://?max_log_entries=500").max_log_entries == 500  # type: ignore[attr-defined]


@pytest.mark.parametrize("value", ["0", "-3", "1e6", "lots", ""])
def test_a_bad_bound_says_what_is_wrong(value: str) -> None:
    with pytest.raises(StoreConfigError, match="max_log_entries must be a whole number"):
        open_store(f"memory://?max_log_entries={value}")


async def test_the_sweep_frees_expired_ids_oldest_first() -> None:
    store = MemoryStore()
    await store.log_append("events", _records(0, 5), dedup_ttl=0.01)
    await asyncio.sleep(0.02)
    store._logs["events"].next_prune = 0.0  # the next append sweeps
    await store.log_append("events", _records(5, 3), dedup_ttl=3600.0)
    assert list(store._logs["events"].dedup) == ["id-5", "id-6", "id-7"]
    # an expired id is appended again; a live one is still refused
    assert await store.log_append("events", _records(0, 1), dedup_ttl=60.0) != [None]
    assert await store.log_append("events", _records(5, 1), dedup_ttl=60.0) == [None]


def test_log_entries_cost_the_garbage_collector_nothing() -> None:
    # plain tuples of bytes, numbers and strings are untracked once they survive a collection
    store = MemoryStore()
    asyncio.run(store.log_append("decisions", _records(0, 3)))
    gc.collect()
    assert not any(gc.is_tracked(entry) for entry in store._logs["decisions"].entries)
