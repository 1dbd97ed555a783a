"""Redis history items with the built-in event types as numbers (issue 22): items written
before (the event by name) read as they are, beside the new ones; a number this version does
not know (written by a later one) is left out, never guessed."""

from __future__ import annotations

import msgspec
import redis.asyncio as aioredis

from slotwise.proxy.state import HistoryItem, LogRecord, Store, subject_key
from slotwise.proxy.state.redis import EVENT_NAMES

KEY = subject_key("user-7", "history")
OLD = msgspec.msgpack.Encoder()  # the item as the version before wrote it: the event by name


def test_the_event_numbers_are_frozen() -> None:
    # stored items name these by their index: append only
    assert EVENT_NAMES[:12] == (
        "impression", "click", "conversion", "page_view", "product_view", "add_to_cart",
        "remove_from_cart", "search", "price_check", "price_drop", "purchase", "session_start",
    )  # fmt: skip


async def test_a_built_in_event_is_stored_as_its_number(
    redis_store: tuple[Store, aioredis.Redis],
) -> None:
    store, raw = redis_store
    items = [
        HistoryItem("page_view", 1.5),
        HistoryItem("my_custom_event", 2.0, b'{"a":1}'),
        HistoryItem("add_to_cart", 3.25, b'{"product_id":"sku-1"}'),
    ]
    await store.history_append(KEY, items[:1], max_len=10, ttl=60)
    await store.history_append_many([(KEY, items[1:2])], max_len=10, ttl=60)
    await store.log_append_with_history(
        "events",
        [LogRecord(b"{}", subject="user-7", id="e1")],
        [(KEY, items[2])],
        dedup_ttl=60,
        max_len=10,
        ttl=60,
    )
    assert [msgspec.msgpack.decode(v) for v in await raw.lrange(KEY, 0, -1)] == [
        [3, 1.5, b""],
        ["my_custom_event", 2.0, b'{"a":1}'],
        [5, 3.25, b'{"product_id":"sku-1"}'],
    ]
    assert await store.history(KEY) == items
    assert await store.histories([KEY, "none"], since=2.0) == [items[1:], []]


async def test_items_written_before_read_beside_new_ones(
    redis_store: tuple[Store, aioredis.Redis],
) -> None:
    store, raw = redis_store
    old = [("page_view", 1.0, b'{"url":"/"}'), ("add_to_cart", 2.0, b'{"product_id":"s"}')]
    await raw.rpush(KEY, *(OLD.encode(item) for item in old))
    await store.history_append(KEY, [HistoryItem("purchase", 3.0, b"{}")], max_len=2)
    expected = [HistoryItem(*old[1]), HistoryItem("purchase", 3.0, b"{}")]
    assert await store.history(KEY) == expected
    assert await store.histories([KEY]) == [expected]


async def test_an_event_number_of_a_later_version_is_left_out(
    redis_store: tuple[Store, aioredis.Redis],
) -> None:
    store, raw = redis_store
    await store.history_append(KEY, [HistoryItem("click", 1.0)], max_len=5)
    await raw.rpush(KEY, OLD.encode((len(EVENT_NAMES) + 3, 2.0, b"")))
    assert await store.history(KEY) == [HistoryItem("click", 1.0)]
