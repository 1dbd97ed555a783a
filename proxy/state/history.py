"""An immutable per-request snapshot of a user's history, for behavioural predicates."""

from __future__ import annotations

import bisect
from collections.abc import Iterable

from slotwise.proxy.state.base import HistoryItem


class StoredHistory:
    """Implements ``slotwise.plugins.schema.EventHistory`` over items read from the store.

    Built once per request (``StoredHistory(await store.history(key))``); ``count`` and
    ``last`` then answer without I/O.
    """

    __slots__ = ("_times",)

    def __init__(self, items: Iterable[HistoryItem]) -> None:
        times: dict[str, list[float]] = {}
        for item in items:
            times.setdefault(item.event, []).append(item.at)
        for series in times.values():
            series.sort()
        self._times = times

    def count(self, event: str, since: float) -> int:
        series = self._times.get(event)
        if not series:
            return 0
        return len(series) - bisect.bisect_left(series, since)

    def last(self, event: str) -> float | None:
        series = self._times.get(event)
        return series[-1] if series else None
