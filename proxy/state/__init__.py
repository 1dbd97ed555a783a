"""The state store: one async interface, backends chosen by URL.

Open a store with :func:`open_store` and keep it in the app lifespan::

    async with open_store("sqlite:///var/slotwise/state.db") as store:
        await store.set("k", b"v", ttl=60)

Backends (``SCHEMES``): ``memory://`` (tests), ``sqlite:///path`` (embedded durable default:
WAL + group commit, survives ``kill -9``), ``redis://host:port/db`` and
``redis+cluster://host:port,...`` (many processes and machines; logs are Redis Streams).

The interface (:class:`Store`), every method async and raising :class:`StoreUnavailable` when
the backend cannot answer in time (:class:`StoreWriteUncertain`, a kind of it, when a write was
sent but not confirmed in time: it may still complete):

- values with TTL: ``get``, ``get_many``, ``set``, ``set_if_absent``, ``delete``
- counters: ``incr(key, amount, ttl=)`` (TTL set on creation: a fixed window), ``counter``
- sets: ``set_add``, ``set_remove``, ``set_members``, ``set_contains``
- bounded per-user histories: ``history_append(key, items, max_len=, ttl=)``, ``history``
  (items are :class:`HistoryItem`; :class:`StoredHistory` adapts them to the DSL's
  ``EventHistory``)
- scored sets (bounded leaderboards: trending counts, item neighbours):
  ``scores_add(key, {member: increment}, max_len=, ttl=)`` keeps the ``max_len`` highest,
  ``scores_top(keys, count)`` reads several in one round trip
- append-only logs: ``log_append(log, records, dedup_ttl=)`` (durable, atomic, deduplicated by
  record id), ``log_read(log, after=, count=)``, ``log_length``, consumer groups
  ``log_group_read(log, group, consumer, count=, pending=)`` + ``log_ack``, retention
  ``log_trim(log, before=)``, erasure ``log_erase(log, subject)``
- erasure of per-user keys: ``erase_subject(subject)`` deletes every ``subject_key(subject, _)``

Per-user keys must be built with :func:`subject_key` so erasure finds them.
"""

from slotwise.proxy.state.base import (
    HistoryItem,
    LogEntry,
    LogRecord,
    Store,
    StoreConfigError,
    StoreError,
    StoreUnavailable,
    StoreWriteUncertain,
    subject_key,
)
from slotwise.proxy.state.history import StoredHistory
from slotwise.proxy.state.urls import SCHEMES, open_store, redact

__all__ = [
    "SCHEMES",
    "HistoryItem",
    "LogEntry",
    "LogRecord",
    "Store",
    "StoreConfigError",
    "StoreError",
    "StoreUnavailable",
    "StoreWriteUncertain",
    "StoredHistory",
    "open_store",
    "redact",
    "subject_key",
]
