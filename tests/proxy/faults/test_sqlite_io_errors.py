"""The SQLite writer survives I/O errors (issue 21, item 1): writes are refused (503 upstream
of it) while the file cannot grow, nothing acknowledged is lost, and writes succeed again as
soon as it can, without a restart."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import sys
from pathlib import Path
from typing import Any

from slotwise.proxy.state import LogRecord, StoreUnavailable
from slotwise.proxy.state.sqlite import SQLiteStore

SCRIPT = Path(__file__).with_name("sqlite_io_errors.py")


async def test_writer_survives_real_write_errors(tmp_path: Path) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(SCRIPT), str(tmp_path / "state.db"), stdout=asyncio.subprocess.PIPE
    )
    out, _ = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode == 0
    figures = json.loads(out)
    assert figures["refused"] > 0, figures  # the limit did bite
    assert any("I/O" in e or "full" in e for e in figures["errors"]), figures
    assert figures["after_ok"] == 200, figures  # every write after the limit went through
    assert figures["recovered_after"] < 1.0, figures
    assert figures["stored"] == figures["acked"], figures  # 0 acknowledged writes lost


class _Failing(sqlite3.Connection):
    """A connection whose ROLLBACK fails while ``broken`` (an I/O error past the point of
    rolling back, as a vanished or read-only file gives)."""

    broken = False

    def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:  # type: ignore[override]
        if _Failing.broken and sql in ("COMMIT", "ROLLBACK"):
            raise sqlite3.OperationalError("disk I/O error (injected)")
        return super().execute(sql, *args)


async def test_writer_reopens_a_connection_it_cannot_roll_back(
    tmp_path: Path, monkeypatch: Any
) -> None:
    store = SQLiteStore(str(tmp_path / "state.db"))
    real_connect = sqlite3.connect

    def connect(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        return real_connect(*args, factory=_Failing, **kwargs)

    monkeypatch.setattr(sqlite3, "connect", connect)
    async with store:
        await store.log_append("log", [LogRecord(b"1", id="1")])
        _Failing.broken = True
        try:
            await store.log_append("log", [LogRecord(b"2", id="2")])
        except StoreUnavailable:
            pass
        else:
            raise AssertionError("the injected failure did not fail the write")
        _Failing.broken = False
        # the writer thread lives on, on a fresh connection
        await store.log_append("log", [LogRecord(b"3", id="3")])
        assert [e.data for e in await store.log_read("log")] == [b"1", b"3"]
