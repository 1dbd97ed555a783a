"""SQLite start-up: refuse another application's file untouched, name path problems, and say
truthfully what a write that timed out may still do."""

from __future__ import annotations

import asyncio
import gc
import os
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest

from slotwise.proxy.state import (
    LogRecord,
    StoreConfigError,
    StoreUnavailable,
    StoreWriteUncertain,
    open_store,
)
from slotwise.proxy.state.sqlite import _SCHEMA, SQLiteStore


def _database(path: Path, *statements: str) -> bytes:
    with sqlite3.connect(path) as conn:
        for statement in statements:
            conn.execute(statement)
    conn.close()
    return path.read_bytes()


@pytest.mark.parametrize(
    ("statements", "listed"),
    [
        (["CREATE TABLE log(id INTEGER PRIMARY KEY, msg TEXT)", "INSERT INTO log VALUES(1, 'hi')"],
         "log(id, msg)"),
        (["CREATE TABLE kv(k, v)"], "kv(k, v)"),
        (["CREATE TABLE kv(key TEXT PRIMARY KEY, value BLOB NOT NULL, expires REAL)",
          "CREATE TABLE users(id, name)"], "users(id, name)"),
        (["CREATE VIEW v AS SELECT 1 AS one"], "v(one)"),
    ],
)  # fmt: skip
async def test_another_applications_database_is_refused_untouched(
    tmp_path: Path, statements: list[str], listed: str
) -> None:
    path = tmp_path / "app.db"
    before = _database(path, *statements)
    store = open_store(f"sqlite://{path}")
    with pytest.raises(StoreConfigError, match="is not a slotwise state database") as info:
        await store.start()
    message = str(info.value)
    assert str(path) in message and "(tables: " in message and listed in message
    assert "point the URL at a new file" in message
    assert path.read_bytes() == before  # not switched to WAL, no tables of ours added
    assert not (tmp_path / "app.db-wal").exists()


async def test_a_file_that_is_not_a_database_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "notes.db"
    path.write_bytes(b"not a database " * 100)
    with pytest.raises(StoreConfigError, match="is not a slotwise state database"):
        await open_store(f"sqlite://{path}").start()
    assert path.read_bytes() == b"not a database " * 100


async def test_empty_partial_and_own_databases_open(tmp_path: Path) -> None:
    empty = tmp_path / "empty.db"
    empty.touch()
    partial = tmp_path / "partial.db"  # a first start interrupted after some CREATE TABLEs
    _database(partial, _SCHEMA.split(";")[0])
    for path in (empty, partial, empty):  # the last one: reopening our own database
        async with open_store(f"sqlite://{path}") as store:
            await store.log_append("events", [LogRecord(b"x")])


async def test_a_directory_is_named_as_the_problem(tmp_path: Path) -> None:
    with pytest.raises(StoreConfigError, match=f"sqlite path {tmp_path} is a directory"):
        await open_store(f"sqlite://{tmp_path}").start()


async def test_an_unwritable_directory_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # root ignores permissions, so the test makes SQLite fail and the directory look read-only
    path = tmp_path / "state.db"
    monkeypatch.setattr(os, "access", lambda p, mode: Path(p) != tmp_path)

    def refuse(self: SQLiteStore) -> sqlite3.Connection:
        raise sqlite3.OperationalError("unable to open database file")

    monkeypatch.setattr(SQLiteStore, "_connect", refuse)
    with pytest.raises(StoreUnavailable) as info:
        await open_store(f"sqlite://{path}").start()
    message = str(info.value)
    assert f"cannot open the state database {path}" in message
    assert f"its directory {tmp_path} is not writable" in message
    assert "fix the permissions or choose another path" in message


async def test_the_tilde_creates_no_directory_named_tilde(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home, cwd = tmp_path / "home", tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(cwd)
    async with open_store("sqlite://~/state/state.db") as store:
        await store.set("k", b"v")
    assert (home / "state" / "state.db").exists()
    assert list(cwd.iterdir()) == []


class _ShortBusyStore(SQLiteStore):
    """Gives up on a locked database after 0.3 s instead of 5 s, to keep the test short."""

    def _connect(self) -> sqlite3.Connection:
        conn = super()._connect()
        conn.execute("PRAGMA busy_timeout=300")
        return conn


def _hold_lock(path: Path, seconds: float) -> None:
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")  # another process writing: our writer waits for the lock

    def release() -> None:
        other.execute("COMMIT")
        other.close()

    threading.Timer(seconds, release).start()


async def test_a_write_that_times_out_may_still_commit_and_says_so(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    # steady: generous timeouts (2 s reads, 5 s writes) for the checks and the resend
    async with (
        SQLiteStore(str(path), write_timeout=0.2) as store,
        SQLiteStore(str(path), timeout=2) as steady,
    ):
        # shorter than the writer's 5 s busy timeout: it commits later; and 0.8 s past
        # write_timeout, so that a stalled machine does not see it commit in time
        _hold_lock(path, 1.0)
        with pytest.raises(StoreWriteUncertain, match="may still complete") as info:
            await store.log_append("events", [LogRecord(b"x", id="e1")], dedup_ttl=60)
        assert "record ids deduplicate" in str(info.value) and str(path) in str(info.value)
        deadline = asyncio.get_running_loop().time() + 10
        while not (length := await steady.log_length("events")):
            assert asyncio.get_running_loop().time() < deadline, "the write never committed"
            await asyncio.sleep(0.05)
        assert length == 1  # it did complete
        again = await steady.log_append("events", [LogRecord(b"x", id="e1")], dedup_ttl=60)
        assert again == [None]


async def test_an_abandoned_write_that_fails_later_logs_nothing(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    reported: list[dict[str, Any]] = []
    asyncio.get_running_loop().set_exception_handler(lambda _loop, ctx: reported.append(ctx))
    async with _ShortBusyStore(str(path), write_timeout=0.1) as store:
        # far longer than the busy timeout (even if the writer starts late on a loaded machine):
        # the abandoned write fails
        _hold_lock(path, 1.5)
        with pytest.raises(StoreWriteUncertain):
            await store.log_append("events", [LogRecord(b"x", id="e1")], dedup_ttl=60)
        await asyncio.sleep(1.7)
        gc.collect()  # "exception was never retrieved" is reported when the future is freed
        await asyncio.sleep(0)
        assert await store.log_length("events") == 0
    assert [ctx["message"] for ctx in reported] == []
