"""The log archive: entries moved out of Redis into compressed segment files on disk.

Redis keeps a log's recent entries (``archive_after``, an hour by default) and those a consumer
group has not yet acknowledged; the retention pass moves the rest here
(:meth:`~slotwise.proxy.state.redis.RedisStore.log_archive`), so Redis's memory holds hours of
raw events and decisions, not the 90 days of ``events.event_retention``. Readers see one log:
``log_read`` reads the archive, then Redis, by the same stream ids; ``log_erase`` and
``log_trim`` reach both.

One directory per log; one file per segment, named by the stream id its first entry had when
it was written (``<ms>-<seq>.seg``): segment *i* holds entries from its name up to the next
segment's name, so a read finds its start by the file names alone. A file is::

    b"SWSEG1" | last ms (8 bytes) | last seq (8) | entries (4) | index bytes (4)
    | subject index: the sorted 8-byte BLAKE2b keys of its entries' subjects
    | zlib(msgpack [[ms, seq, subject, data], ...])

A whole segment deflated together is several times smaller than Redis's entries, each packed
alone. Files are written once (temporary name, fsync, rename, fsync of the directory); erasure
and retention rewrite a segment the same way under its own name, so a reader sees the old or
the new file, never half of one. Writers (the archive pass, erasure, retention) take the log's
lock file (``flock``), one at a time across processes on the host; the methods here are
blocking and meant to run in a thread.
"""

from __future__ import annotations

import bisect
import contextlib
import fcntl
import hashlib
import os
import struct
import threading
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import BinaryIO
from urllib.parse import quote

import msgspec

from slotwise.proxy.state.base import LogEntry, StoreConfigError, StoreUnavailable

#: A stream id as numbers, (milliseconds, sequence): ordered as Redis orders them.
Id = tuple[int, int]
#: One archived entry: its stream id, subject and (unpacked) data.
Row = tuple[int, int, str | None, bytes]
_Keep = Callable[[Row], bool]

_MAGIC = b"SWSEG1"
_TEMPORARY = ".tmp"
# last ms, last seq, entries, then the subject index's length in bytes
_HEADER = struct.Struct(">QQII")
_START = len(_MAGIC) + _HEADER.size
#: Entries per segment: a decoded segment (kept while a reader pages through it) is a few MB.
SEGMENT_ENTRIES = 50_000
#: A directory listing changed this recently may change again within the file system's clock
#: tick without its mtime moving: it is not cached (git's "racy" rule).
_RACY_NS = 2_000_000_000
_ENCODER = msgspec.msgpack.Encoder()
_DECODER = msgspec.msgpack.Decoder(list[tuple[int, int, str | None, bytes]])


def parse_id(position: str) -> Id:
    """``"1733400000000-3"`` as (1733400000000, 3); "0" and "0-0" as (0, 0)."""
    ms, _, seq = position.partition("-")
    try:
        return int(ms), int(seq or 0)
    except ValueError:
        raise StoreUnavailable(f"log position {position!r} is not a stream id") from None


def format_id(stream_id: Id) -> str:
    return f"{stream_id[0]}-{stream_id[1]}"


@dataclass(frozen=True, slots=True)
class _Segment:
    name: str
    first: Id
    last: Id
    count: int


@dataclass(frozen=True, slots=True)
class _Listing:
    mtime_ns: int
    segments: tuple[_Segment, ...]


class LogArchive:
    """The archived part of each log, under ``directory``."""

    def __init__(self, directory: str) -> None:
        self.directory = directory
        self._listings: dict[str, _Listing] = {}
        # the segment a reader pages through stays decoded: (path, inode, mtime) -> rows
        self._decoded: dict[str, tuple[tuple[str, int, int], list[Row]]] = {}
        self._guard = threading.Lock()  # the caches only; files are guarded by flock

    def open(self) -> None:
        """Create the directory and check it takes files; StoreConfigError if it cannot."""
        try:
            os.makedirs(self.directory, exist_ok=True)
            probe = os.path.join(self.directory, f".probe-{os.getpid()}")
            with open(probe, "wb") as handle:
                handle.write(b"ok")
            os.unlink(probe)
            self._sweep()
        except OSError as exc:
            raise StoreConfigError(
                f"log archive {self.directory!r}: cannot write there ({exc.strerror}); give a"
                " directory this user may create files in (store URL option archive=)"
            ) from None

    def _sweep(self) -> None:
        """Remove what writers killed mid-write left (temporary files over an hour old)."""
        cutoff = time.time() - 3600
        for folder in os.scandir(self.directory):
            if folder.is_dir():
                for leftover in os.scandir(folder.path):
                    if leftover.name.endswith(_TEMPORARY) and leftover.stat().st_mtime < cutoff:
                        with contextlib.suppress(FileNotFoundError):
                            os.unlink(leftover.path)

    def _dir(self, log: str) -> str:
        return os.path.join(self.directory, quote(log, safe=""))

    def holds(self, log: str) -> bool:
        """Whether anything of ``log`` was ever archived (no thread needed to ask)."""
        return os.path.isdir(self._dir(log))

    # -- reading --------------------------------------------------------------------------

    def _segments(self, log: str) -> tuple[_Segment, ...]:
        return self._listing(log).segments

    def _listing(self, log: str) -> _Listing:
        folder = self._dir(log)
        try:
            mtime = os.stat(folder).st_mtime_ns
        except FileNotFoundError:
            return _EMPTY
        cached = self._listings.get(log)
        if cached is not None and cached.mtime_ns == mtime:
            return cached
        found = []
        for name in os.listdir(folder):
            if name.endswith(".seg") and not name.startswith("."):
                header = _read_header(os.path.join(folder, name))
                if header is not None:
                    found.append(_Segment(name, parse_id(name[:-4]), header[0], header[1]))
        found.sort(key=lambda s: s.first)
        listing = _Listing(mtime, tuple(found))
        if time.time_ns() - mtime > _RACY_NS:
            with self._guard:
                self._listings[log] = listing
        return listing

    def last(self, log: str) -> Id | None:
        """The id of the newest archived entry of ``log`` (None: nothing archived)."""
        segments = self._segments(log)
        return segments[-1].last if segments else None

    def length(self, log: str) -> int:
        return sum(s.count for s in self._segments(log))

    def read(self, log: str, after: Id, count: int) -> tuple[list[LogEntry], Id | None]:
        """Up to ``count`` archived entries after ``after``, and the archive's last id."""
        segments = self._segments(log)
        if not segments:
            return [], None
        last = segments[-1].last
        out: list[LogEntry] = []
        if after >= last:
            return out, last
        # the segment holding the first id after `after`: the last one named at or before it
        start = max(0, bisect.bisect_right(segments, after, key=_first) - 1)
        for segment in segments[start:]:
            if segment.last <= after:
                continue
            rows = self._rows(log, segment)
            begin = bisect.bisect_right(rows, after, key=_row_id) if segment.first <= after else 0
            for ms, seq, subject, data in rows[begin : begin + count - len(out)]:
                out.append(LogEntry(f"{ms}-{seq}", data, subject))
            if len(out) == count:
                return out, last
        return out, last

    def _rows(self, log: str, segment: _Segment) -> list[Row]:
        path = os.path.join(self._dir(log), segment.name)
        try:
            stat = os.stat(path)
        except FileNotFoundError:
            return []  # rewritten away (its entries all erased or trimmed) since the listing
        key = (path, stat.st_ino, stat.st_mtime_ns)
        cached = self._decoded.get(log)
        if cached is not None and cached[0] == key:
            return cached[1]
        rows = _load(path)
        with self._guard:
            self._decoded[log] = (key, rows)
        return rows

    # -- writing (under the log's lock) -----------------------------------------------------

    def acquire(self, log: str, wait: float) -> int | None:
        """Take ``log``'s writer lock (a file descriptor to :meth:`release`); None when another
        writer held it for ``wait`` seconds."""
        folder = self._dir(log)
        os.makedirs(folder, exist_ok=True)
        fd = os.open(os.path.join(folder, ".lock"), os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return fd
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    os.close(fd)
                    return None
                time.sleep(0.02)

    @staticmethod
    def release(fd: int) -> None:
        os.close(fd)  # closing the descriptor releases its flock

    def append(self, log: str, rows: Sequence[Row]) -> None:
        """Write ``rows`` (ids ascending, all after :meth:`last`) as new segments."""
        for begin in range(0, len(rows), SEGMENT_ENTRIES):
            chunk = rows[begin : begin + SEGMENT_ENTRIES]
            self._write(log, f"{chunk[0][0]}-{chunk[0][1]}.seg", chunk)

    def erase(self, log: str, subject: str) -> int:
        """Rewrite every segment holding ``subject``'s entries without them; how many went.

        Each segment's subject index says whether to read it at all: an erasure decodes only
        the segments of the days the user was active, not the whole retained log."""
        key = _subject_key(subject)
        gone = 0
        for segment in self._segments(log):
            if _indexes(os.path.join(self._dir(log), segment.name), key):
                gone += self._rewrite_one(log, segment, lambda row: row[2] != subject)
        return gone

    def trim(self, log: str, before: Id) -> int:
        """Drop entries with ids before ``before``; how many went."""
        gone = 0
        for segment in self._segments(log):
            if segment.last < before:  # wholly too old: no need to read it
                os.unlink(os.path.join(self._dir(log), segment.name))
                gone += segment.count
            elif segment.first < before:
                gone += self._rewrite_one(log, segment, lambda row: (row[0], row[1]) >= before)
        _sync_dir(self._dir(log))
        return gone

    def _rewrite_one(self, log: str, segment: _Segment, keep: _Keep) -> int:
        path = os.path.join(self._dir(log), segment.name)
        rows = _load(path)
        kept = [row for row in rows if keep(row)]
        if len(kept) == len(rows):
            return 0
        if kept:
            self._write(log, segment.name, kept)
        else:
            os.unlink(path)
            _sync_dir(self._dir(log))
        return len(rows) - len(kept)

    def _write(self, log: str, name: str, rows: Sequence[Row]) -> None:
        folder = self._dir(log)
        os.makedirs(folder, exist_ok=True)
        last = rows[-1]
        body = zlib.compress(_ENCODER.encode(rows), 6)
        index = b"".join(sorted({_subject_key(row[2]) for row in rows if row[2] is not None}))
        temporary = os.path.join(folder, f".{name}.{os.getpid()}{_TEMPORARY}")
        try:
            with open(temporary, "wb") as handle:
                head = _HEADER.pack(last[0], last[1], len(rows), len(index))
                handle.write(_MAGIC + head + index + body)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, os.path.join(folder, name))
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)  # a full disk keeps no half-written file
            raise
        _sync_dir(folder)


_EMPTY = _Listing(0, ())


def _first(segment: _Segment) -> Id:
    return segment.first


def _row_id(row: Row) -> Id:
    return row[0], row[1]


def _head(handle: BinaryIO, path: str) -> tuple[int, int, int, int]:
    """A segment's header: last ms, last seq, entries, the subject index's length."""
    head = handle.read(_START)
    if len(head) != _START or not head.startswith(_MAGIC):
        raise StoreUnavailable(f"log archive file {path} is not a segment (damaged?)")
    fields: tuple[int, int, int, int] = _HEADER.unpack_from(head, len(_MAGIC))
    return fields


def _read_header(path: str) -> tuple[Id, int] | None:
    try:
        with open(path, "rb") as handle:
            last_ms, last_seq, count, _index = _head(handle, path)
    except FileNotFoundError:
        return None  # rewritten away since the listing
    return (last_ms, last_seq), count


def _subject_key(subject: str) -> bytes:
    # 8 bytes: two subjects sharing one only make an erasure decode a segment it need not
    return hashlib.blake2b(subject.encode(), digest_size=8).digest()


def _indexes(path: str, key: bytes) -> bool:
    """Whether the segment's subject index holds ``key`` (a binary search of its sorted keys)."""
    try:
        with open(path, "rb") as handle:
            index = handle.read(_head(handle, path)[3])
    except FileNotFoundError:
        return False
    keys = len(index) // 8
    at = bisect.bisect_left(range(keys), key, key=lambda i: index[i * 8 : i * 8 + 8])
    return at < keys and index[at * 8 : at * 8 + 8] == key


def _load(path: str) -> list[Row]:
    try:
        with open(path, "rb") as handle:
            raw = handle.read()
    except FileNotFoundError:
        return []
    try:
        index = _HEADER.unpack_from(raw, len(_MAGIC))[3]
        return _DECODER.decode(zlib.decompress(raw[_START + index :]))
    except (zlib.error, msgspec.DecodeError, struct.error) as exc:
        raise StoreUnavailable(f"log archive file {path} does not decode ({exc})") from None


def _sync_dir(folder: str) -> None:
    # a rename or unlink is durable only once its directory is
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
