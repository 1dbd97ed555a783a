"""A bounded TTL cache for provider results, keyed by :meth:`Provider.cache_key`.

Only the event loop thread touches it (no lock). Expired entries are dropped when read; when
full, the oldest-inserted entry goes first, which for equal TTLs is also the first to expire.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable

from slotwise.types import Signals


class TTLCache:
    """Signals per key, each kept for ``ttl`` seconds; at most ``max_entries`` keys."""

    __slots__ = ("ttl", "max_entries", "_entries")

    def __init__(self, ttl: float, max_entries: int = 10_000) -> None:
        if ttl <= 0:
            raise ValueError("ttl must be positive")
        self.ttl = ttl
        self.max_entries = max_entries
        self._entries: OrderedDict[Hashable, tuple[float, Signals]] = OrderedDict()

    def get(self, key: Hashable, now: float) -> Signals | None:
        """The cached signals of ``key`` if still fresh at ``now`` (monotonic seconds)."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        expires, signals = entry
        if expires <= now:
            del self._entries[key]
            return None
        return signals

    def put(self, key: Hashable, signals: Signals, now: float) -> None:
        """Remember ``signals`` for ``key`` until ``now + ttl``."""
        self._entries.pop(key, None)
        self._entries[key] = (now + self.ttl, signals)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def clear(self) -> None:
        """Forget every entry (an erasure: a personal provider's keys are its own)."""
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)
