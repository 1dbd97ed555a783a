"""memory:// expires values, sets and histories actively, not only when they are read."""

from __future__ import annotations

import pytest

from slotwise.proxy.state import HistoryItem, memory
from slotwise.proxy.state.memory import MemoryStore


class Clock:
    def __init__(self) -> None:
        self.at = 1_000_000.0

    def __call__(self) -> float:
        return self.at


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(memory, "now", clock)
    return clock


async def _sweep_all(store: MemoryStore, clock: Clock, writes: int) -> None:
    """Drive the sweep as traffic does: one write per sweep interval."""
    for _ in range(writes):
        clock.at += memory._SWEEP_EVERY
        await store.set("traffic", b"x")


async def test_state_of_users_who_never_return_is_dropped(clock: Clock) -> None:
    store = MemoryStore()
    for user in range(2_500):
        await store.set(f"profile:{user}", b"p", ttl=60.0)
        await store.set_add(f"seen:{user}", b"a", ttl=60.0)
        await store.history_append(
            f"views:{user}", [HistoryItem("view", clock.at)], max_len=5, ttl=60.0
        )
    await store.set("forever", b"f")  # no ttl
    await store.set("fresh", b"f", ttl=3_600.0)
    clock.at += 61.0
    # nobody reads those keys again; writes elsewhere drive the sweep through all three tables
    await _sweep_all(store, clock, writes=3 * (2_500 // memory._SWEEP_CHUNK + 2))
    assert not any(key.startswith("profile:") for key in store._values)
    assert not store._sets
    assert not store._histories
    assert await store.get("forever") == b"f"
    assert await store.get("fresh") == b"f"


async def test_a_write_checks_one_chunk_at_most(clock: Clock) -> None:
    store = MemoryStore()
    for user in range(3 * memory._SWEEP_CHUNK):
        await store.set(f"profile:{user}", b"p", ttl=1.0)
    clock.at += 2.0
    before = len(store._values)
    await store.set("traffic", b"x")
    assert before - len(store._values) + 1 <= memory._SWEEP_CHUNK  # +1: "traffic" was added
    # and no second step before the interval has passed
    after_first = len(store._values)
    await store.set("traffic", b"y")
    assert len(store._values) == after_first


async def test_a_key_written_again_since_the_snapshot_is_kept(clock: Clock) -> None:
    store = MemoryStore()
    await store.set("cap:u1", b"1", ttl=1.0)
    await store.set("traffic", b"x")  # first step: snapshot of the values taken
    clock.at += 2.0
    await store.set("cap:u1", b"2", ttl=60.0)  # renewed before the sweep reaches it
    await _sweep_all(store, clock, writes=6)
    assert await store.get("cap:u1") == b"2"


async def test_counters_keep_their_expiry_and_are_swept(clock: Clock) -> None:
    store = MemoryStore()
    assert await store.incr("cap:u2", ttl=10.0) == 1
    assert await store.incr("cap:u2") == 2  # the first ttl stands
    clock.at += 11.0
    await _sweep_all(store, clock, writes=6)
    assert "cap:u2" not in store._values
    assert await store.incr("cap:u2", ttl=10.0) == 1


async def test_the_synchronous_reads_answer_as_the_async_ones(clock: Clock) -> None:
    """get_many_now and history_now (the profile provider's reads without a coroutine) see
    what get_many and history see, an expired key as absent."""
    store = MemoryStore()
    await store.set("a", b"1", ttl=10.0)
    await store.set("b", b"2")
    await store.history_append("h", [HistoryItem("v", 5.0), HistoryItem("v", 9.0)], max_len=5)
    await store.history_append("gone", [HistoryItem("v", 1.0)], max_len=5, ttl=10.0)
    for _ in range(2):
        keys = ["a", "b", "missing"]
        assert store.get_many_now(keys) == await store.get_many(keys)
        for key, since in [("h", 0.0), ("h", 6.0), ("gone", 0.0), ("none", 0.0)]:
            assert store.history_now(key, since=since) == await store.history(key, since=since)
        clock.at += 20.0  # "a" and "gone" expire
    assert store.get_many_now(["a", "b"]) == [None, b"2"] and store.history_now("gone") == []
