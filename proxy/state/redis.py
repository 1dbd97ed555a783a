"""``redis://host:port/db`` and ``redis+cluster://host:port,host:port``: the scaled-out store.

Values, counters and sets are plain Redis keys; histories are lists trimmed to their bound;
logs are Redis Streams (positions are stream ids) read by consumer groups; a JSON record is
stored deflated with a preset dictionary when that is smaller (slotwise.proxy.state.packing:
field ``z``, or ``x`` with its UUIDs as binary tokens, else ``d``), and read back as it was
appended. Multi-step writes run as Lua scripts, so each is atomic and touches one hash slot:
a log's stream and its dedup sets (see _DEDUP) share the hash tag ``{log:<name>}``, a user's
keys share ``{<user>}`` (see :func:`~slotwise.proxy.state.base.subject_key`), which keeps
every script legal on Cluster.

Two connection pools: the request-path pool answers within ``timeout`` (default 50 ms) and
retries once; log appends use ``write_timeout`` (default 2 s) and do not retry (a retried
append could store a record twice; record ids make even that harmless). A 2xx for events means
durable only when the server runs ``appendonly yes`` with ``appendfsync always``: Redis then
fsyncs before it replies. :attr:`RedisStore.durable` reports what the server says at start.

Replicas: Redis replicates asynchronously, so a primary's reply alone does not survive a
failover. With ``wait_replicas=N`` a log append is followed, on the *same connection* (one
pipeline to the primary that holds the log's slot), by ``WAIT N <wait_timeout>``: WAIT is per
connection (it waits for that connection's last write) and a script may not call it. Fewer than
N replicas confirming within ``wait_timeout`` raises :class:`StoreWriteUncertain`, so the
events endpoints answer 503 and the client resends (record ids deduplicate; a duplicate still
writes, see ``_APPEND``, so the resend's WAIT covers the first append as well).

Archive: with ``archive=DIRECTORY`` the retention pass moves each log's entries older than
``archive_after`` (an hour) and acknowledged by every consumer group out of Redis into
compressed segment files (slotwise.proxy.state.archive); ``log_read``, ``log_length``,
``log_trim`` and ``log_erase`` see both parts as one log.

URL options: ``timeout``, ``write_timeout``, ``wait_timeout`` (seconds), ``wait_replicas``,
``archive`` (a directory), ``archive_after`` (seconds).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import struct
import time
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any, Final, TypeVar

import msgspec
import redis.asyncio as aioredis
import redis.exceptions
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.commands.core import AsyncScript
from redis.exceptions import RedisClusterException

from slotwise.proxy.state.archive import SEGMENT_ENTRIES, Id, LogArchive, format_id, parse_id
from slotwise.proxy.state.base import (
    HistoryItem,
    LogEntry,
    LogRecord,
    Store,
    StoreConfigError,
    StoreError,
    StoreUnavailable,
    StoreWriteUncertain,
    escape_key_part,
    subject_prefix,
)
from slotwise.proxy.state.packing import pack_entry, unpack, unpack_tokens

T = TypeVar("T")
_log = logging.getLogger(__name__)
#: Seconds a log's entries stay in Redis before the retention pass may archive them (option
#: ``archive_after``): recent entries are what the readers of a live log ask for.
ARCHIVE_AFTER = 3600.0
#: Seconds erasure and retention wait for the archive's lock (held by a pass moving at most a
#: few segments of entries at a time).
_LOCK_WAIT = 30.0

# What a redis call can raise: RedisClusterException (cluster start-up, slot coverage) is not
# a RedisError, and a socket may fail below redis-py.
_FAILURES = (redis.exceptions.RedisError, RedisClusterException, OSError, TimeoutError)
_CLUSTER_PREFIX = "Redis Cluster cannot be connected. Please provide at least one reachable node: "

# Record ids remembered for deduplication: 63 bits of a hash of the id (_dedup_token) in an
# integer set per slice of time (as long as the window) and shard (16,384 of them),
# ``<stream>:i:<width>:<slice>:<shard>``, which Redis keeps as an intset (8 bytes an id up to
# set-max-intset-entries, 512, per set: 8M ids a day) where a key per id took about 150 bytes
# (issue 22). An id is looked up in the current slice and the one before, and a slice's set
# expires when its last id has been remembered ``ttl``: so an id is remembered for ``ttl`` to
# twice that. One slice before, not more: every call costs the server CPU (the three calls
# here take about 5 us a record more than one SET did; docs/benchmarks.md). The sets share
# the stream's hash tag (one slot; their names depend on the server's clock, so they are not
# in KEYS, which Redis allows for keys of the script's own slot). Ids stored by the version
# before (a key each, ``<stream>:d:<id>``, passed in KEYS) are looked up too for one ``ttl``
# after this version first appended to the log (``<stream>:i`` holds that time), by when
# they have expired.
# A duplicate rewrites the expiry of the key that held it (a write that changes nothing), so
# that this connection's replication offset passes the first append and a WAIT after this
# script confirms that one too (WAIT waits for the connection's last write only).
_DEDUP = """
local function dedup_window(ttl)
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  local width = ttl
  local marker = KEYS[1] .. ':i'
  local since = tonumber(redis.call('GET', marker))
  if since == nil then
    since = now
    redis.call('SET', marker, now)
  end
  local slice = math.floor(now / width)
  local prefix = KEYS[1] .. ':i:' .. width .. ':'
  return {
    legacy = now - since < ttl, expiry = (slice + 1) * width + ttl,
    current = prefix .. slice .. ':', before = prefix .. (slice - 1) .. ':',
  }
end
local function dedup_touch(key)
  local left = redis.call('PTTL', key)
  if left > 0 then redis.call('PEXPIRE', key, left) end
end
-- true and the (set, member) claimed for a fresh id; false for a duplicate
local function dedup_claim(w, token, legacy)
  local shard, member = string.sub(token, 1, 4), string.sub(token, 5)
  local key = w.before .. shard
  if redis.call('SISMEMBER', key, member) == 1 then
    dedup_touch(key)
    return false
  end
  if w.legacy and redis.call('EXISTS', legacy) == 1 then
    dedup_touch(legacy)
    return false
  end
  key = w.current .. shard
  if redis.call('SADD', key, member) == 0 then
    dedup_touch(key)
    return false
  end
  redis.call('PEXPIREAT', key, w.expiry)
  return true, {key, member}
end
"""

# The append every log script runs (_APPEND, _APPEND_HISTORY, _APPEND_SET): KEYS[1] = stream,
# KEYS[2..] = the legacy dedup keys of the records that carry an id, in order (see _DEDUP);
# ``ttl`` = dedup ttl in ms ('' = no dedup); per record, from A[first] on, ``stride`` apart:
# a flag ('1'/'0' = has an id, then the field of packed data, 'z' or 'x', else '-' for field
# 'd' (slotwise.proxy.state.packing), then for an id its dedup token: 4 hex digits of shard
# and the member), subject ('' = none), data. Returns each record's position ('' = a
# duplicate) and the index in KEYS after the dedup keys, or nil and the error reply.
#
# A is ARGV with its per-record arguments joined (:func:`_joined`): a script's first ``head``
# arguments as they are, then the lengths of the joined ones (4 bytes each, big-endian: Lua's
# ``struct`` reads them without making a string of each) and their bytes one after another.
# redis-py encodes each argument of a command in Python, about a microsecond each, which cost
# more than the script: a batch of 50 events had some 300.
#
# A Lua error does not undo the writes made before it, and a dedup id left for a record that
# was not stored loses that record for good (its resend counts as a duplicate). So the stream's
# type is checked before any write, and should an XADD still fail, the failing record's dedup
# id is removed again: every record before it is stored with its id, none after it is touched.
_APPEND_FUNCTION = (
    _DEDUP
    + """
local function unjoin(head)
  local out = {}
  for i = 1, head do out[i] = ARGV[i] end
  local sizes, blob, at = ARGV[head + 1], ARGV[head + 2], 1
  for j = 1, #sizes / 4 do
    local size = struct.unpack('>I4', sizes, 4 * j - 3)
    out[head + j] = string.sub(blob, at, at + size - 1)
    at = at + size
  end
  return out
end

local function append(A, ttl, n, first, stride)
  local kind = redis.call('TYPE', KEYS[1])['ok']
  if kind ~= 'stream' and kind ~= 'none' then
    local reason = 'WRONGTYPE ' .. KEYS[1] .. ' holds a ' .. kind .. ', not a stream'
    return nil, redis.error_reply(reason)
  end
  local window = nil
  if ttl ~= '' then window = dedup_window(tonumber(ttl)) end
  local out = {}
  local k = 2
  for i = 1, n do
    local a = first + stride * (i - 1)
    local fresh, claimed = true, nil
    local flag = A[a]
    local field = 'd'
    local packing = string.sub(flag, 2, 2)
    if packing ~= '-' then field = packing end
    if string.sub(flag, 1, 1) == '1' then
      if window then fresh, claimed = dedup_claim(window, string.sub(flag, 3), KEYS[k]) end
      k = k + 1
    end
    if fresh then
      local subject, data = A[a + 1], A[a + 2]
      local position
      if subject == '' then
        position = redis.pcall('XADD', KEYS[1], '*', field, data)
      else
        position = redis.pcall('XADD', KEYS[1], '*', 's', subject, field, data)
      end
      if type(position) == 'table' and position.err then
        if claimed then redis.call('SREM', claimed[1], claimed[2]) end
        return nil, position
      end
      out[i] = position
    else
      out[i] = ''
    end
  end
  return out, k
end
"""
)

# A[1] = dedup ttl in ms, A[2] = record count, then per record its three fields (joined)
_APPEND = (
    _APPEND_FUNCTION
    + """
local A = unjoin(2)
local out, k = append(A, A[1], tonumber(A[2]), 3, 3)
if out == nil then return k end
return out
"""
)

# log_append_with_history: the records, then each stored record's history item. KEYS after
# the dedup keys: the history keys. A[1] = dedup ttl, A[2] = record count, A[3] = bound,
# A[4] = history ttl in ms ('' = keep), then per record (joined): its three fields, the index
# of its history key among the history keys (0 = none), its item.
_APPEND_HISTORY = (
    _APPEND_FUNCTION
    + """
local A = unjoin(4)
local out, k = append(A, A[1], tonumber(A[2]), 5, 5)
if out == nil then return k end
local touched = {}
for i = 1, #out do
  local a = 5 + 5 * (i - 1)
  local h = tonumber(A[a + 3])
  if out[i] ~= '' and h > 0 then
    local key = KEYS[k + h - 1]
    redis.call('RPUSH', key, A[a + 4])
    touched[key] = true
  end
end
local bound, ttl = tonumber(A[3]), A[4]
for key in pairs(touched) do
  redis.call('LTRIM', key, -bound, -1)
  if ttl ~= '' then redis.call('PEXPIRE', key, ttl) end
end
return out
"""
)

# log_append_and_set: the records, then the values, then the sets' members. KEYS after the
# dedup keys: the value keys, then the set keys. A[1] = dedup ttl, A[2] = record count, A[3] =
# the values' ttl in ms ('' = keep), A[4] = value count, A[5] = set count, then (joined) per
# record its three fields, then the values, then per set its member count and members.
_APPEND_SET = (
    _APPEND_FUNCTION
    + """
local A = unjoin(5)
local n, nv, ns = tonumber(A[2]), tonumber(A[4]), tonumber(A[5])
local out, k = append(A, A[1], n, 6, 3)
if out == nil then return k end
local a = 6 + 3 * n
for i = 0, nv - 1 do
  if A[3] == '' then
    redis.call('SET', KEYS[k + i], A[a + i])
  else
    redis.call('SET', KEYS[k + i], A[a + i], 'PX', A[3])
  end
end
a = a + nv
for j = 0, ns - 1 do
  local c = tonumber(A[a])
  redis.call('SADD', KEYS[k + nv + j], unpack(A, a + 1, a + c))
  a = a + c + 1
end
return out
"""
)

_INCR = """
local existed = redis.call('EXISTS', KEYS[1])
local value = redis.call('INCRBY', KEYS[1], ARGV[1])
if existed == 0 and ARGV[2] ~= '' then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return value
"""

_SADD = """
local added = redis.call('SADD', KEYS[1], unpack(ARGV, 2))
if ARGV[1] ~= '' then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return added
"""

_HISTORY = """
redis.call('RPUSH', KEYS[1], unpack(ARGV, 3))
redis.call('LTRIM', KEYS[1], -tonumber(ARGV[1]), -1)
if ARGV[2] ~= '' then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 1
"""

# one batch of events touches many users' histories: one script for all of them (one command,
# one round trip; its keys are declared, so it is legal wherever they share a slot).
# ARGV[1] = bound, ARGV[2] = ttl in ms ('' = keep), then per key: its item count, its items
_HISTORY_MANY = """
local bound, ttl, a = tonumber(ARGV[1]), ARGV[2], 3
for i = 1, #KEYS do
  local n = tonumber(ARGV[a])
  redis.call('RPUSH', KEYS[i], unpack(ARGV, a + 1, a + n))
  a = a + n + 1
  redis.call('LTRIM', KEYS[i], -bound, -1)
  if ttl ~= '' then redis.call('PEXPIRE', KEYS[i], ttl) end
end
return #KEYS
"""

_HISTORIES = """
local out = {}
for i = 1, #KEYS do out[i] = redis.call('LRANGE', KEYS[i], 0, -1) end
return out
"""

# ARGV[1] = ttl in ms ('' = keep for good), then one value per key
_SET_MANY = """
for i = 1, #KEYS do
  if ARGV[1] == '' then
    redis.call('SET', KEYS[i], ARGV[i + 1])
  else
    redis.call('SET', KEYS[i], ARGV[i + 1], 'PX', ARGV[1])
  end
end
return #KEYS
"""

# ARGV[1] = bound, ARGV[2] = ttl in ms ('' = keep), then member, increment pairs
_SCORES = """
for i = 3, #ARGV, 2 do redis.call('ZINCRBY', KEYS[1], ARGV[i + 1], ARGV[i]) end
local bound = tonumber(ARGV[1])
if redis.call('ZCARD', KEYS[1]) > bound then
  redis.call('ZREMRANGEBYRANK', KEYS[1], 0, -bound - 1)
end
if ARGV[2] ~= '' then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 1
"""

_ITEM = msgspec.msgpack.Encoder()
_ITEM_DECODE = msgspec.msgpack.Decoder(tuple[int | str, float, bytes])
# Append only, never reorder: a stored history item names a built-in event type by its index
# here (slotwise.proxy.events.schema's types of 2026-12-06), any other by its name. Items
# written before issue 22 name every event; both read alike.
EVENT_NAMES: Final[tuple[str, ...]] = (
    "impression", "click", "conversion", "page_view", "product_view", "add_to_cart",
    "remove_from_cart", "search", "price_check", "price_drop", "purchase", "session_start",
)  # fmt: skip
_EVENT_CODES: Final = {name: code for code, name in enumerate(EVENT_NAMES)}


def _item(item: HistoryItem) -> bytes:
    """One history item as the store keeps it: ``[event, at, data]``, the event coded."""
    return _ITEM.encode((_EVENT_CODES.get(item.event, item.event), item.at, bytes(item.data)))


def _items(decoded: Iterable[tuple[int | str, float, bytes]], since: float) -> list[HistoryItem]:
    out = []
    for event, at, data in decoded:
        if at < since:
            continue
        if type(event) is int:
            if not 0 <= event < len(EVENT_NAMES):
                # written by a later version (a rollback): not guessed, left out
                _log.debug("history item with event number %d left out", event)
                continue
            event = EVENT_NAMES[event]
        out.append(HistoryItem(event, at, data))  # type: ignore[arg-type]  # a str by now
    return out


def _history_items(raw: list[bytes], since: float) -> list[HistoryItem]:
    """A history's list as stored: its items, the event a number or a name (either way)."""
    return _items(map(_ITEM_DECODE.decode, raw), since)


def _ms(seconds: float | None) -> str:
    return "" if seconds is None else str(max(1, int(seconds * 1000)))


def _stream_key(log: str) -> str:
    return f"log:{{{escape_key_part(log)}}}"


def _entry(position: bytes | str, fields: dict[bytes, bytes]) -> LogEntry:
    subject = fields.get(b"s")
    pos = position.decode() if isinstance(position, bytes) else position
    data = fields.get(b"d")
    if data is None:
        if (packed := fields.get(b"z")) is not None:
            data = _unpacked(pos, packed, unpack)
        elif (packed := fields.get(b"x")) is not None:
            data = _unpacked(pos, packed, unpack_tokens)
        else:
            data = b""
    return LogEntry(pos, data, subject.decode() if subject else None)


def _unpacked(position: str, packed: bytes, unpacking: Callable[[bytes], bytes]) -> bytes:
    try:
        return unpacking(packed)
    except zlib.error as exc:
        # handed on as it is: the log's reader counts a record it cannot decode (as it would
        # a damaged 'd') rather than stopping at it
        _log.warning("log entry %s: its packed data does not unpack (%s)", position, exc)
        return packed


class RedisStore(Store):
    """One Redis server (or a Cluster, with ``cluster=True``)."""

    def __init__(
        self,
        nodes: Sequence[tuple[str, int]],
        *,
        db: int = 0,
        cluster: bool = False,
        timeout: float = 0.05,
        write_timeout: float = 2.0,
        password: str | None = None,
        username: str | None = None,
        wait_replicas: int = 0,
        wait_timeout: float = 0.5,
        archive: str | None = None,
        archive_after: float = ARCHIVE_AFTER,
    ) -> None:
        if not nodes:
            raise StoreConfigError("redis URL needs host:port")
        if cluster and db != 0:
            raise StoreConfigError("Redis Cluster has only database 0")
        self.scheme = "redis+cluster" if cluster else "redis"
        self.durable = False
        self._nodes = list(nodes)
        self._db = db
        self._cluster = cluster
        self._timeout = timeout
        self._write_timeout = write_timeout
        self._auth = {"password": password, "username": username}
        self._fast: Any = None
        self._slow: Any = None
        self._scripts: dict[str, AsyncScript] = {}
        self._wait_replicas = wait_replicas
        self._wait_timeout = wait_timeout
        # cluster + wait_replicas: one plain client per primary, so that the append and its
        # WAIT go down one connection (the cluster client may route them apart)
        self._primaries: dict[tuple[str, int], aioredis.Redis] = {}
        self._stale_slots = False
        self._refresh = asyncio.Lock()
        self._archive = LogArchive(archive) if archive else None
        self._archive_after = archive_after

    def _client(self, timeout: float, retries: int) -> Any:
        common: dict[str, Any] = {
            "socket_timeout": timeout,
            "socket_connect_timeout": timeout,
            "retry": Retry(NoBackoff(), retries),
            **self._auth,
        }
        if self._cluster:
            return RedisCluster(
                startup_nodes=[ClusterNode(h, p) for h, p in self._nodes],
                **common,
            )
        host, port = self._nodes[0]
        return aioredis.Redis(host=host, port=port, db=self._db, **common)

    async def start(self) -> None:
        if self._fast is not None:
            return
        if self._archive is not None:
            await asyncio.to_thread(self._archive.open)
        self._fast = self._client(self._timeout, 1)
        self._slow = self._client(self._write_timeout, 0)
        for name, source in (("append", _APPEND), ("incr", _INCR), ("sadd", _SADD)):
            self._scripts[name] = self._slow.register_script(source)
        self._scripts["history"] = self._slow.register_script(_HISTORY)
        self._scripts["scores"] = self._slow.register_script(_SCORES)
        for name, source in (
            ("history_many", _HISTORY_MANY),
            ("histories", _HISTORIES),
            ("set_many", _SET_MANY),
            ("append_history", _APPEND_HISTORY),
            ("append_set", _APPEND_SET),
        ):
            self._scripts[name] = self._slow.register_script(source)
        try:
            if self._cluster:
                await self._slow.initialize()
            await self._slow.ping()
        except _FAILURES as exc:
            await self.close()
            raise self._start_failure(exc) from exc
        self.durable = await self._check_durability()

    def _start_failure(self, exc: BaseException) -> StoreError:
        """What went wrong at start, said in terms of the URL where the URL is the cause."""
        where = self._where()
        for cause in _causes(exc):
            if isinstance(cause, redis.exceptions.AuthenticationError):
                given = "" if self._auth["password"] else "the URL gives no password; "
                return StoreConfigError(
                    f"redis at {where}: authentication failed: check the user and password in"
                    f" the URL ({given}redis said: {cause})"
                )
            if "DB index is out of range" in str(cause):
                return StoreConfigError(
                    f"redis at {where}: database {self._db} is out of range (the /N part of the"
                    " URL): use a number below the server's `databases` setting (16 by default)"
                )
        reason = str(exc).removeprefix(_CLUSTER_PREFIX)
        if "Cluster mode is not enabled" in reason:
            reason += "; for a single redis server write redis:// instead of redis+cluster://"
        kind = "redis cluster" if self._cluster else "redis"
        return StoreUnavailable(f"cannot reach {kind} at {where}: {reason}")

    async def _check_durability(self) -> bool:
        try:
            config = await self._slow.config_get("append*")
        except _FAILURES:
            return False  # managed Redis often forbids CONFIG; say so in the warning below
        if self._cluster:  # {node: {...}}: every master must be durable
            configs = (
                list(config.values())
                if config and isinstance(next(iter(config.values())), dict)
                else [config]
            )
        else:
            configs = [config]
        durable = all(
            _text(c.get(b"appendonly", c.get("appendonly"))) == "yes"
            and _text(c.get(b"appendfsync", c.get("appendfsync"))) == "always"
            for c in configs
        )
        if not durable:
            _log.warning(
                "redis at %s does not run appendonly yes + appendfsync always: acknowledged "
                "events can be lost if the redis server crashes",
                self._where(),
            )
        return durable

    def _where(self) -> str:
        return ",".join(f"[{h}]:{p}" if ":" in h else f"{h}:{p}" for h, p in self._nodes)

    async def close(self) -> None:
        primaries, self._primaries = list(self._primaries.values()), {}
        for client in (self._fast, self._slow, *primaries):
            if client is not None:
                try:
                    await client.aclose()
                except _FAILURES:
                    pass
        self._fast = self._slow = None

    async def _call(self, operation: Awaitable[T]) -> T:
        try:
            return await operation
        except _FAILURES as exc:
            raise self._failure(exc) from exc

    async def _write(self, operation: Awaitable[T]) -> T:
        """``_call`` for a write: one that timed out after it was sent may still be applied."""
        try:
            return await operation
        except _FAILURES as exc:
            raise self._failure(exc, write=True) from exc

    def _failure(self, exc: BaseException, *, write: bool = False) -> StoreUnavailable:
        if write and _maybe_applied(exc):
            return StoreWriteUncertain(
                f"redis at {self._where()} did not confirm a write within write_timeout"
                f" ({self._write_timeout:g} s): {exc}; the write may still complete"
                " (resending a log append is safe: record ids deduplicate)"
            )
        return StoreUnavailable(f"redis at {self._where()} failed: {exc}")

    def _ready(self, client: Any) -> Any:
        if client is None:
            raise StoreUnavailable("the state store is not started")
        return client

    async def ping(self) -> None:
        await self._call(self._ready(self._fast).ping())

    # -- values ---------------------------------------------------------------------------

    async def get(self, key: str) -> bytes | None:
        value: bytes | None = await self._call(self._ready(self._fast).get(key))
        return value

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        if not keys:
            return []
        client = self._ready(self._fast)
        if self._cluster:
            values = await self._call(client.mget_nonatomic(list(keys)))
        else:
            values = await self._call(client.mget(list(keys)))
        return list(values)

    async def set(self, key: str, value: bytes, *, ttl: float | None = None) -> None:
        px = int(_ms(ttl)) if ttl is not None else None
        await self._write(self._ready(self._slow).set(key, value, px=px))

    async def set_many(
        self, values: Sequence[tuple[str, bytes]], *, ttl: float | None = None
    ) -> None:
        if not values:
            return
        if self._cluster:  # keys on different slots: one call per key
            await asyncio.gather(*(self.set(key, value, ttl=ttl) for key, value in values))
            return
        self._ready(self._slow)
        keys = [key for key, _ in values]
        args: list[Any] = [_ms(ttl), *(value for _, value in values)]
        await self._write(self._scripts["set_many"](keys=keys, args=args))

    async def set_if_absent(self, key: str, value: bytes, *, ttl: float | None = None) -> bool:
        px = int(_ms(ttl)) if ttl is not None else None
        return bool(await self._write(self._ready(self._slow).set(key, value, px=px, nx=True)))

    async def delete(self, *keys: str) -> int:
        client = self._ready(self._slow)
        total = 0
        for key in keys:  # one key per call: keys may live on different cluster slots
            total += int(await self._write(client.delete(key)))
        return total

    async def incr(self, key: str, amount: int = 1, *, ttl: float | None = None) -> int:
        self._ready(self._slow)
        script = self._scripts["incr"]
        return int(await self._write(script(keys=[key], args=[amount, _ms(ttl)])))

    async def counter(self, key: str) -> int:
        raw = await self.get(key)
        return int(raw) if raw is not None else 0

    # -- sets -----------------------------------------------------------------------------

    async def set_add(self, key: str, *members: bytes, ttl: float | None = None) -> int:
        if not members:
            return 0
        self._ready(self._slow)
        script = self._scripts["sadd"]
        return int(await self._write(script(keys=[key], args=[_ms(ttl), *members])))

    async def set_remove(self, key: str, *members: bytes) -> int:
        if not members:
            return 0
        return int(await self._write(self._ready(self._slow).srem(key, *members)))

    async def set_members(self, key: str) -> frozenset[bytes]:
        return frozenset(await self._call(self._ready(self._fast).smembers(key)))

    async def set_contains(self, key: str, member: bytes) -> bool:
        return bool(await self._call(self._ready(self._fast).sismember(key, member)))

    # -- histories ------------------------------------------------------------------------

    async def history_append(
        self, key: str, items: Iterable[HistoryItem], *, max_len: int, ttl: float | None = None
    ) -> None:
        encoded = [_item(i) for i in items]
        if max_len <= 0:
            await self.delete(key)
            return
        if not encoded:
            return
        self._ready(self._slow)
        script = self._scripts["history"]
        await self._write(script(keys=[key], args=[max_len, _ms(ttl), *encoded]))

    async def history_append_many(
        self,
        appends: Sequence[tuple[str, Sequence[HistoryItem]]],
        *,
        max_len: int,
        ttl: float | None = None,
    ) -> None:
        appends = [(key, items) for key, items in appends if items]
        if self._cluster or max_len <= 0:  # keys on different slots: one call per key
            await asyncio.gather(
                *(self.history_append(k, items, max_len=max_len, ttl=ttl) for k, items in appends)
            )
            return
        if not appends:
            return
        self._ready(self._slow)
        args: list[Any] = [max_len, _ms(ttl)]
        for _, items in appends:
            args.append(len(items))
            args += [_item(i) for i in items]
        keys = [key for key, _ in appends]
        await self._write(self._scripts["history_many"](keys=keys, args=args))

    async def history(self, key: str, *, since: float = 0.0) -> list[HistoryItem]:
        raw = await self._call(self._ready(self._fast).lrange(key, 0, -1))
        return _history_items(raw, since)

    async def histories(
        self, keys: Sequence[str], *, since: float = 0.0
    ) -> list[list[HistoryItem]]:
        if not keys:
            return []
        fast = self._ready(self._fast)
        if self._cluster:  # keys on different slots: concurrent calls, not one script
            return list(await asyncio.gather(*(self.history(k, since=since) for k in keys)))
        replies = await self._call(self._scripts["histories"](keys=list(keys), client=fast))
        return [_history_items(raw, since) for raw in replies]

    # -- scored sets ----------------------------------------------------------------------

    async def scores_add(
        self,
        key: str,
        increments: Mapping[bytes, float],
        *,
        max_len: int,
        ttl: float | None = None,
    ) -> None:
        if max_len <= 0:
            await self.delete(key)
            return
        if not increments:
            return
        args: list[Any] = [max_len, _ms(ttl)]
        for member, amount in increments.items():
            args += [bytes(member), repr(float(amount))]
        self._ready(self._slow)
        await self._write(self._scripts["scores"](keys=[key], args=args))

    async def scores_top(self, keys: Sequence[str], count: int) -> list[list[tuple[bytes, float]]]:
        if not keys or count <= 0:
            return [[] for _ in keys]
        client = self._ready(self._fast)
        if self._cluster:  # keys on different slots: concurrent calls, not one pipeline
            calls = [client.zrevrange(k, 0, count - 1, withscores=True) for k in keys]
            replies = await self._call(asyncio.gather(*calls))
        else:
            pipe = client.pipeline(transaction=False)
            for key in keys:
                pipe.zrevrange(key, 0, count - 1, withscores=True)
            replies = await self._call(pipe.execute())
        return [[(bytes(m), float(v)) for m, v in reply] for reply in replies]

    # -- logs -----------------------------------------------------------------------------

    async def log_append(
        self, log: str, records: Sequence[LogRecord], *, dedup_ttl: float | None = None
    ) -> list[str | None]:
        if not records:
            return []
        self._ready(self._slow)
        keys, fields = _append_keys(log, records)
        joined = [field for record in fields for field in record]
        args: list[Any] = [_ms(dedup_ttl), len(records), *_joined(joined)]
        if self._wait_replicas:
            result = await self._append_replicated(keys, args)
        else:
            result = await self._write(self._scripts["append"](keys=keys, args=args))
        return [_text(p) or None for p in result]

    async def _append_replicated(self, keys: list[str], args: list[Any]) -> Any:
        """The append script and ``WAIT`` in one pipeline: one connection, one round trip."""
        client = await self._primary_for(keys[0]) if self._cluster else self._slow
        sha = self._scripts["append"].sha
        try:
            try:
                result, replicas = await self._evalsha_wait(client, sha, keys, args)
            except redis.exceptions.NoScriptError:  # nothing ran: load it there, once
                await client.script_load(_APPEND)
                result, replicas = await self._evalsha_wait(client, sha, keys, args)
        except _FAILURES as exc:
            # a failover moved the slot (MOVED, READONLY, CLUSTERDOWN) or took the primary:
            # look the slots up again before the next append
            self._stale_slots = self._cluster
            raise self._failure(exc, write=True) from exc
        if int(replicas) < self._wait_replicas:
            raise StoreWriteUncertain(
                f"redis at {self._where()}: the append is on the primary but {int(replicas)} of"
                f" {self._wait_replicas} replica(s) confirmed it within wait_timeout"
                f" ({self._wait_timeout:g} s), so a failover could lose it (resending is safe:"
                " record ids deduplicate)"
            )
        return result

    async def _evalsha_wait(
        self, client: Any, sha: str, keys: list[str], args: list[Any]
    ) -> list[Any]:
        # not the registered script's pipeline support: that checks SCRIPT EXISTS first, one
        # more round trip per append
        pipe = client.pipeline(transaction=False)
        pipe.evalsha(sha, len(keys), *keys, *args)
        pipe.wait(self._wait_replicas, int(self._wait_timeout * 1000))
        return list(await pipe.execute())

    async def _primary_for(self, key: str) -> Any:
        """A plain client of the primary that serves ``key``'s slot now."""
        if self._stale_slots:
            async with self._refresh:
                if self._stale_slots:
                    await self._call(self._slow.nodes_manager.initialize())
                    self._stale_slots = False
        try:
            node = self._slow.get_node_from_key(key)
        except _FAILURES as exc:
            self._stale_slots = True
            raise self._failure(exc) from exc
        address = (node.host, int(node.port))
        client = self._primaries.get(address)
        if client is None:
            settings: dict[str, Any] = {
                "socket_timeout": self._write_timeout,
                "socket_connect_timeout": self._write_timeout,
                "retry": Retry(NoBackoff(), 0),
                **self._auth,
            }
            client = self._primaries[address] = aioredis.Redis(
                host=address[0], port=address[1], **settings
            )
        return client

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
        # cluster: keys on different slots; replicas awaited: the log append is what WAIT covers
        if self._cluster or self._wait_replicas or max_len <= 0 or not records:
            return await super().log_append_with_history(
                log, records, history, dedup_ttl=dedup_ttl, max_len=max_len, ttl=ttl
            )
        if len(history) != len(records):
            raise ValueError("one history entry (or None) per record")
        self._ready(self._slow)
        keys, fields = _append_keys(log, records)
        slots: dict[str, int] = {}  # history key -> its index among the history keys
        joined: list[bytes] = []
        for record, entry in zip(fields, history, strict=True):
            joined += record
            if entry is None:
                joined += (b"0", b"")
                continue
            key, item = entry
            joined += (
                b"%d" % slots.setdefault(key, len(slots) + 1),
                _item(item),
            )
        args: list[Any] = [_ms(dedup_ttl), len(records), max_len, _ms(ttl), *_joined(joined)]
        keys += slots
        result = await self._write(self._scripts["append_history"](keys=keys, args=args))
        return [_text(p) or None for p in result]

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
        # cluster (keys on different slots) or replicas awaited: the calls in order
        if self._cluster or self._wait_replicas:
            return await super().log_append_and_set(
                log, records, dedup_ttl=dedup_ttl, values=values, ttl=ttl, members=members
            )
        self._ready(self._slow)
        keys, fields = _append_keys(log, records)
        sets = [(key, added) for key, added in members if added]
        joined: list[bytes] = [field for record in fields for field in record]
        joined += [bytes(value) for _, value in values]
        for _, added in sets:
            joined.append(b"%d" % len(added))
            joined += [bytes(member) for member in added]
        args: list[Any] = [_ms(dedup_ttl), len(records), _ms(ttl), len(values), len(sets)]
        args += _joined(joined)
        keys += [key for key, _ in values]
        keys += [key for key, _ in sets]
        result = await self._write(self._scripts["append_set"](keys=keys, args=args))
        return [_text(p) or None for p in result]

    async def log_read(self, log: str, *, after: str = "0", count: int = 100) -> list[LogEntry]:
        archive = self._archive
        if archive is None or not archive.holds(log):
            return await self._xrange(log, after, count)
        since = parse_id(after)
        archived, last = await _on_disk(archive.read, log, since, count)
        if last is None or len(archived) >= count:
            return archived or await self._xrange(log, after, count)
        # what Redis still holds of the archived part (a pass stopped between writing a
        # segment and trimming the stream) was read from the archive already
        newer = after if since > last else format_id(last)
        return archived + await self._xrange(log, newer, count - len(archived))

    async def _xrange(self, log: str, after: str, count: int) -> list[LogEntry]:
        client = self._ready(self._slow)
        rows = await self._call(client.xrange(_stream_key(log), _after(after), "+", count=count))
        return [_entry(pos, fields) for pos, fields in rows]

    async def log_length(self, log: str) -> int:
        client = self._ready(self._slow)
        held = int(await self._call(client.xlen(_stream_key(log))))
        archive = self._archive
        if archive is None or not archive.holds(log):
            return held
        archived, last = await _on_disk(_length_and_last, archive, log)
        if last is None:
            return held
        both = await self._call(client.xrange(_stream_key(log), "-", format_id(last)))
        return archived + held - len(both)

    async def log_group_read(
        self, log: str, group: str, consumer: str, *, count: int = 100, pending: bool = False
    ) -> list[LogEntry]:
        client = self._ready(self._slow)
        stream = _stream_key(log)
        read = client.xreadgroup(group, consumer, {stream: "0" if pending else ">"}, count=count)
        try:
            reply = await read
        except redis.exceptions.ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise self._failure(exc) from exc
            await self._create_group(stream, group)
            reply = await self._call(
                client.xreadgroup(group, consumer, {stream: "0" if pending else ">"}, count=count)
            )
        except _FAILURES as exc:
            raise self._failure(exc) from exc
        entries: list[LogEntry] = []
        for _stream, rows in _stream_rows(reply):
            # a pending entry deleted meanwhile (trim, erasure) comes back without fields
            entries.extend(_entry(pos, fields) for pos, fields in rows if fields)
        return entries

    async def _create_group(self, stream: str, group: str) -> None:
        try:
            await self._ready(self._slow).xgroup_create(stream, group, id="0", mkstream=True)
        except redis.exceptions.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise self._failure(exc) from exc
        except _FAILURES as exc:
            raise self._failure(exc) from exc

    async def log_ack(self, log: str, group: str, positions: Sequence[str]) -> int:
        if not positions:
            return 0
        client = self._ready(self._slow)
        try:
            return int(await client.xack(_stream_key(log), group, *positions))
        except redis.exceptions.ResponseError:
            return 0  # unknown group: nothing was pending
        except _FAILURES as exc:
            raise self._failure(exc) from exc

    async def log_trim(self, log: str, *, before: float) -> int:
        client = self._ready(self._slow)
        minid = f"{int(before * 1000)}-0"
        trimmed = int(
            await self._write(client.xtrim(_stream_key(log), minid=minid, approximate=False))
        )
        archive = self._archive
        if archive is not None and archive.holds(log):
            async with self._archive_lock(archive, log, wait=_LOCK_WAIT):
                trimmed += await _on_disk(archive.trim, log, parse_id(minid))
        return trimmed

    async def log_erase(self, log: str, subject: str) -> int:
        archive = self._archive
        if archive is None:
            return await self._erase_stream(log, subject)
        # under the archive's lock, so that a pass cannot move the subject's entries out of
        # Redis between the two halves and keep them
        async with self._archive_lock(archive, log, wait=_LOCK_WAIT):
            erased = await self._erase_stream(log, subject)
            return erased + await _on_disk(archive.erase, log, subject)

    async def log_archive(self, log: str) -> int:
        archive = self._archive
        if archive is None:
            return 0
        async with self._archive_lock(archive, log, wait=0.0, busy_ok=True) as held:
            if not held:
                return 0  # another process's pass is moving this log now
            limit = await self._archive_limit(log)
            if limit is None:
                return 0
            last = await _on_disk(archive.last, log)
            after = format_id(last) if last is not None else "0"
            client = self._ready(self._slow)
            stream = _stream_key(log)
            moved = 0
            end = f"({format_id(limit)}"
            while True:
                rows = await self._call(
                    client.xrange(stream, _after(after), end, count=SEGMENT_ENTRIES)
                )
                if not rows:
                    return moved
                entries = [_entry(pos, fields) for pos, fields in rows]
                await _on_disk(archive.append, log, _rows(entries))
                after = entries[-1].position
                # Redis frees what the segment now holds (and what an interrupted pass left)
                ms, seq = parse_id(after)
                minid = format_id((ms, seq + 1))
                await self._write(client.xtrim(stream, minid=minid, approximate=False))
                moved += len(entries)

    async def _archive_limit(self, log: str) -> Id | None:
        """The first id not to archive: an hour back, and nothing a group has yet to ack."""
        # the millisecond of "archive_after ago" included: with archive_after=0, everything
        limit: Id = (int((time.time() - self._archive_after) * 1000) + 1, 0)
        client = self._ready(self._slow)
        stream = _stream_key(log)
        try:
            groups = await client.xinfo_groups(stream)
        except redis.exceptions.ResponseError:
            return None  # no such log yet
        except _FAILURES as exc:
            raise self._failure(exc) from exc
        for group in groups:
            name = _text(group["name"])
            delivered = parse_id(_text(group["last-delivered-id"]))
            mine: Id = (delivered[0], delivered[1] + 1)
            if int(group["pending"]):
                summary = await self._call(client.xpending(stream, name))
                mine = min(mine, parse_id(_text(summary["min"])))
            if mine < limit:
                # a day behind is a group nobody reads any more, or a consumer that is down:
                # Redis keeps growing until it catches up or is removed
                stale = mine[0] < limit[0] - 86_400_000
                _log.log(
                    logging.WARNING if stale else logging.INFO,
                    "log %s: consumer group %s has not acknowledged entries since %s; they and"
                    " what follows stay in redis until it does (XGROUP DESTROY a group no longer"
                    " used)",
                    log,
                    name,
                    format_id(mine),
                )
            limit = min(limit, mine)
        return limit

    @contextlib.asynccontextmanager
    async def _archive_lock(
        self, archive: LogArchive, log: str, *, wait: float, busy_ok: bool = False
    ) -> AsyncIterator[bool]:
        fd = await _on_disk(archive.acquire, log, wait)
        if fd is None and not busy_ok:
            raise StoreUnavailable(
                f"log {log}: the archive's lock ({archive.directory}) stayed held for {wait:g} s;"
                " another slotwise process is moving or rewriting it: try again later"
            )
        try:
            yield fd is not None
        finally:
            if fd is not None:
                archive.release(fd)

    async def _erase_stream(self, log: str, subject: str) -> int:
        client = self._ready(self._slow)
        stream = _stream_key(log)
        wanted = subject.encode()
        erased = 0
        start = "-"
        while True:
            rows = await self._call(client.xrange(stream, start, "+", count=1000))
            if not rows:
                return erased
            doomed = [pos for pos, fields in rows if fields.get(b"s") == wanted]
            if doomed:
                erased += int(await self._write(client.xdel(stream, *doomed)))
            start = f"({_text(rows[-1][0])}"

    async def erase_subject(self, subject: str) -> int:
        client = self._ready(self._slow)
        pattern = subject_prefix(subject) + "*"
        try:
            keys = [k async for k in client.scan_iter(match=pattern, count=500)]
        except _FAILURES as exc:
            raise self._failure(exc) from exc
        return await self.delete(*(_text(k) for k in keys))


def _after(position: str) -> str:
    """XRANGE's start for the entries after ``position`` ("0": from the first)."""
    return "-" if position in ("0", "0-0") else f"({position}"


async def _on_disk(work: Callable[..., T], *args: Any) -> T:
    """``work`` on the archive's files, in a thread; an I/O error is the store's."""
    try:
        return await asyncio.to_thread(work, *args)
    except OSError as exc:
        raise StoreUnavailable(
            f"log archive: {exc.strerror or exc} ({exc.filename or 'the archive directory'})"
        ) from exc


def _rows(entries: Sequence[LogEntry]) -> list[tuple[int, int, str | None, bytes]]:
    return [(*parse_id(e.position), e.subject, e.data) for e in entries]


def _length_and_last(archive: LogArchive, log: str) -> tuple[int, Id | None]:
    return archive.length(log), archive.last(log)


def _append_keys(
    log: str, records: Sequence[LogRecord]
) -> tuple[list[str], list[tuple[bytes, bytes, bytes]]]:
    """The append scripts' keys (the stream, the legacy dedup keys) and each record's fields."""
    stream = _stream_key(log)
    keys = [stream]
    fields = []
    for record in records:
        data = bytes(record.data)
        packed = pack_entry(data)
        flag = _FLAGS[record.id is not None, b"-" if packed is None else packed[0]]
        if record.id is not None:
            keys.append(f"{stream}:d:{escape_key_part(record.id)}")
            flag += _dedup_token(record.id).encode()
        subject = record.subject.encode() if record.subject else b""
        fields.append((flag, subject, data if packed is None else packed[1]))
    return keys, fields


def _dedup_token(record_id: str) -> str:
    """The id's dedup token (see _DEDUP): its set's shard, 4 hex digits (14 bits), then the
    member, 63 bits of its hash in decimal (an integer: the set stays an intset). Two ids of a
    log remembered together (up to two windows) are taken for one only when all 77 bits agree:
    at 100 million ids a day, about once in 10,000 years."""
    digest = hashlib.blake2b(record_id.encode(), digest_size=10).digest()
    shard = int.from_bytes(digest[:2], "big") >> 2
    return f"{shard:04x}{int.from_bytes(digest[2:], 'big') >> 1}"


# a record's flag: has an id ('1'/'0'), then the field of its packed data ('z' or 'x',
# slotwise.proxy.state.packing), else '-' (field 'd') (the dedup token follows for an id:
# _DEDUP reads it from the third byte)
_FLAGS: dict[tuple[bool, bytes], bytes] = {
    (has_id, field): (b"1" if has_id else b"0") + field
    for has_id in (True, False)
    for field in (b"z", b"x", b"-")
}


def _joined(fields: Sequence[bytes]) -> tuple[bytes, bytes]:
    """A script's per-record arguments as two: their lengths and their bytes (``unjoin``)."""
    return struct.pack(f">{len(fields)}I", *map(len, fields)), b"".join(fields)


def _causes(exc: BaseException) -> list[BaseException]:
    """``exc`` and what it wraps: redis-py's cluster start-up hides the node's own error."""
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in chain:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


def _maybe_applied(exc: BaseException) -> bool:
    """Whether a write that raised ``exc`` may have reached the server and run there.

    A server's error reply (ResponseError) means it did not run (scripts check before they
    write); failing to connect means it was never sent. Any other time-out or lost
    connection happened after sending, as far as we can tell: the server may still apply it.
    """
    if isinstance(exc, redis.exceptions.ResponseError):
        return False
    if isinstance(exc, (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)):
        return "connecting to" not in str(exc).lower()
    return isinstance(exc, (TimeoutError, OSError))


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode()
    return "" if value is None else str(value)


def _stream_rows(reply: Any) -> list[tuple[Any, list[tuple[bytes, dict[bytes, bytes]]]]]:
    if isinstance(reply, dict):  # RESP3 shape
        return [(k, v[0] if v and isinstance(v[0], list) else v) for k, v in reply.items()]
    return list(reply or [])
