"""Redis log entries packed with the preset dictionary: smaller, read back as appended, and
entries written before packing (field ``d``) or damaged ones read as they are."""

from __future__ import annotations

import hashlib
import random
import uuid

import msgspec
import pytest
import redis.asyncio as aioredis

from slotwise.proxy.state import LogRecord, Store
from slotwise.proxy.state.packing import DICTIONARY_1, pack, pack_entry, unpack, unpack_tokens

EVENT = (
    b'{"received":1796504236.8,"consent":"personal","event":{"type":"product_view",'
    b'"properties":{"product_id":"sku-4","price":19.9,"currency":"EUR"},"id":"u0-e4",'
    b'"time":1796504236.8,"user_id":"user-0"}}'
)


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


# an event as the browser SDK sends it: a UUID id, the visitor's anonymous id, the browser's time
SDK_EVENT = (
    b'{"received":1796504359.8338346,"consent":"personal","event":{"type":"add_to_cart",'
    b'"properties":{"product_id":"sku-4998","price":19.9,"currency":"EUR"},'
    b'"id":"834c687a-3acb-4266-820b-a2c250b601fc","time":1796496599.99,"user_id":"user-19999",'
    b'"anonymous_id":"320094ea-d7a9-4ded-9749-1e2370c6a5b8"}}'
)

FROZEN_X = (
    "c3749589b1a9a59e85b1b185b18919916e43895034d761c49c89a5a505d80fe0d833b4d4b3c48c41a817fe37"
    "fb6454599d764a6be25e7428601be31f141f98003d6109d40ed48fe651434b2000aa458ba9ff460c535e5d5f"
    "e9fb76baa79c72c1b1a53b946a6b01"
)


def test_uuids_pack_as_tokens_and_come_back_exactly() -> None:
    field, packed = pack_entry(SDK_EVENT) or (b"", b"")
    plain = pack(SDK_EVENT)
    assert field == b"x" and plain is not None and len(packed) + 12 < len(plain)
    assert unpack_tokens(packed) == SDK_EVENT
    # a record without one packs as before
    audit = b'{"action":"profile","subject_sha256":"ab","at":1796504359.8,"actor":"admin"}'
    assert (pack_entry(audit) or (b"",))[0] == b"z"


@pytest.mark.parametrize(
    "text",
    [
        b'"834C687A-3ACB-4266-820B-A2C250B601FC"',  # not lowercase: left as text
        b'"x/834c687a-3acb-4266-820b-a2c250b601fc"',  # inside other text
        b'"834c687a-3acb-4266-820b-a2c250b601fc8"',  # longer
        b'["834c687a-3acb-4266-820b-a2c250b601fc","834c687a-3acb-4266-820b-a2c250b601fc"]',
        '"caf\u00e9 \u2603"'.encode(),
    ],
)
def test_what_is_tokenized_comes_back_byte_for_byte(text: bytes) -> None:
    data = (
        b'{"received":1796504236.8,"consent":"personal","v":'
        + text
        + b',"pad":"'
        + b"p" * 40
        + b'"}'
    )
    found = pack_entry(data)
    assert found is not None
    field, packed = found
    assert (unpack_tokens if field == b"x" else unpack)(packed) == data


def test_random_records_come_back_byte_for_byte() -> None:
    rng = random.Random(5)
    pieces = [
        lambda: str(uuid.UUID(int=rng.getrandbits(128))),
        lambda: str(uuid.UUID(int=rng.getrandbits(128))).upper(),
        lambda: 1_000_000_000 + rng.random() * 900_000_000,
        lambda: round(1_796_504_359 + rng.random(), rng.randint(0, 9)),
        lambda: rng.randint(-(2**63), 2**63),
        lambda: "".join(rng.choice('0123456789abcdef-.:,"{}') for _ in range(rng.randint(0, 40))),
        lambda: [1_796_504_359.5, str(uuid.UUID(int=rng.getrandbits(128)))],
    ]
    for _ in range(2000):
        record = {f"k{i}": rng.choice(pieces)() for i in range(rng.randint(1, 8))}
        data = msgspec.json.encode({"received": 1_796_504_359.8 + rng.random(), **record})
        found = pack_entry(data)
        if found is not None:
            field, packed = found
            assert (unpack_tokens if field == b"x" else unpack)(packed) == data, data


def test_bytes_json_never_holds_are_not_tokenized() -> None:
    data = (
        b'{"v":"\xff\xfe","id":"834c687a-3acb-4266-820b-a2c250b601fc","pad":"' + b"p" * 40 + b'"}'
    )
    found = pack_entry(data)
    assert found is not None and found[0] == b"z" and unpack(found[1]) == data


def test_the_token_layout_is_frozen() -> None:
    # an entry packed by this version, as Redis keeps it: later versions must read it
    packed = bytes.fromhex(FROZEN_X)
    assert unpack_tokens(packed) == SDK_EVENT


async def test_an_sdk_event_is_stored_with_tokens_and_reads_back(
    redis_store: tuple[Store, aioredis.Redis],
) -> None:
    store, raw = redis_store
    await raw.xadd("log:{events}", {"s": "user-0", "z": pack(EVENT) or b""})  # before tokens
    await store.log_append("events", [LogRecord(SDK_EVENT, subject="user-19999", id="e1")])
    (_, old), (_, new) = await raw.xrange("log:{events}")
    assert set(old) == {b"s", b"z"} and set(new) == {b"s", b"x"}
    entries = await store.log_read("events")
    assert [(e.data, e.subject) for e in entries] == [(EVENT, "user-0"), (SDK_EVENT, "user-19999")]
    # and through a consumer group, as the learner reads it
    group = await store.log_group_read("events", "g", "c1", count=10)
    assert [e.data for e in group] == [EVENT, SDK_EVENT]


async def test_erasure_treats_token_entries_as_any_other(
    redis_store: tuple[Store, aioredis.Redis],
) -> None:
    store, raw = redis_store
    await store.log_append(
        "events",
        [
            LogRecord(SDK_EVENT, subject="user-19999", id="e1"),
            LogRecord(EVENT, subject="user-0", id="e2"),
            LogRecord(SDK_EVENT.replace(b"user-19999", b"user-7"), subject="user-7", id="e3"),
        ],
    )
    assert [set(f) - {b"s"} for _, f in await raw.xrange("log:{events}")] == [
        {b"x"},
        {b"z"},
        {b"x"},
    ]
    assert await store.log_erase("events", "user-19999") == 1
    entries = await store.log_read("events")
    assert [e.subject for e in entries] == ["user-0", "user-7"]
    assert entries[1].data == SDK_EVENT.replace(b"user-19999", b"user-7")
