"""Faults to inject into real components: a store outage switch in front of a real backend.

:class:`OutageStore` forwards every call to the real store it wraps (memory, SQLite, Redis).
While ``down`` is set every call fails with ``StoreUnavailable`` before reaching it, as a lost
connection does. With ``uncertain`` set, a write reaches the store and lands, and the caller is
told ``StoreWriteUncertain`` (a write whose acknowledgement timed out: the SQLite writer runs
it anyway, a Redis server applies it).
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any

from slotwise.proxy.state import Store, StoreUnavailable, StoreWriteUncertain

_WRITES = frozenset(
    {"set", "set_if_absent", "delete", "incr", "set_add", "set_remove", "history_append",
     "log_append", "log_ack", "log_trim", "log_erase", "erase_subject", "set_many",
     "history_append_many", "log_append_with_history", "log_append_and_set"}
)  # fmt: skip


class OutageStore:
    """A real store behind a switch (duck-typed: it is a Store to everything that uses one)."""

    def __init__(self, inner: Store) -> None:
        self.inner = inner
        self.down = False
        self.uncertain = False
        self.failed = 0

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.inner, name)
        if not inspect.iscoroutinefunction(attr):
            return attr
        return self._switched(name, attr)

    def _switched(self, name: str, call: Callable[..., Awaitable[Any]]) -> Any:
        async def switched(*args: Any, **kwargs: Any) -> Any:
            if self.down:
                self.failed += 1
                raise StoreUnavailable(f"injected outage ({name})")
            result = await call(*args, **kwargs)
            if self.uncertain and name in _WRITES:
                self.failed += 1
                raise StoreWriteUncertain(f"injected: {name} landed but was not acknowledged")
            return result

        return switched
