"""Redis dedup ids as 63-bit hashes in integer sets per time slice and shard (issue 22): an id
is remembered across slices for the whole window, the sets stay intsets, and ids stored by
the version before (one key each) still count for one window after the upgrade."""

from __future__ import annotations

import asyncio
import time

import redis.asyncio as aioredis

from slotwise.proxy.state import LogRecord, Store
from tests.support.timing import Window, within_ttl


async def _sets(raw: aioredis.Redis) -> list[bytes]:
    return sorted(k for k in await raw.keys("log:{events}:i:*"))


async def test_ids_are_hashes_in_intsets_that_expire(
    redis_store: tuple[Store, aioredis.Redis],
) -> None:
    store, raw = redis_store
    records = [LogRecord(f"r{i}".encode(), id=f"event-{i}") for i in range(300)]
    assert None not in await store.log_append("events", records, dedup_ttl=3600)
    sets = await _sets(raw)
    assert sets and len(sets) <= 300
    assert sum([await raw.scard(k) for k in sets]) == 300
    for key in sets:
        assert await raw.object("encoding", key) == b"intset"
        # expires once its slice's last id has been remembered for the window (3,600 s), at
        # most a slice (as long as the window) later
        assert 3_600_000 <= await raw.pttl(key) <= 7_200_000
    # no key per id is left, the legacy format
    assert await raw.keys("log:{events}:d:*") == []
    again = await store.log_append("events", records[:5], dedup_ttl=3600)
    assert again == [None] * 5


async def test_an_id_is_remembered_across_slices_for_the_window(
    redis_store: tuple[Store, aioredis.Redis],
) -> None:
    store, _ = redis_store

    async def body(window: Window) -> None:
        # a window of 0.4 s: slices of 0.4 s; an id is looked up in its slice and the one before
        log, ttl = window.key("events"), window.ttl
        for record_id in ("id-1", "id-2", "id-3"):
            record = [LogRecord(b"a", id=record_id)]
            sent = time.monotonic()
            assert await store.log_append(log, record, dedup_ttl=ttl) != [None]
            stored = time.monotonic()
            await asyncio.sleep(ttl / 2)  # into the next slice for at least one of the three
            again = await store.log_append(log, record, dedup_ttl=ttl)
            window.open(since=sent)
            assert again == [None]
        # forgotten two slices after the last first append at the latest
        await asyncio.sleep(max(0.0, stored + 2.1 * ttl - time.monotonic()))
        assert await store.log_append(log, [LogRecord(b"a", id="id-3")], dedup_ttl=ttl) != [None]
        assert await store.log_length(log) == 4

    await within_ttl(body, ttl=0.4)


async def test_ids_stored_by_the_version_before_still_count_for_one_window(
    redis_store: tuple[Store, aioredis.Redis],
) -> None:
    store, raw = redis_store
    # the version before kept one key per id, with the window as its expiry
    await raw.set("log:{events}:d:old-1", "1", px=60_000)
    await raw.set("log:{events}:d:old-2", "1", px=60_000)
    first = await store.log_append(
        "events", [LogRecord(b"x", id="old-1"), LogRecord(b"y", id="new-1")], dedup_ttl=60
    )
    assert first[0] is None and first[1] is not None
    # once a window has passed since this version first appended, the old keys are not
    # looked up (they have expired by then): here the marker says the window is over
    await raw.set("log:{events}:i", 0)
    assert await store.log_append("events", [LogRecord(b"y", id="old-2")], dedup_ttl=60) != [None]
