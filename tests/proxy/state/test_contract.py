"""The Store contract: every backend behaves the same (see slotwise.proxy.state)."""

from __future__ import annotations

import asyncio
import time

import pytest

from slotwise.proxy.state import HistoryItem, LogRecord, Store, StoredHistory, subject_key
from slotwise.proxy.state.base import now
from tests.support.timing import Window, within_ttl

HOSTILE = ["a*b", "{tag}", "50%_off", "x:y", "ü\u202edrow", "[set]?", "back\\slash", "' OR 1=1 --"]


async def test_values_roundtrip_binary(store: Store) -> None:
    assert await store.get("missing") is None
    blob = bytes(range(256))
    await store.set("k", blob)
    assert await store.get("k") == blob
    await store.set("k", b"second")
    assert await store.get("k") == b"second"
    assert await store.get_many(["k", "missing", "k"]) == [b"second", None, b"second"]
    assert await store.get_many([]) == []


async def test_values_expire(store: Store) -> None:
    async def body(window: Window) -> None:
        short, long = window.key("short"), window.key("long")
        await store.set(short, b"1", ttl=window.ttl)
        await store.set(long, b"1", ttl=60)
        got = await store.get(short)
        window.open()
        assert got == b"1"
        await window.passed()
        assert await store.get(short) is None
        assert await store.get(long) == b"1"

    await within_ttl(body)


async def test_set_if_absent(store: Store) -> None:
    async def body(window: Window) -> None:
        once = window.key("once")
        assert await store.set_if_absent(once, b"a", ttl=window.ttl)
        again = await store.set_if_absent(once, b"b")
        got = await store.get(once)
        window.open()
        assert (again, got) == (False, b"a")
        await window.passed()
        assert await store.set_if_absent(once, b"c")
        assert await store.get(once) == b"c"

    await within_ttl(body)


async def test_delete_counts_every_kind(store: Store) -> None:
    await store.set("v", b"1")
    await store.set_add("s", b"m")
    await store.history_append("h", [HistoryItem("click", 1.0)], max_len=5)
    await store.incr("c")
    assert await store.delete("v", "s", "h", "c", "nothing") == 4
    assert await store.get("v") is None
    assert await store.set_members("s") == frozenset()
    assert await store.history("h") == []
    assert await store.counter("c") == 0


async def test_counters(store: Store) -> None:
    assert await store.counter("hits") == 0
    assert await store.incr("hits") == 1
    assert await store.incr("hits", 5) == 6
    assert await store.incr("hits", -2) == 4
    assert await store.counter("hits") == 4


async def test_counter_ttl_is_a_fixed_window(store: Store) -> None:
    async def body(window: Window) -> None:
        key = window.key("window")
        assert await store.incr(key, ttl=window.ttl) == 1
        first = time.monotonic()  # the window closes by first + ttl
        await asyncio.sleep(0.4 * window.ttl)
        second_sent = time.monotonic()  # were the window extended, not before this + ttl
        second = await store.incr(key, ttl=window.ttl)
        window.open()
        assert second == 2
        await asyncio.sleep(max(0.0, first + 1.2 * window.ttl - time.monotonic()))
        left = await store.counter(key)
        window.open(since=second_sent)
        assert left == 0  # the second increment did not extend the window
        assert await store.incr(key, ttl=window.ttl) == 1

    await within_ttl(body, ttl=0.25)


async def test_concurrent_increments_are_not_lost(store: Store) -> None:
    await asyncio.gather(*(store.incr("race") for _ in range(50)))
    assert await store.counter("race") == 50


async def test_sets(store: Store) -> None:
    assert await store.set_add("s", b"a", b"b") == 2
    assert await store.set_add("s", b"b", b"c") == 1
    assert await store.set_members("s") == {b"a", b"b", b"c"}
    assert await store.set_contains("s", b"a")
    assert not await store.set_contains("s", b"z")
    assert await store.set_remove("s", b"a", b"z") == 1
    assert await store.set_members("s") == {b"b", b"c"}
    assert await store.set_members("none") == frozenset()


async def test_set_ttl(store: Store) -> None:
    await store.set_add("s", b"a", ttl=0.15)
    await asyncio.sleep(0.3)
    assert not await store.set_contains("s", b"a")
    assert await store.set_add("s", b"b") == 1
    assert await store.set_members("s") == {b"b"}


async def test_history_is_bounded_and_ordered(store: Store) -> None:
    key = subject_key("u1", "history")
    await store.history_append(key, [HistoryItem("view", float(t)) for t in range(5)], max_len=3)
    await store.history_append(key, [HistoryItem("cart", 10.0, b"sku-1")], max_len=3)
    items = await store.history(key)
    assert [(i.event, i.at) for i in items] == [("view", 3.0), ("view", 4.0), ("cart", 10.0)]
    assert items[-1].data == b"sku-1"
    assert [i.at for i in await store.history(key, since=4.0)] == [4.0, 10.0]
    history = StoredHistory(items)
    assert history.count("view", since=3.5) == 1
    assert history.last("cart") == 10.0
    assert history.last("purchase") is None


async def test_history_ttl(store: Store) -> None:
    await store.history_append("h", [HistoryItem("view", 1.0)], max_len=10, ttl=0.15)
    await asyncio.sleep(0.3)
    assert await store.history("h") == []


async def test_histories_in_one_call(store: Store) -> None:
    """The batch forms behave as the single-key calls, key by key (one round trip or not)."""
    a, b, c = (subject_key(u, "history") for u in ("u1", "{u2}", "u3"))
    await store.history_append(a, [HistoryItem("view", 1.0)], max_len=3)
    await store.history_append(c, [HistoryItem("old", 1.0)], max_len=3, ttl=0.15)
    await asyncio.sleep(0.3)  # c has expired: appending starts it afresh
    await store.history_append_many(
        [
            (a, [HistoryItem("view", float(t)) for t in range(2, 5)]),
            (b, [HistoryItem("cart", 7.0, b"sku-1")]),
            (c, [HistoryItem("new", 8.0)]),
        ],
        max_len=3,
        ttl=60,
    )
    got = await store.histories([a, "missing", b, c, a], since=3.0)
    assert [[(i.event, i.at) for i in h] for h in got] == [
        [("view", 3.0), ("view", 4.0)],
        [],
        [("cart", 7.0)],
        [("new", 8.0)],
        [("view", 3.0), ("view", 4.0)],
    ]
    assert got[2][0].data == b"sku-1"
    assert [i.at for i in await store.history(a)] == [2.0, 3.0, 4.0]
    assert await store.histories([]) == []
    await store.history_append_many([], max_len=3)
    await store.history_append_many([(a, [])], max_len=3)  # nothing to append: unchanged
    assert len(await store.history(a)) == 3


async def test_histories_ttl(store: Store) -> None:
    await store.history_append_many([("h1", [HistoryItem("v", 1.0)])], max_len=5, ttl=0.15)
    await store.history_append_many([("h2", [HistoryItem("v", 1.0)])], max_len=5, ttl=60)
    await asyncio.sleep(0.3)
    assert await store.histories(["h1", "h2"]) == [[], [HistoryItem("v", 1.0)]]


async def test_set_many(store: Store) -> None:
    async def body(window: Window) -> None:
        keys = [window.key(k) for k in ("k1", "{k2}", "k3", "k4")]
        await store.set(keys[0], b"old")
        await store.set_many(
            [(keys[0], b"one"), (keys[1], bytes(range(256))), (keys[2], b"3")], ttl=window.ttl
        )
        await store.set_many([(keys[3], b"4")])
        await store.set_many([])
        got = await store.get_many(keys)
        window.open()
        assert got == [b"one", bytes(range(256)), b"3", b"4"]
        await window.passed()
        assert await store.get_many(keys) == [None, None, None, b"4"]

    await within_ttl(body)


async def test_history_pipeline_survives_a_script_flush(store: Store) -> None:
    """Redis forgets its scripts on a restart (or SCRIPT FLUSH): the batch loads them again."""
    await store.history_append_many([("h", [HistoryItem("v", 1.0)])], max_len=5)
    client = getattr(store, "_slow", None)
    if store.scheme == "redis" and client is not None:
        await client.script_flush()
    await store.history_append_many([("h", [HistoryItem("v", 2.0)])], max_len=5)
    assert [i.at for i in await store.history("h")] == [1.0, 2.0]


async def test_log_append_and_read_from_a_position(store: Store) -> None:
    records = [LogRecord(f"e{i}".encode(), subject="u1" if i % 2 else None) for i in range(5)]
    positions = await store.log_append("events", records)
    assert all(p is not None for p in positions)
    entries = await store.log_read("events")
    assert [e.data for e in entries] == [b"e0", b"e1", b"e2", b"e3", b"e4"]
    assert [e.position for e in entries] == positions
    assert [e.subject for e in entries] == [None, "u1", None, "u1", None]
    rest = await store.log_read("events", after=entries[1].position, count=2)
    assert [e.data for e in rest] == [b"e2", b"e3"]
    assert await store.log_read("events", after=entries[-1].position) == []
    assert await store.log_length("events") == 5
    assert await store.log_read("other") == []
    assert await store.log_length("other") == 0


# records as the logs hold them: JSON events and audit records (which the Redis store packs),
# binary decision records, a "{" that is no JSON, and short ones
REAL_RECORDS = [
    b'{"received":1796504236.8,"consent":"personal","event":{"type":"page_view",'
    b'"properties":{"url":"https://shop.example/c/1"},"id":"u1-e1","user_id":"user-1"}}',
    b'{"action":"erase","subject_sha256":"' + b"ab" * 32 + b'","at":1.0,"actor":"admin"}',
    bytes([0xDC, 0x00, 0x13]) + bytes(range(256)),
    b"{" + bytes(range(256)) * 2,
    b'{"a":1}',
    b"",
    b"{" * 300,
]


async def test_log_records_read_back_as_appended(store: Store) -> None:
    records = [LogRecord(d, subject="u1" if i % 2 else None) for i, d in enumerate(REAL_RECORDS)]
    positions = await store.log_append("events", records)
    entries = await store.log_read("events", count=100)
    assert [e.data for e in entries] == REAL_RECORDS
    assert [e.position for e in entries] == positions
    group = await store.log_group_read("events", "g", "c1", count=100)
    assert [e.data for e in group] == REAL_RECORDS
    pending = await store.log_group_read("events", "g", "c1", count=100, pending=True)
    assert [e.data for e in pending] == REAL_RECORDS
    assert await store.log_erase("events", "u1") == 3
    assert [e.data for e in await store.log_read("events")] == REAL_RECORDS[::2]


async def test_log_dedup_by_record_id(store: Store) -> None:
    first = await store.log_append(
        "events",
        [LogRecord(b"a", id="id-1"), LogRecord(b"a-again", id="id-1"), LogRecord(b"b")],
        dedup_ttl=60,
    )
    assert first[0] is not None and first[1] is None and first[2] is not None
    second = await store.log_append(
        "events", [LogRecord(b"a-retry", id="id-1"), LogRecord(b"c", id="id-2")], dedup_ttl=60
    )
    assert second[0] is None and second[1] is not None
    assert [e.data for e in await store.log_read("events")] == [b"a", b"b", b"c"]
    # dedup is per log
    assert (await store.log_append("decisions", [LogRecord(b"x", id="id-1")], dedup_ttl=60))[0]


async def test_log_append_with_history(store: Store) -> None:
    """The log and the stored records' history items in one step; duplicates add nothing to
    the history (across calls and within one)."""
    a, b = subject_key("u1", "history"), subject_key("{u2}", "history")
    await store.history_append(a, [HistoryItem("old", 1.0)], max_len=3)
    records = [
        LogRecord(b"e1", subject="u1", id="id-1"),
        LogRecord(b"e1-again", subject="u1", id="id-1"),
        LogRecord(b"e2", subject="{u2}", id="id-2"),
        LogRecord(b"anonymous"),
        LogRecord(b"e3", subject="u1", id="id-3"),
        LogRecord(b"e4", subject="u1", id="id-4"),
    ]
    history = [
        (a, HistoryItem("view", 2.0, b"p1")),
        (a, HistoryItem("view", 2.5)),
        (b, HistoryItem("cart", 3.0)),
        None,
        (a, HistoryItem("view", 4.0)),
        (a, HistoryItem("buy", 5.0)),
    ]
    positions = await store.log_append_with_history(
        "events", records, history, dedup_ttl=60, max_len=3, ttl=60
    )
    assert [p is not None for p in positions] == [True, False, True, True, True, True]
    assert [e.data for e in await store.log_read("events")] == [b"e1", b"e2", b"anonymous",
        b"e3", b"e4"]  # fmt: skip
    # bounded to the newest 3, in append order; the duplicate's item is not there
    assert [(i.event, i.at) for i in await store.history(a)] == [
        ("view", 2.0), ("view", 4.0), ("buy", 5.0),
    ]  # fmt: skip
    assert (await store.history(a))[0].data == b"p1"
    assert await store.history(b) == [HistoryItem("cart", 3.0)]
    again = await store.log_append_with_history(
        "events", records[:1], history[:1], dedup_ttl=60, max_len=3
    )
    assert again == [None]
    assert len(await store.history(a)) == 3
    assert await store.log_append_with_history("events", [], [], max_len=3) == []
    with pytest.raises(ValueError, match="one history entry"):
        await store.log_append_with_history("events", records, [], max_len=3)


async def test_log_append_with_history_ttl(store: Store) -> None:
    await store.log_append_with_history(
        "events", [LogRecord(b"e", subject="u")], [("h", HistoryItem("v", 1.0))],
        max_len=5, ttl=1.0,
    )  # fmt: skip
    assert await store.history("h") == [HistoryItem("v", 1.0)]
    await asyncio.sleep(1.2)
    assert await store.history("h") == []
    assert await store.log_length("events") == 1  # the log keeps it: the ttl is the history's


async def test_log_append_and_set(store: Store) -> None:
    """The log, then the values, then the sets' members: one step where the backend can."""
    await store.set("{r1}", b"old")
    records = [LogRecord(b"n1", subject="u1", id="k1"), LogRecord(b"n2", subject="u2", id="k2")]
    positions = await store.log_append_and_set(
        "outbox",
        records,
        dedup_ttl=60,
        values=[("{r1}", b"record-1"), ("r2", bytes(range(256)))],
        ttl=1.5,  # long enough for the reads below on a loaded machine
        members=[("names", [b"cart"]), ("{audience}", [b"u1", b"u2"]), ("empty", [])],
    )
    assert all(p is not None for p in positions)
    assert [e.data for e in await store.log_read("outbox")] == [b"n1", b"n2"]
    assert await store.get_many(["{r1}", "r2"]) == [b"record-1", bytes(range(256))]
    assert await store.set_members("{audience}") == frozenset({b"u1", b"u2"})
    assert await store.set_members("names") == frozenset({b"cart"})
    assert await store.set_members("empty") == frozenset()
    again = await store.log_append_and_set(
        "outbox", records[:1], dedup_ttl=60, values=[("r3", b"3")], members=[("names", [b"x"])]
    )
    assert again == [None]  # a duplicate is not appended; the values are still written
    assert await store.get("r3") == b"3"
    assert await store.set_members("names") == frozenset({b"cart", b"x"})
    assert await store.log_append_and_set("outbox", [], values=[("r4", b"4")]) == []
    assert await store.get("r4") == b"4"
    await asyncio.sleep(1.7)
    assert await store.get_many(["{r1}", "r2", "r3", "r4"]) == [None, None, b"3", b"4"]
    assert await store.log_length("outbox") == 2


async def test_large_batches_keep_order_positions_and_dedup(store: Store) -> None:
    """Batches longer than a backend's statement or script pieces: every record in order, a
    position per stored record (increasing), duplicates (earlier and within) left out."""
    await store.log_append("events", [LogRecord(b"early", id="id-7")], dedup_ttl=60)
    records = [LogRecord(f"r{i}".encode(), subject=f"u{i % 9}", id=f"id-{i}") for i in range(150)]
    records.insert(100, LogRecord(b"repeat", id="id-3"))  # within the batch
    records.insert(120, LogRecord(b"no-id"))
    positions = await store.log_append("events", records, dedup_ttl=60)
    stored = [r.data for r, p in zip(records, positions, strict=True) if p is not None]
    assert stored == [r.data for r in records if r.data not in (b"r7", b"repeat")]
    assert [r.data for r, p in zip(records, positions, strict=True) if p is None] == [
        b"r7", b"repeat"
    ]  # fmt: skip
    read = await store.log_read("events", count=1000)
    assert [e.data for e in read] == [b"early", *stored]
    assert [e.position for e in read[1:]] == [p for p in positions if p is not None]
    assert [e.subject for e in read[1:3]] == ["u0", "u1"]
    values = [(f"k{i}", str(i).encode()) for i in range(130)]
    await store.set_many(values)
    assert await store.get_many([k for k, _ in values]) == [v for _, v in values]
    members = [str(i).encode() for i in range(70)]
    assert await store.set_add("big", *members, *members[:5]) == 70
    assert await store.set_members("big") == frozenset(members)


async def test_histories_and_values_in_one_read(store: Store) -> None:
    await store.history_append("h1", [HistoryItem("old", 1.0), HistoryItem("new", 9.0)], max_len=5)
    await store.set_many([("k1", b"1"), ("k3", b"3")])
    histories, values = await store.histories_and_values(["h1", "h2", "h1"], ["k1", "k2", "k3"])
    assert histories == [[HistoryItem("old", 1.0), HistoryItem("new", 9.0)], [],
        [HistoryItem("old", 1.0), HistoryItem("new", 9.0)]]  # fmt: skip
    assert values == [b"1", None, b"3"]
    since, _ = await store.histories_and_values(["h1"], [], since=5.0)
    assert since == [[HistoryItem("new", 9.0)]]
    assert await store.histories_and_values([], []) == ([], [])


async def test_log_dedup_window_expires(store: Store) -> None:
    await store.log_append("events", [LogRecord(b"a", id="id-1")], dedup_ttl=0.15)
    await asyncio.sleep(0.3)
    again = await store.log_append("events", [LogRecord(b"a", id="id-1")], dedup_ttl=0.15)
    assert again[0] is not None
    assert await store.log_length("events") == 2


async def test_concurrent_appends_keep_every_record(store: Store) -> None:
    batches = [[LogRecord(f"{b}-{i}".encode()) for i in range(10)] for b in range(30)]
    await asyncio.gather(*(store.log_append("events", batch) for batch in batches))
    entries = await store.log_read("events", count=1000)
    assert len(entries) == 300
    assert {e.data for e in entries} == {r.data for batch in batches for r in batch}
    positions = [e.position for e in entries]
    assert len(set(positions)) == 300


async def test_consumer_groups_deliver_once_and_redeliver_pending(store: Store) -> None:
    await store.log_append("events", [LogRecord(f"e{i}".encode()) for i in range(5)])
    first = await store.log_group_read("events", "rewards", "c1", count=3)
    assert [e.data for e in first] == [b"e0", b"e1", b"e2"]
    second = await store.log_group_read("events", "rewards", "c2", count=10)
    assert [e.data for e in second] == [b"e3", b"e4"]
    assert await store.log_group_read("events", "rewards", "c1") == []
    # another group starts from the beginning
    assert len(await store.log_group_read("events", "reports", "c1", count=10)) == 5
    assert await store.log_ack("events", "rewards", [first[0].position]) == 1
    assert await store.log_ack("events", "rewards", [first[0].position]) == 0
    pending = await store.log_group_read("events", "rewards", "c1", pending=True)
    assert [e.data for e in pending] == [b"e1", b"e2"]
    await store.log_append("events", [LogRecord(b"e5")])
    assert [e.data for e in await store.log_group_read("events", "rewards", "c1")] == [b"e5"]


async def test_log_trim_by_time(store: Store) -> None:
    await store.log_append("events", [LogRecord(b"old")])
    await asyncio.sleep(0.05)
    cut = now()
    await asyncio.sleep(0.05)
    await store.log_append("events", [LogRecord(b"new")])
    assert await store.log_trim("events", before=cut) == 1
    assert [e.data for e in await store.log_read("events")] == [b"new"]
    assert await store.log_trim("missing", before=cut) == 0


@pytest.mark.parametrize("subject", ["u1", *HOSTILE])
async def test_erasure_removes_only_that_subject(store: Store, subject: str) -> None:
    other = "u2"
    await store.set(subject_key(subject, "profile"), b"p")
    await store.set_add(subject_key(subject, "segments"), b"s")
    await store.history_append(subject_key(subject, "history"), [HistoryItem("v", 1)], max_len=5)
    await store.set(subject_key(other, "profile"), b"keep")
    await store.set("global", b"keep")
    await store.log_append(
        "events",
        [LogRecord(b"1", subject=subject), LogRecord(b"2", subject=other), LogRecord(b"3")],
    )
    assert await store.erase_subject(subject) == 3
    assert await store.erase_subject(subject) == 0  # idempotent
    assert await store.get(subject_key(subject, "profile")) is None
    assert await store.history(subject_key(subject, "history")) == []
    assert await store.get(subject_key(other, "profile")) == b"keep"
    assert await store.get("global") == b"keep"
    assert await store.log_erase("events", subject) == 1
    assert await store.log_erase("events", subject) == 0
    assert [e.data for e in await store.log_read("events")] == [b"2", b"3"]


async def test_hostile_keys_are_just_keys(store: Store) -> None:
    for index, key in enumerate(HOSTILE):
        await store.set(key, str(index).encode())
    for index, key in enumerate(HOSTILE):
        assert await store.get(key) == str(index).encode()


async def test_scores_add_up_and_rank(store: Store) -> None:
    assert await store.scores_top(["missing"], 5) == [[]]
    await store.scores_add("lb", {b"a": 1.0, b"b": 2.5}, max_len=10)
    await store.scores_add("lb", {b"a": 2.0, b"c": 0.5}, max_len=10)
    assert await store.scores_top(["lb"], 10) == [[(b"a", 3.0), (b"b", 2.5), (b"c", 0.5)]]
    assert await store.scores_top(["lb", "missing", "lb"], 1) == [[(b"a", 3.0)], [], [(b"a", 3.0)]]
    assert await store.scores_top([], 3) == []


async def test_scores_are_bounded_keeping_the_highest(store: Store) -> None:
    await store.scores_add("lb", {bytes([65 + i]): float(i) for i in range(8)}, max_len=3)
    assert await store.scores_top(["lb"], 10) == [[(b"H", 7.0), (b"G", 6.0), (b"F", 5.0)]]
    # a tie at the bound keeps the greater member, as Redis's ranks do
    await store.scores_add("tie", {b"x": 1.0, b"y": 1.0, b"z": 1.0}, max_len=2)
    assert await store.scores_top(["tie"], 5) == [[(b"z", 1.0), (b"y", 1.0)]]


async def test_concurrent_score_adds_are_not_lost(store: Store) -> None:
    await asyncio.gather(*(store.scores_add("race", {b"m": 1.0}, max_len=5) for _ in range(40)))
    assert await store.scores_top(["race"], 1) == [[(b"m", 40.0)]]


async def test_scores_expire_and_are_deleted_and_erased(store: Store) -> None:
    await store.scores_add("short", {b"m": 1.0}, max_len=5, ttl=0.15)
    await store.scores_add("kept", {b"m": 1.0}, max_len=5)
    await asyncio.sleep(0.3)
    assert await store.scores_top(["short", "kept"], 5) == [[], [(b"m", 1.0)]]
    assert await store.delete("kept", "short") == 1
    assert await store.scores_top(["kept"], 5) == [[]]
    mine = subject_key("someone", "affinity")
    await store.scores_add(mine, {b"shoes": 2.0}, max_len=5)
    assert await store.erase_subject("someone") == 1
    assert await store.scores_top([mine], 5) == [[]]
