"""``sqlite:///path/state.db``: the embedded durable default (SQLite in WAL mode).

Writes go through one writer thread with group commit (:mod:`.sqlite_writer`): a write returns
only after the transaction holding it is committed; with ``synchronous=full`` (the default) the
WAL is fsynced at every commit, so it survives ``kill -9`` and power loss. ``synchronous=normal``
survives ``kill -9`` but may lose the last commits on power loss. Reads use their own
connections (WAL readers never wait for the writer) on a small thread pool and are bounded by
``timeout`` (default 50 ms). Expired keys are invisible at once and purged when the writer is
idle. Why SQLite rather than a bespoke append-only file: see docs/state.md.

URL options: ``synchronous`` (full|normal), ``timeout`` (read timeout, seconds),
``write_timeout`` (seconds to wait for a commit, default 5).
"""

from __future__ import annotations

import asyncio
import copy
import functools
import os
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from pathlib import Path
from typing import Any, TypeVar

from slotwise.proxy.state.base import (
    HistoryItem,
    LogEntry,
    LogRecord,
    Store,
    StoreConfigError,
    StoreError,
    StoreUnavailable,
    StoreWriteUncertain,
    _history_appends,
    now,
    subject_prefix,
)
from slotwise.proxy.state.sqlite_writer import GroupCommitWriter

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS kv(
    key TEXT PRIMARY KEY, value BLOB NOT NULL, expires REAL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS sets(
    key TEXT NOT NULL, member BLOB NOT NULL, PRIMARY KEY(key, member)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS hist(
    id INTEGER PRIMARY KEY, key TEXT NOT NULL, at REAL NOT NULL, event TEXT NOT NULL,
    data BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS hist_by_key ON hist(key, id);
CREATE TABLE IF NOT EXISTS scores(
    key TEXT NOT NULL, member BLOB NOT NULL, score REAL NOT NULL,
    PRIMARY KEY(key, member)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS scores_by_rank ON scores(key, score, member);
CREATE TABLE IF NOT EXISTS expiry(key TEXT PRIMARY KEY, expires REAL NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS log(
    pos INTEGER PRIMARY KEY AUTOINCREMENT, log TEXT NOT NULL, subject TEXT, data BLOB NOT NULL,
    at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS log_by_log ON log(log, pos);
CREATE INDEX IF NOT EXISTS log_by_subject ON log(subject) WHERE subject IS NOT NULL;
CREATE TABLE IF NOT EXISTS dedup(
    log TEXT NOT NULL, id TEXT NOT NULL, expires REAL NOT NULL, PRIMARY KEY(log, id))
    WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS groups(
    log TEXT NOT NULL, grp TEXT NOT NULL, last INTEGER NOT NULL, PRIMARY KEY(log, grp))
    WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS pending(
    log TEXT NOT NULL, grp TEXT NOT NULL, pos INTEGER NOT NULL, consumer TEXT NOT NULL,
    PRIMARY KEY(log, grp, pos)) WITHOUT ROWID;
"""

_IN_CHUNK = 500  # keys per `IN (...)` (SQLite bounds a statement's parameters)
_SYNCHRONOUS = {"full": "FULL", "normal": "NORMAL"}


def _like_prefix(prefix: str) -> str:
    # subject_key escapes % and _ in the subject, so only the literal prefix needs care here.
    return prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


class SQLiteStore(Store):
    """One database file; one writer thread with group commit, pooled readers."""

    scheme = "sqlite"
    durable = True

    def __init__(
        self,
        path: str,
        *,
        synchronous: str = "full",
        timeout: float = 0.05,
        write_timeout: float = 5.0,
    ) -> None:
        if synchronous not in _SYNCHRONOUS:
            raise StoreConfigError(
                f"sqlite option synchronous={synchronous!r} is not one of: full, normal"
            )
        if not path:
            raise StoreConfigError("sqlite URL needs a file path: sqlite:///var/slotwise/state.db")
        self.path = Path(path)
        self._synchronous = _SYNCHRONOUS[synchronous]
        self._timeout = timeout
        self._write_timeout = write_timeout
        self._writer: GroupCommitWriter | None = None
        self._readers: ThreadPoolExecutor | None = None
        self._local = threading.local()
        self._reader_connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()  # only guards the list of reader connections

    # -- lifecycle ------------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA busy_timeout=5000")
        return conn

    def _connect_writer(self) -> sqlite3.Connection:
        _check_path(self.path)
        conn: sqlite3.Connection | None = None
        try:
            _check_schema(self.path)  # read-only: another application's file is left as it was
            conn = self._connect()
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise sqlite3.OperationalError(f"cannot switch to WAL mode ({mode})")
            conn.execute(f"PRAGMA synchronous={self._synchronous}")
            # erasure must not leave the erased bytes readable in free pages of the file
            conn.execute("PRAGMA secure_delete=ON")
            conn.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            if conn is not None:
                conn.close()
            raise _open_failure(self.path, exc) from exc
        return conn

    async def start(self) -> None:
        if self._writer is not None:
            return
        writer = GroupCommitWriter(self._connect_writer, idle=_purge_expired)
        await asyncio.to_thread(writer.start)
        self._writer = writer
        self._readers = ThreadPoolExecutor(max_workers=2, thread_name_prefix="slotwise-sqlite-r")

    async def close(self) -> None:
        writer, self._writer = self._writer, None
        if writer is not None:
            await asyncio.to_thread(writer.stop)
        readers, self._readers = self._readers, None
        if readers is not None:
            readers.shutdown(wait=True)
        with self._lock:
            for conn in self._reader_connections:
                conn.close()
            self._reader_connections.clear()

    @property
    def commits(self) -> int:
        """Transactions committed so far (each one fsync with synchronous=full)."""
        return self._writer.commits if self._writer else 0

    async def ping(self) -> None:
        await self._read(lambda c: c.execute("SELECT 1").fetchone())

    def patient(self) -> SQLiteStore:
        if self._timeout >= self._write_timeout:
            return self
        # a view sharing the writer, the readers and their connections (taken at call time,
        # so it follows the store's start and close); only its read timeout differs
        view = copy.copy(self)
        view._timeout = self._write_timeout
        return view

    # -- plumbing -------------------------------------------------------------------------

    def _reader(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            self._local.conn = conn
            with self._lock:
                self._reader_connections.append(conn)
        return conn

    async def _read(self, query: Callable[[sqlite3.Connection], T], timeout: float = 0) -> T:
        if self._readers is None:
            raise StoreUnavailable("the state store is not started")
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self._readers, lambda: query(self._reader()))
        try:
            return await asyncio.wait_for(future, timeout or self._timeout)
        except TimeoutError:
            raise StoreUnavailable("the state database did not answer in time") from None
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"the state database failed a read: {exc}") from exc

    async def _write(self, run: Callable[[sqlite3.Connection], T]) -> T:
        if self._writer is None:
            raise StoreUnavailable("the state store is not started")
        future = self._writer.submit(run)
        try:
            # shield: a caller that gives up must not cancel a write that may already be
            # committed; it is simply not acknowledged.
            return await asyncio.wait_for(asyncio.shield(future), self._write_timeout)
        except TimeoutError:
            # The writer still runs it (another process may hold the lock): say so, and take
            # its late outcome so that asyncio does not log "exception was never retrieved".
            future.add_done_callback(_abandon)
            raise StoreWriteUncertain(
                f"the state database {self.path} did not commit a write within write_timeout"
                f" ({self._write_timeout:g} s; another process may hold its lock): the write may"
                " still complete (resending a log append is safe: record ids deduplicate)"
            ) from None
        except asyncio.CancelledError:
            future.add_done_callback(_abandon)
            raise
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"the state database refused a write: {exc}") from exc

    # -- values ---------------------------------------------------------------------------

    async def get(self, key: str) -> bytes | None:
        return (await self.get_many([key]))[0]

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        if not keys:
            return []
        return await self._read(lambda conn: _values_of(conn, keys))

    async def set(self, key: str, value: bytes, *, ttl: float | None = None) -> None:
        expires = now() + ttl if ttl is not None else None
        await self._write(
            lambda c: c.execute(
                "INSERT INTO kv VALUES(?,?,?) ON CONFLICT(key) DO UPDATE"
                " SET value=excluded.value, expires=excluded.expires",
                (key, bytes(value), expires),
            )
        )

    async def set_many(
        self, values: Sequence[tuple[str, bytes]], *, ttl: float | None = None
    ) -> None:
        if not values:
            return
        rows = [(key, bytes(value)) for key, value in values]
        await self._write(lambda conn: _set_values(conn, rows, ttl))

    async def set_if_absent(self, key: str, value: bytes, *, ttl: float | None = None) -> bool:
        def run(conn: sqlite3.Connection) -> bool:
            at = now()
            cursor = conn.execute(
                "INSERT INTO kv VALUES(?,?,?) ON CONFLICT(key) DO UPDATE"
                " SET value=excluded.value, expires=excluded.expires"
                " WHERE kv.expires IS NOT NULL AND kv.expires <= ?",
                (key, bytes(value), at + ttl if ttl is not None else None, at),
            )
            return cursor.rowcount == 1

        return await self._write(run)

    async def delete(self, *keys: str) -> int:
        if not keys:
            return 0
        return await self._write(lambda c: _delete_keys(c, keys))

    async def incr(self, key: str, amount: int = 1, *, ttl: float | None = None) -> int:
        def run(conn: sqlite3.Connection) -> int:
            at = now()
            row = conn.execute(
                "SELECT value, expires FROM kv WHERE key=? AND (expires IS NULL OR expires > ?)",
                (key, at),
            ).fetchone()
            if row is None:
                value, expires = amount, (at + ttl if ttl is not None else None)
            else:
                value, expires = int(row[0]) + amount, row[1]
            conn.execute(
                "INSERT OR REPLACE INTO kv VALUES(?,?,?)", (key, str(value).encode(), expires)
            )
            return value

        return await self._write(run)

    # -- sets -----------------------------------------------------------------------------

    async def set_add(self, key: str, *members: bytes, ttl: float | None = None) -> int:
        return await self._write(lambda conn: _add_members(conn, key, members, ttl))

    async def set_remove(self, key: str, *members: bytes) -> int:
        def run(conn: sqlite3.Connection) -> int:
            _drop_if_expired(conn, key)
            before = conn.total_changes
            conn.executemany(
                "DELETE FROM sets WHERE key=? AND member=?", [(key, bytes(m)) for m in members]
            )
            return conn.total_changes - before

        return await self._write(run)

    async def set_members(self, key: str) -> frozenset[bytes]:
        def query(conn: sqlite3.Connection) -> frozenset[bytes]:
            if _expired(conn, key):
                return frozenset()
            rows = conn.execute("SELECT member FROM sets WHERE key=?", (key,)).fetchall()
            return frozenset(bytes(r[0]) for r in rows)

        return await self._read(query)

    async def set_contains(self, key: str, member: bytes) -> bool:
        def query(conn: sqlite3.Connection) -> bool:
            if _expired(conn, key):
                return False
            row = conn.execute(
                "SELECT 1 FROM sets WHERE key=? AND member=?", (key, bytes(member))
            ).fetchone()
            return row is not None

        return await self._read(query)

    # -- histories ------------------------------------------------------------------------

    async def history_append(
        self, key: str, items: Iterable[HistoryItem], *, max_len: int, ttl: float | None = None
    ) -> None:
        await self.history_append_many([(key, list(items))], max_len=max_len, ttl=ttl)

    async def history_append_many(
        self,
        appends: Sequence[tuple[str, Sequence[HistoryItem]]],
        *,
        max_len: int,
        ttl: float | None = None,
    ) -> None:
        batch = [(key, _history_rows(key, items)) for key, items in appends]
        if batch:
            # one operation of the writer: the keys' appends commit together
            await self._write(lambda conn: _append_histories(conn, batch, max_len, ttl))

    async def history(self, key: str, *, since: float = 0.0) -> list[HistoryItem]:
        return (await self.histories([key], since=since))[0]

    async def histories(
        self, keys: Sequence[str], *, since: float = 0.0
    ) -> list[list[HistoryItem]]:
        if not keys:
            return []
        return await self._read(lambda conn: _histories(conn, keys, since))

    async def histories_and_values(
        self, history_keys: Sequence[str], keys: Sequence[str], *, since: float = 0.0
    ) -> tuple[list[list[HistoryItem]], list[bytes | None]]:
        # one job of a reader thread, not two: each costs a thread's wake-up and the GIL twice
        return await self._read(
            lambda conn: (_histories(conn, history_keys, since), _values_of(conn, keys))
        )

    # -- scored sets ----------------------------------------------------------------------

    async def scores_add(
        self,
        key: str,
        increments: Mapping[bytes, float],
        *,
        max_len: int,
        ttl: float | None = None,
    ) -> None:
        rows = [(key, bytes(m), float(a)) for m, a in increments.items()]

        def run(conn: sqlite3.Connection) -> None:
            _drop_if_expired(conn, key)
            conn.executemany(
                "INSERT INTO scores VALUES(?,?,?)"
                " ON CONFLICT(key, member) DO UPDATE SET score = score + excluded.score",
                rows,
            )
            conn.execute(
                "DELETE FROM scores WHERE key=? AND member IN (SELECT member FROM scores"
                " WHERE key=? ORDER BY score DESC, member DESC LIMIT -1 OFFSET ?)",
                (key, key, max(max_len, 0)),
            )
            if ttl is not None:
                conn.execute("INSERT OR REPLACE INTO expiry VALUES(?,?)", (key, now() + ttl))

        await self._write(run)

    async def scores_top(self, keys: Sequence[str], count: int) -> list[list[tuple[bytes, float]]]:
        def query(conn: sqlite3.Connection) -> list[list[tuple[bytes, float]]]:
            out: list[list[tuple[bytes, float]]] = []
            for key in keys:
                if _expired(conn, key):
                    out.append([])
                    continue
                rows = conn.execute(
                    "SELECT member, score FROM scores WHERE key=?"
                    " ORDER BY score DESC, member DESC LIMIT ?",
                    (key, max(count, 0)),
                ).fetchall()
                out.append([(bytes(r[0]), float(r[1])) for r in rows])
            return out

        return await self._read(query)

    # -- logs -----------------------------------------------------------------------------

    async def log_append(
        self, log: str, records: Sequence[LogRecord], *, dedup_ttl: float | None = None
    ) -> list[str | None]:
        return await self._write(lambda conn: _append(conn, log, records, dedup_ttl))

    async def log_append_with_history(
        self,
        log: str,
        records: Sequence[LogRecord],
        history: Sequence[tuple[str, HistoryItem] | None],
        *,
        dedup_ttl: float | None = None,
        max_len: int,
        ttl: float | None = None,
    ) -> list[str | None]:
        if len(history) != len(records):
            raise ValueError("one history entry (or None) per record")

        def run(conn: sqlite3.Connection) -> list[str | None]:
            positions = _append(conn, log, records, dedup_ttl)
            appends = _history_appends(history, positions)
            if appends:
                batch = [(key, _history_rows(key, items)) for key, items in appends]
                _append_histories(conn, batch, max_len, ttl)
            return positions

        return await self._write(run)  # one transaction: the log and the histories

    async def log_append_and_set(
        self,
        log: str,
        records: Sequence[LogRecord],
        *,
        dedup_ttl: float | None = None,
        values: Sequence[tuple[str, bytes]] = (),
        ttl: float | None = None,
        members: Sequence[tuple[str, Sequence[bytes]]] = (),
    ) -> list[str | None]:
        rows = [(key, bytes(value)) for key, value in values]

        def run(conn: sqlite3.Connection) -> list[str | None]:
            positions = _append(conn, log, records, dedup_ttl)
            if rows:
                _set_values(conn, rows, ttl)
            for key, added in members:
                if added:
                    _add_members(conn, key, added, None)
            return positions

        return await self._write(run)  # one transaction: a failure writes none of it

    async def log_read(self, log: str, *, after: str = "0", count: int = 100) -> list[LogEntry]:
        start = _position(after)
        return await self._read(
            lambda c: _entries(
                c.execute(
                    "SELECT pos, data, subject FROM log WHERE log=? AND pos > ? ORDER BY pos"
                    " LIMIT ?",
                    (log, start, count),
                )
            ),
            timeout=self._write_timeout,
        )

    async def log_length(self, log: str) -> int:
        return await self._read(
            lambda c: int(c.execute("SELECT count(*) FROM log WHERE log=?", (log,)).fetchone()[0]),
            timeout=self._write_timeout,
        )

    async def log_group_read(
        self, log: str, group: str, consumer: str, *, count: int = 100, pending: bool = False
    ) -> list[LogEntry]:
        def run(conn: sqlite3.Connection) -> list[LogEntry]:
            if pending:
                return _entries(
                    conn.execute(
                        "SELECT l.pos, l.data, l.subject FROM pending p JOIN log l ON l.pos=p.pos"
                        " WHERE p.log=? AND p.grp=? AND p.consumer=? ORDER BY p.pos LIMIT ?",
                        (log, group, consumer, count),
                    )
                )
            conn.execute("INSERT OR IGNORE INTO groups VALUES(?,?,0)", (log, group))
            last = conn.execute(
                "SELECT last FROM groups WHERE log=? AND grp=?", (log, group)
            ).fetchone()[0]
            entries = _entries(
                conn.execute(
                    "SELECT pos, data, subject FROM log WHERE log=? AND pos > ? ORDER BY pos"
                    " LIMIT ?",
                    (log, last, count),
                )
            )
            if entries:
                conn.executemany(
                    "INSERT OR REPLACE INTO pending VALUES(?,?,?,?)",
                    [(log, group, int(e.position), consumer) for e in entries],
                )
                conn.execute(
                    "UPDATE groups SET last=? WHERE log=? AND grp=?",
                    (int(entries[-1].position), log, group),
                )
            return entries

        return await self._write(run)

    async def log_ack(self, log: str, group: str, positions: Sequence[str]) -> int:
        rows = [(log, group, _position(p)) for p in positions]

        def run(conn: sqlite3.Connection) -> int:
            before = conn.total_changes
            conn.executemany("DELETE FROM pending WHERE log=? AND grp=? AND pos=?", rows)
            return conn.total_changes - before

        return await self._write(run)

    async def log_trim(self, log: str, *, before: float) -> int:
        def run(conn: sqlite3.Connection) -> int:
            return conn.execute("DELETE FROM log WHERE log=? AND at < ?", (log, before)).rowcount

        return await self._write(run)

    async def log_erase(self, log: str, subject: str) -> int:
        def run(conn: sqlite3.Connection) -> int:
            return conn.execute(
                "DELETE FROM log WHERE subject=? AND log=?", (subject, log)
            ).rowcount

        return await self._write(run)

    async def erase_subject(self, subject: str) -> int:
        pattern = _like_prefix(subject_prefix(subject))

        def run(conn: sqlite3.Connection) -> int:
            keys: set[str] = set()
            at = now()
            for table, live in (
                ("kv", " AND (expires IS NULL OR expires > ?)"),
                ("sets", ""),
                ("hist", ""),
                ("scores", ""),
            ):
                params: tuple[object, ...] = (pattern, at) if live else (pattern,)
                rows = conn.execute(
                    f"SELECT DISTINCT key FROM {table} WHERE key LIKE ? ESCAPE '\\'{live}", params
                )
                keys.update(r[0] for r in rows)
            return _delete_keys(conn, sorted(keys))

        return await self._write(run)


def _histories(
    conn: sqlite3.Connection, keys: Sequence[str], since: float
) -> list[list[HistoryItem]]:
    at = now()
    found: dict[str, list[HistoryItem]] = {key: [] for key in keys}
    # in chunks: SQLite bounds the number of parameters of one statement
    for begin in range(0, len(keys), _IN_CHUNK):
        chunk = list(dict.fromkeys(keys[begin : begin + _IN_CHUNK]))
        marks = ",".join("?" * len(chunk))
        expired = {
            row[0]
            for row in conn.execute(
                f"SELECT key FROM expiry WHERE key IN ({marks}) AND expires <= ?",
                (*chunk, at),
            )
        }
        rows = conn.execute(
            f"SELECT key, event, at, data FROM hist WHERE key IN ({marks}) AND at >= ?"
            " ORDER BY key, id",
            (*chunk, since),
        )
        for key, event, when, data in rows:
            if key not in expired:
                found[key].append(HistoryItem(event, when, bytes(data)))
    return [list(found[key]) for key in keys]


def _values_of(conn: sqlite3.Connection, keys: Sequence[str]) -> list[bytes | None]:
    if not keys:
        return []
    marks = ",".join("?" * len(keys))
    rows = conn.execute(
        f"SELECT key, value FROM kv WHERE key IN ({marks}) AND (expires IS NULL OR expires > ?)",
        (*keys, now()),
    ).fetchall()
    found = dict(rows)
    return [found.get(k) for k in keys]


def _abandon(future: asyncio.Future[Any]) -> None:
    """Done-callback of a write nobody waits for any more: mark its outcome as seen."""
    if not future.cancelled():
        future.exception()


def _check_path(path: Path) -> None:
    """Name what is wrong with the path itself before SQLite says "unable to open"."""
    if path.is_dir():
        raise StoreConfigError(
            f"sqlite path {path} is a directory: the URL must name a database file,"
            f" e.g. sqlite://{path / 'state.db'}"
        )
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise StoreConfigError(
            f"cannot open the state database {path}: a part of {path.parent} is a file, not a"
            " directory; choose another path in the URL"
        ) from None
    except OSError as exc:
        raise StoreUnavailable(
            f"cannot open the state database {path}: cannot create its directory"
            f" {path.parent} ({exc.strerror}); create it, or choose another path in the URL"
        ) from None


def _open_failure(path: Path, exc: sqlite3.Error) -> StoreError:
    """SQLite's "unable to open database file" with the path, the likely cause, what to do."""
    permissions = "; fix the permissions or choose another path in the URL"
    if not os.access(path.parent, os.W_OK):
        cause = (
            f"its directory {path.parent} is not writable (SQLite creates {path.name}-wal"
            f" and {path.name}-shm next to the file){permissions}"
        )
    elif path.exists() and not os.access(path, os.R_OK | os.W_OK):
        cause = f"the file is not readable and writable for this user{permissions}"
    elif _read_only_filesystem(path.parent):
        cause = f"{path.parent} is on a read-only file system; choose another path in the URL"
    else:  # e.g. locked by another process: nothing to add to what SQLite says
        return StoreUnavailable(f"cannot open the state database {path}: {exc}")
    return StoreUnavailable(f"cannot open the state database {path}: {cause} (sqlite: {exc})")


def _read_only_filesystem(directory: Path) -> bool:
    try:
        return bool(os.statvfs(directory).f_flag & os.ST_RDONLY)
    except OSError:
        return False


@functools.cache
def _our_tables() -> dict[str, tuple[str, ...]]:
    """Table name -> column names of the schema this module creates (read from SQLite)."""
    with closing(sqlite3.connect(":memory:")) as conn:
        conn.executescript(_SCHEMA)
        return _tables(conn)


def _tables(conn: sqlite3.Connection) -> dict[str, tuple[str, ...]]:
    names = [
        row[0]
        for row in conn.execute(
            "SELECT name FROM sqlite_master WHERE type IN ('table', 'view', 'trigger')"
            " AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name"
        )
    ]
    quoted = {name: '"' + name.replace('"', '""') + '"' for name in names}
    return {
        name: tuple(r[1] for r in conn.execute(f"PRAGMA table_info({quoted[name]})"))
        for name in names
    }


def _check_schema(path: Path) -> None:
    """Refuse a database that is not ours before anything is written to it.

    Fine: a new or empty file, or tables of our schema (some may be missing: an older
    version, or a first start interrupted between two CREATE TABLEs). Anything else is
    another application's database: switching it to WAL and adding our tables would change
    it, and a same-named table with other columns would fail every write later.
    """
    if not path.exists():
        return
    try:
        with closing(sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True)) as conn:
            found = _tables(conn)
    except sqlite3.DatabaseError as exc:
        if isinstance(exc, sqlite3.OperationalError):
            raise  # cannot open or read it: permissions, locks; reported as such
        raise StoreConfigError(
            f"{path} is not a slotwise state database ({exc}): point the URL at a new file"
            " (it is created) or at an existing slotwise state database"
        ) from None
    ours = _our_tables()
    if any(ours.get(name) != columns for name, columns in found.items()):
        shown = [f"{name}({', '.join(cols)})" for name, cols in sorted(found.items())]
        listed = ", ".join(shown[:8]) + (", ..." if len(shown) > 8 else "")
        raise StoreConfigError(
            f"{path} is not a slotwise state database (tables: {listed}): point the URL at a"
            " new file (it is created) or at an existing slotwise state database; the file was"
            " not changed"
        )


def _position(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise StoreConfigError(f"not a log position of this store: {text!r}") from None


def _entries(cursor: sqlite3.Cursor) -> list[LogEntry]:
    return [LogEntry(str(pos), bytes(data), subject) for pos, data, subject in cursor]


_ROWS = 64  # rows per multi-row statement at most (4 parameters a row: far below the bound)


def _pieces(rows: Sequence[T]) -> Iterator[Sequence[T]]:
    """``rows`` in pieces of 64, 32, ..., 1 rows: one statement for many rows (its step runs
    once, the GIL is released once), yet few distinct statements for the connection's cache."""
    begin, size = 0, _ROWS
    while begin < len(rows):
        while size > len(rows) - begin:
            size //= 2
        yield rows[begin : begin + size]
        begin += size


@functools.cache
def _values(rows: int, width: int) -> str:
    """``(?,?),(?,?)...``: the VALUES of a multi-row statement."""
    return ",".join(["(" + ",".join("?" * width) + ")"] * rows)


def _flat(rows: Sequence[tuple[object, ...]]) -> list[object]:
    return [value for row in rows for value in row]


def _append(
    conn: sqlite3.Connection, log: str, records: Sequence[LogRecord], dedup_ttl: float | None
) -> list[str | None]:
    """Append ``records`` (those whose id is live in the dedup window are left out): their
    positions, None for a duplicate. A few multi-row statements for the whole batch."""
    at = now()
    new: set[str] = set()  # ids not live: each one's first record is stored
    if dedup_ttl is not None:
        ids = [(log, r.id, at + dedup_ttl) for r in records if r.id is not None]
        for piece in _pieces(ids):
            new.update(
                row[0]
                for row in conn.execute(
                    f"INSERT INTO dedup VALUES{_values(len(piece), 3)} ON CONFLICT(log, id)"
                    " DO UPDATE SET expires=excluded.expires WHERE dedup.expires <= ?"
                    " RETURNING id",
                    (*_flat(piece), at),
                )
            )
    kept: list[bool] = []
    rows: list[tuple[str, str | None, bytes, float]] = []
    for record in records:
        if record.id is not None and dedup_ttl is not None:
            if record.id not in new:  # live before, or a repeat within this batch
                kept.append(False)
                continue
            new.discard(record.id)
        kept.append(True)
        rows.append((log, record.subject, bytes(record.data), at))
    for part in _pieces(rows):
        conn.execute(
            f"INSERT INTO log(log, subject, data, at) VALUES{_values(len(part), 4)}", _flat(part)
        )
    last = 0
    if rows:
        # one writer, in one transaction: AUTOINCREMENT gives the rows consecutive positions
        last = conn.execute("SELECT last_insert_rowid()").fetchone()[0]
    position = last - len(rows)
    positions: list[str | None] = []
    for stored in kept:
        if stored:
            position += 1
            positions.append(str(position))
        else:
            positions.append(None)
    return positions


def _set_values(
    conn: sqlite3.Connection, rows: Sequence[tuple[str, bytes]], ttl: float | None
) -> None:
    expires = now() + ttl if ttl is not None else None
    for piece in _pieces([(key, value, expires) for key, value in rows]):
        conn.execute(
            f"INSERT INTO kv VALUES{_values(len(piece), 3)} ON CONFLICT(key) DO UPDATE"
            " SET value=excluded.value, expires=excluded.expires",
            _flat(piece),
        )


def _add_members(
    conn: sqlite3.Connection, key: str, members: Iterable[bytes], ttl: float | None
) -> int:
    _drop_if_expired(conn, key)
    before = conn.total_changes
    for piece in _pieces([(key, bytes(m)) for m in members]):
        conn.execute(f"INSERT OR IGNORE INTO sets VALUES{_values(len(piece), 2)}", _flat(piece))
    added = conn.total_changes - before
    if ttl is not None:
        _renew(conn, [(key, now() + ttl)])
    return added


def _renew(conn: sqlite3.Connection, expiries: Sequence[tuple[str, float]]) -> None:
    """Set these keys' expiry times (an update in place where one exists)."""
    for piece in _pieces(expiries):
        conn.execute(
            f"INSERT INTO expiry VALUES{_values(len(piece), 2)}"
            " ON CONFLICT(key) DO UPDATE SET expires=excluded.expires",
            _flat(piece),
        )


_HistoryRows = list[tuple[str, float, str, bytes]]


def _history_rows(key: str, items: Iterable[HistoryItem]) -> _HistoryRows:
    return [(key, i.at, i.event, bytes(i.data)) for i in items]


def _append_histories(
    conn: sqlite3.Connection,
    batch: Sequence[tuple[str, _HistoryRows]],
    max_len: int,
    ttl: float | None,
) -> None:
    """Append each key's rows, keep its newest ``max_len``, renew its expiry: a few
    statements for the whole batch (multi-row, ``executemany``), not a few per key."""
    at = now()
    keys = list(dict.fromkeys(key for key, _ in batch))
    for begin in range(0, len(keys), _IN_CHUNK):  # an expired history starts afresh
        chunk = keys[begin : begin + _IN_CHUNK]
        marks = ",".join("?" * len(chunk))
        expired = conn.execute(
            f"SELECT key FROM expiry WHERE key IN ({marks}) AND expires <= ?", (*chunk, at)
        ).fetchall()
        if expired:
            _delete_keys(conn, [row[0] for row in expired])
    for piece in _pieces([row for _, rows in batch for row in rows]):
        conn.execute(
            f"INSERT INTO hist(key, at, event, data) VALUES{_values(len(piece), 4)}",
            _flat(piece),
        )
    conn.executemany(
        "DELETE FROM hist WHERE key=? AND id <= (SELECT id FROM hist WHERE key=?"
        " ORDER BY id DESC LIMIT 1 OFFSET ?)",
        [(key, key, max(max_len, 0)) for key in keys],
    )
    if ttl is not None:
        _renew(conn, [(key, at + ttl) for key in keys])


def _expired(conn: sqlite3.Connection, key: str) -> bool:
    row = conn.execute("SELECT expires FROM expiry WHERE key=?", (key,)).fetchone()
    return row is not None and row[0] <= now()


def _drop_if_expired(conn: sqlite3.Connection, key: str) -> None:
    if _expired(conn, key):
        _delete_keys(conn, [key])


def _delete_keys(conn: sqlite3.Connection, keys: Sequence[str]) -> int:
    existed = 0
    at = now()
    for key in keys:
        live_value = conn.execute(
            "DELETE FROM kv WHERE key=? AND (expires IS NULL OR expires > ?)", (key, at)
        ).rowcount
        conn.execute("DELETE FROM kv WHERE key=?", (key,))
        expired = _expired(conn, key)
        in_set = conn.execute("DELETE FROM sets WHERE key=?", (key,)).rowcount
        in_hist = conn.execute("DELETE FROM hist WHERE key=?", (key,)).rowcount
        in_scores = conn.execute("DELETE FROM scores WHERE key=?", (key,)).rowcount
        conn.execute("DELETE FROM expiry WHERE key=?", (key,))
        existed += bool(live_value or ((in_set or in_hist or in_scores) and not expired))
    return existed


def _purge_expired(conn: sqlite3.Connection) -> None:
    """Housekeeping while idle: drop expired values, sets, histories and dedup ids."""
    at = now()
    conn.execute("DELETE FROM kv WHERE expires IS NOT NULL AND expires <= ?", (at,))
    conn.execute("DELETE FROM dedup WHERE expires <= ?", (at,))
    expired = [r[0] for r in conn.execute("SELECT key FROM expiry WHERE expires <= ?", (at,))]
    for key in expired:
        conn.execute("DELETE FROM sets WHERE key=?", (key,))
        conn.execute("DELETE FROM hist WHERE key=?", (key,))
        conn.execute("DELETE FROM scores WHERE key=?", (key,))
        conn.execute("DELETE FROM expiry WHERE key=?", (key,))
