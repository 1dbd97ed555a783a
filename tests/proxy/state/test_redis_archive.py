"""Redis's log archive (issue 22): old, acknowledged entries move to segment files and every
reader still sees one log, with the same positions, across both parts."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from slotwise.proxy.state import LogEntry, LogRecord, Store, StoreConfigError, open_store
from slotwise.proxy.state import archive as archive_module
from slotwise.proxy.state.archive import LogArchive
from slotwise.proxy.state.base import StoreUnavailable
from tests.support.servers import RedisCluster, RedisServer

STREAM = "log:{events}"


@pytest.fixture
async def archived(
    redis: RedisServer, tmp_path: Path
) -> AsyncIterator[tuple[Store, aioredis.Redis, Path]]:
    """A Redis store archiving to a fresh directory with no hot window, and a raw client."""
    raw = aioredis.Redis(port=redis.port)
    await raw.flushall()
    folder = tmp_path / "archive"
    async with open_store(f"{redis.url}?archive={folder}&archive_after=0") as store:
        yield store, raw, folder
    await raw.flushall()
    await raw.aclose()


def _records(first: int, count: int, subjects: int = 5) -> list[LogRecord]:
    return [
        LogRecord(f'{{"n":{n}}}'.encode(), f"user-{n % subjects}")
        for n in range(first, first + count)
    ]


async def _everything(store: Store, log: str = "events", page: int = 7) -> list[LogEntry]:
    out: list[LogEntry] = []
    after = "0"
    while batch := await store.log_read(log, after=after, count=page):
        out.extend(batch)
        after = batch[-1].position
    return out


async def test_a_pass_moves_the_log_out_of_redis_and_reads_are_unchanged(
    archived: tuple[Store, aioredis.Redis, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    store, raw, folder = archived
    monkeypatch.setattr(archive_module, "SEGMENT_ENTRIES", 10)  # several segments
    await store.log_append("events", _records(0, 45))
    before = await _everything(store)
    assert await store.log_archive("events") == 45
    assert await raw.xlen(STREAM) == 0
    assert len(list((folder / "events").glob("*.seg"))) == 5
    for page in (1, 3, 10, 100):
        assert await _everything(store, page=page) == before
    assert await store.log_length("events") == 45
    # newer entries land in Redis and one read crosses from the archive into them
    await store.log_append("events", _records(45, 10))
    crossing = await store.log_read("events", after=before[40].position, count=8)
    assert [e.data for e in crossing] == [f'{{"n":{n}}}'.encode() for n in range(41, 49)]
    assert await store.log_length("events") == 55
    assert await store.log_archive("events") == 10
    assert [e.data for e in await _everything(store)][-1] == b'{"n":54}'
    assert await store.log_archive("events") == 0  # nothing new: no empty segment


async def test_the_hot_window_stays_in_redis(redis: RedisServer, tmp_path: Path) -> None:
    raw = aioredis.Redis(port=redis.port)
    await raw.flushall()
    url = f"{redis.url}?archive={tmp_path}/a&archive_after=3600"
    async with open_store(url) as store:
        await store.log_append("events", _records(0, 5))
        assert await store.log_archive("events") == 0
        assert await raw.xlen(STREAM) == 5
    await raw.aclose()


async def test_entries_a_consumer_group_has_not_acknowledged_stay_in_redis(
    archived: tuple[Store, aioredis.Redis, Path],
) -> None:
    store, raw, _ = archived
    await store.log_append("events", _records(0, 10))
    delivered = await store.log_group_read("events", "learner", "w1", count=6)
    await store.log_ack("events", "learner", [e.position for e in delivered[:3]])
    assert await store.log_archive("events") == 3  # up to the first unacknowledged entry
    await store.log_ack("events", "learner", [e.position for e in delivered[3:]])
    assert await store.log_archive("events") == 3  # up to what the group has been given
    assert await raw.xlen(STREAM) == 4
    rest = await store.log_group_read("events", "learner", "w1", count=10)
    assert [e.data for e in rest] == [f'{{"n":{n}}}'.encode() for n in range(6, 10)]
    await store.log_ack("events", "learner", [e.position for e in rest])
    assert await store.log_archive("events") == 4
    assert len(await _everything(store)) == 10


async def test_erasure_reaches_both_parts(archived: tuple[Store, aioredis.Redis, Path]) -> None:
    store, _, folder = archived
    await store.log_append("events", _records(0, 20))
    await store.log_archive("events")
    await store.log_append("events", _records(20, 10))
    assert await store.log_erase("events", "user-3") == 6
    left = await _everything(store)
    assert len(left) == 24 and all(e.subject != "user-3" for e in left)
    assert await store.log_length("events") == 24
    # the segment itself no longer holds the erased entries' bytes
    for segment in (folder / "events").glob("*.seg"):
        rows = archive_module._load(str(segment))
        assert all(row[2] != "user-3" for row in rows)
    # a segment whose entries are all erased goes
    await store.log_erase("events", "only")
    await store.log_append("events", [LogRecord(b"x", "only")])
    await store.log_archive("events")
    assert await store.log_erase("events", "only") == 1
    assert await store.log_length("events") == 24


async def test_retention_trims_the_archive(
    archived: tuple[Store, aioredis.Redis, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    store, _, _ = archived
    monkeypatch.setattr(archive_module, "SEGMENT_ENTRIES", 4)
    await store.log_append("events", _records(0, 10))
    await asyncio.sleep(0.01)
    cut = time.time()
    await asyncio.sleep(0.01)
    await store.log_append("events", _records(10, 6))
    await store.log_archive("events")
    assert await store.log_trim("events", before=cut) == 10
    assert [e.data for e in await _everything(store)] == [
        f'{{"n":{n}}}'.encode() for n in range(10, 16)
    ]
    assert await store.log_length("events") == 6


async def test_a_pass_stopped_after_writing_a_segment_leaves_no_duplicate(
    archived: tuple[Store, aioredis.Redis, Path],
) -> None:
    store, raw, folder = archived
    await store.log_append("events", _records(0, 8))
    entries = await _everything(store)
    # the segment written, the stream not yet trimmed (the process was killed between the two)
    LogArchive(str(folder)).append(
        "events", [(*archive_module.parse_id(e.position), e.subject, e.data) for e in entries[:5]]
    )
    assert await _everything(store) == entries
    assert await store.log_length("events") == 8
    assert await store.log_archive("events") == 3
    assert await raw.xlen(STREAM) == 0
    assert await _everything(store) == entries


async def test_a_busy_lock_skips_the_pass_and_erasure_waits_for_it(
    archived: tuple[Store, aioredis.Redis, Path],
) -> None:
    store, raw, folder = archived
    await store.log_append("events", _records(0, 5))
    other = LogArchive(str(folder))  # another process's writer, as far as flock can tell
    fd = other.acquire("events", 0)
    assert fd is not None
    assert await store.log_archive("events") == 0
    assert await raw.xlen(STREAM) == 5
    threading.Timer(0.3, other.release, (fd,)).start()
    started = time.monotonic()
    assert await store.log_erase("events", "user-1") == 1
    assert time.monotonic() - started >= 0.25


async def test_a_damaged_segment_is_a_clear_error(
    archived: tuple[Store, aioredis.Redis, Path],
) -> None:
    store, _, folder = archived
    await store.log_append("events", _records(0, 5))
    await store.log_archive("events")
    (segment,) = (folder / "events").glob("*.seg")
    segment.write_bytes(segment.read_bytes()[:30])
    with pytest.raises(StoreUnavailable, match="does not decode"):
        await store.log_read("events")


async def test_logs_never_archived_read_from_redis_alone(
    archived: tuple[Store, aioredis.Redis, Path],
) -> None:
    store, _, folder = archived
    await store.log_append("catalogue", _records(0, 3))
    assert len(await store.log_read("catalogue")) == 3
    assert not (folder / "catalogue").exists()


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("archive=relative/dir", "archive must be an absolute directory path"),
        ("archive=/tmp/a&archive_after=-1", "archive_after must be seconds from 0 to"),
        ("archive=/tmp/a&archive_after=9999999999", "archive_after must be seconds from 0 to"),
        ("archive_after=60", "archive_after needs archive=DIRECTORY"),
    ],
)
def test_bad_archive_options_are_refused(query: str, message: str) -> None:
    with pytest.raises(StoreConfigError, match=message):
        open_store(f"redis://127.0.0.1:6379?{query}")


def test_the_archive_option_is_redis_only(tmp_path: Path) -> None:
    with pytest.raises(StoreConfigError, match="archive"):
        open_store(f"sqlite://{tmp_path}/s.db?archive=/tmp/a")


async def test_an_archive_directory_that_cannot_be_written_is_refused_at_start(
    redis: RedisServer, tmp_path: Path
) -> None:
    blocker = tmp_path / "file"
    blocker.write_bytes(b"")
    store = open_store(f"{redis.url}?archive={blocker}/archive")
    with pytest.raises(StoreConfigError, match="cannot write there"):
        await store.start()
    await store.close()
    assert not os.path.exists(blocker / "archive")


async def test_the_archive_works_on_redis_cluster(
    redis_cluster: RedisCluster, tmp_path: Path
) -> None:
    url = f"{redis_cluster.url}?archive={tmp_path}/a&archive_after=0"
    async with open_store(url) as store:
        log = f"events-{time.time_ns()}"  # the cluster is shared by the session: a fresh log
        await store.log_append(log, _records(0, 12))
        await store.log_group_read(log, "g", "c", count=12)
        assert await store.log_archive(log) == 0  # delivered, not yet acknowledged
        await store.log_ack(log, "g", [e.position for e in await store.log_read(log, count=12)])
        assert await store.log_archive(log) == 12
        assert await store.log_erase(log, "user-0") == 3
        assert [e.data for e in await _everything(store, log)] == [
            f'{{"n":{n}}}'.encode() for n in range(12) if n % 5
        ]
        assert await store.log_length(log) == 9


async def test_an_archive_file_that_cannot_be_read_is_the_stores_error(
    archived: tuple[Store, aioredis.Redis, Path],
) -> None:
    store, _, folder = archived
    await store.log_append("events", _records(0, 5))
    await store.log_archive("events")
    (folder / "events" / "9999999999999-0.seg").mkdir()  # not a file: reading it fails
    with pytest.raises(StoreUnavailable, match="log archive: Is a directory"):
        await store.log_read("events")


async def test_start_removes_what_a_killed_writer_left(redis: RedisServer, tmp_path: Path) -> None:
    events = tmp_path / "a" / "events"
    events.mkdir(parents=True)
    old, fresh = events / ".1-0.seg.123.tmp", events / ".2-0.seg.124.tmp"
    old.write_bytes(b"half")
    fresh.write_bytes(b"being written")
    os.utime(old, (time.time() - 7200, time.time() - 7200))
    async with open_store(f"{redis.url}?archive={tmp_path}/a"):
        assert not old.exists() and fresh.exists()


async def test_erasure_decodes_only_the_segments_whose_index_names_the_user(
    archived: tuple[Store, aioredis.Redis, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    store, _, _ = archived
    monkeypatch.setattr(archive_module, "SEGMENT_ENTRIES", 10)
    await store.log_append("events", _records(0, 30, subjects=30))  # one entry per user
    await store.log_archive("events")
    decoded: list[str] = []
    load = archive_module._load
    monkeypatch.setattr(archive_module, "_load", lambda path: decoded.append(path) or load(path))
    assert await store.log_erase("events", "user-14") == 1
    assert len(decoded) == 1  # of three segments
    assert await store.log_erase("events", "nobody-at-all") == 0
    assert len(decoded) == 1
    assert len(await _everything(store)) == 29
