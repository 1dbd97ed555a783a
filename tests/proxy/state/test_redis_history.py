"""Redis histories as one string per user (issue 22): built-in event types as numbers, the
items of a list written by the version before read as they are and converted by the next
append (its expiry kept), and the bound kept whatever the items hold."""

from __future__ import annotations

from collections.abc import AsyncIterator

import msgspec
import pytest
import redis.asyncio as aioredis

from slotwise.proxy.state import HistoryItem, LogRecord, Store, open_store, subject_key
from slotwise.proxy.state.redis import EVENT_NAMES
from tests.support.servers import RedisServer

KEY = subject_key("user-7", "history")
OLD = msgspec.msgpack.Encoder()  # the item as the version before wrote it: the event by name


@pytest.fixture
async def redis_store(redis: RedisServer) -> AsyncIterator[tuple[Store, aioredis.Redis]]:
    raw = aioredis.Redis(port=redis.port)
    await raw.flushall()
    async with open_store(redis.url) as store:
        yield store, raw
    await raw.aclose()


def test_the_event_numbers_are_frozen() -> None:
    # stored items name these by their index: append only
    assert EVENT_NAMES[:12] == (
        "impression", "click", "conversion", "page_view", "product_view", "add_to_cart",
        "remove_from_cart", "search", "price_check", "price_drop", "purchase", "session_start",
    )  # fmt: skip


async def test_one_string_with_the_event_numbered(
    redis_store: tuple[Store, aioredis.Redis],
) -> None:
    store, raw = redis_store
    items = [
        HistoryItem("page_view", 1.5, b'{"url":"https://shop.example/"}'),
        HistoryItem("my_custom_event", 2.0),
        HistoryItem("add_to_cart", 3.25, b'{"product_id":"sku-1"}'),
    ]
    await store.history_append(KEY, items, max_len=10, ttl=60)
    assert await raw.type(KEY) == b"string"
    value = await raw.get(KEY)
    assert value is not None and value[:5] == b"\xdd\x00\x00\x00\x03"
    assert msgspec.msgpack.decode(value) == [
        [3, 1.5, b'{"url":"https://shop.example/"}'],
        ["my_custom_event", 2.0, b""],
        [5, 3.25, b'{"product_id":"sku-1"}'],
    ]
    assert await store.history(KEY) == items
    assert await store.histories([KEY, "none"], since=2.0) == [items[1:], []]
    assert 0 < await raw.pttl(KEY) <= 60_000


async def test_the_bound_keeps_the_newest_whatever_the_items_hold(
    redis_store: tuple[Store, aioredis.Redis],
) -> None:
    store, raw = redis_store
    # every scalar form an item may take: numbered and named events (short and long names),
    # integer and float times, data of 0, 200 and 1,000 bytes (bin 8 and bin 16)
    items = [
        HistoryItem(name, at, data)
        for name, at, data in [
            ("click", 1, b""),
            ("x" * 40, 2.5, b"a" * 200),
            ("y" * 300, 70_000, b"b" * 1000),
            ("purchase", 2**40, b"c"),
            ("zz", -3, b"d" * 5),
        ]
    ]
    for n in range(1, 6):
        await raw.delete(KEY)
        await store.history_append(KEY, items[:n], max_len=10)
        await store.history_append(KEY, items, max_len=3)
        assert [(i.event, i.at, i.data) for i in await store.history(KEY, since=-5)] == [
            (i.event, i.at, i.data) for i in items[2:]
        ]
        assert await raw.pttl(KEY) == -1  # no ttl given: none set


async def test_a_list_written_before_is_read_and_converted(
    redis_store: tuple[Store, aioredis.Redis],
) -> None:
    store, raw = redis_store
    old = [("page_view", 1.0, b'{"url":"/"}'), ("add_to_cart", 2.0, b'{"product_id":"s"}')]
    await raw.rpush(KEY, *(OLD.encode(item) for item in old))
    await raw.pexpire(KEY, 50_000)
    expected = [HistoryItem(*item) for item in old]
    assert await store.history(KEY) == expected
    assert await store.histories([KEY]) == [expected]
    # the next append (without a ttl) turns it into a string, keeping its items and expiry
    await store.history_append(KEY, [HistoryItem("purchase", 3.0, b"{}")], max_len=2)
    assert await raw.type(KEY) == b"string"
    assert await store.history(KEY) == [expected[1], HistoryItem("purchase", 3.0, b"{}")]
    assert 0 < await raw.pttl(KEY) <= 50_000
    # the same through the events' append (the log and the history in one script)
    other = subject_key("user-8", "history")
    await raw.rpush(other, OLD.encode(old[0]))
    await store.log_append_with_history(
        "events",
        [LogRecord(b"{}", subject="user-8", id="e1")],
        [(other, HistoryItem("click", 4.0))],
        dedup_ttl=60,
        max_len=5,
        ttl=60,
    )
    assert await store.history(other) == [expected[0], HistoryItem("click", 4.0)]
    assert await raw.type(other) == b"string"


async def test_an_event_number_of_a_later_version_is_left_out(
    redis_store: tuple[Store, aioredis.Redis],
) -> None:
    store, raw = redis_store
    await store.history_append(KEY, [HistoryItem("click", 1.0)], max_len=5)
    value = await raw.get(KEY)
    assert value is not None
    later = OLD.encode((len(EVENT_NAMES) + 3, 2.0, b""))
    await raw.set(KEY, b"\xdd\x00\x00\x00\x02" + value[5:] + later)
    assert await store.history(KEY) == [HistoryItem("click", 1.0)]
