"""Redis log entries packed with the preset dictionary: smaller, read back as appended, and
entries written before packing (field ``d``) or damaged ones read as they are."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from slotwise.proxy.state import LogRecord, Store, open_store
from slotwise.proxy.state.packing import DICTIONARY_1, pack, unpack
from tests.support.servers import RedisServer

EVENT = (
    b'{"received":1796504236.8,"consent":"personal","event":{"type":"product_view",'
    b'"properties":{"product_id":"sku-4","price":19.9,"currency":"EUR"},"id":"u0-e4",'
    b'"time":1796504236.8,"user_id":"user-0"}}'
)


@pytest.fixture
async def redis_store(redis: RedisServer) -> AsyncIterator[tuple[Store, aioredis.Redis]]:
    raw = aioredis.Redis(port=redis.port)
    await raw.flushall()
    async with open_store(redis.url) as store:
        yield store, raw
    await raw.aclose()


def test_the_dictionary_is_frozen() -> None:
    # entries packed with it are read with it: a new dictionary needs a new field name
    digest = hashlib.sha256(DICTIONARY_1).hexdigest()
    assert digest == "e806d3ff6cb8d23c2ec3db9ffb11af72ac985551fdf02be0dbf58d103e2fb57a", digest


def test_an_event_packs_to_a_third_and_unpacks() -> None:
    packed = pack(EVENT)
    assert packed is not None and len(packed) * 3 < len(EVENT)
    assert unpack(packed) == EVENT
    assert pack(b"\xdc\x00\x13" + EVENT) is None  # binary records stay as they are
    assert pack(b'{"a":1}') is None  # too short to gain


async def test_a_json_record_is_stored_packed(
    redis_store: tuple[Store, aioredis.Redis],
) -> None:
    store, raw = redis_store
    (position,) = await store.log_append("events", [LogRecord(EVENT, subject="user-0")])
    ((_, fields),) = await raw.xrange("log:{events}")
    assert set(fields) == {b"s", b"z"} and len(fields[b"z"]) * 3 < len(EVENT)
    (entry,) = await store.log_read("events")
    assert (entry.position, entry.data, entry.subject) == (position, EVENT, "user-0")


async def test_entries_written_before_packing_read_as_they_were(
    redis_store: tuple[Store, aioredis.Redis],
) -> None:
    store, raw = redis_store
    await raw.xadd("log:{events}", {"s": "user-0", "d": EVENT})  # as the store wrote them
    await store.log_append("events", [LogRecord(EVENT, subject="user-1")])
    entries = await store.log_read("events")
    assert [(e.data, e.subject) for e in entries] == [(EVENT, "user-0"), (EVENT, "user-1")]


async def test_a_damaged_packed_entry_is_handed_on_not_fatal(
    redis_store: tuple[Store, aioredis.Redis],
) -> None:
    store, raw = redis_store
    await raw.xadd("log:{events}", {"z": b"\xff\xfe not deflate"})
    await store.log_append("events", [LogRecord(EVENT)])
    entries = await store.log_read("events")
    # the reader's decoder then counts the first as a record it cannot read
    assert [e.data for e in entries] == [b"\xff\xfe not deflate", EVENT]
