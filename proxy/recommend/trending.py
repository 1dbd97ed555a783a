"""Trending: the store's bucketed counts, read by each worker into an immutable ranking.

``trending(24h)`` ranks items by their counts in the buckets of the last 24 hours, each
bucket weighted ``2 ** (-age / (window / 2))`` (age: from the bucket's middle to now): what
happened half a window ago counts half, nothing older than the window counts. The worker's
:class:`TrendingIndex` refreshes every ``refresh_interval`` and swaps in a
:class:`TrendingSnapshot` (per window, the ranked ids): the request path never reads the
store for trending.

A refresh reads only the open buckets (the current one, and those that closed less than
``CLOSED_AFTER`` ago: late events still land there); a closed bucket is read once and added
to a running sum per window, in a common scale (``2 ** ((middle - landmark) / half)``, so that
no weight needs recomputing as time passes), and subtracted when it leaves the window. The best
of the closed sums are kept until a bucket comes or goes, so a refresh ranks only those and
the open buckets' items: not a pass over every bucket, nor over every item, of the window.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from operator import itemgetter

from slotwise.proxy.recommend.config import RecsConfig
from slotwise.proxy.recommend.state import trend_key
from slotwise.proxy.state import Store

RANKED = 200  # items ranked per window (enough to fill lists after exclusions)
_PER_BUCKET = 500  # items read per bucket
# seconds after its end a bucket is taken as final (events arrive late: clocks, batching)
CLOSED_AFTER = 300.0
_RESCALE = 512.0  # exponent (in halves) past which a window's sums move to a new landmark


@dataclass(frozen=True, slots=True)
class TrendingSnapshot:
    """Per window (seconds), (item, score) best first; ``at``: when it was computed."""

    at: float = 0.0
    ranked: Mapping[float, tuple[tuple[str, float], ...]] = field(default_factory=dict)
    # per window: item -> score / best score (0..1), for the strategies that blend popularity
    shares: Mapping[float, Mapping[str, float]] = field(default_factory=dict)

    def top(self, window: float) -> tuple[tuple[str, float], ...]:
        return self.ranked.get(window, ())

    def share(self, window: float) -> Mapping[str, float]:
        return self.shares.get(window, {})


@dataclass(slots=True)
class _Window:
    """One window's closed buckets, summed in the scale of ``landmark``."""

    seconds: float
    landmark: float
    sums: dict[bytes, float] = field(default_factory=dict)
    included: dict[int, list[tuple[bytes, float]]] = field(default_factory=dict)
    # the RANKED best of ``sums``, recomputed only when a bucket is added or removed: an item
    # outside it and outside the open buckets cannot reach the ranking (its total is its sum,
    # below RANKED others' sums, which their totals only exceed)
    best: list[tuple[bytes, float]] | None = None

    def weight(self, middle: float) -> float:
        return float(2.0 ** ((middle - self.landmark) / (self.seconds / 2.0)))

    def add(self, bucket: int, top: list[tuple[bytes, float]], middle: float) -> None:
        weight = self.weight(middle)
        sums = self.sums
        for member, count in top:
            sums[member] = sums.get(member, 0.0) + count * weight
        self.included[bucket] = top
        self.best = None

    def remove(self, bucket: int, middle: float) -> None:
        weight = self.weight(middle)
        sums = self.sums
        for member, count in self.included.pop(bucket):
            left = sums.get(member, 0.0) - count * weight
            if left <= 1e-9 * weight:
                sums.pop(member, None)
            else:
                sums[member] = left
        self.best = None

    def leaders(self) -> list[tuple[bytes, float]]:
        if self.best is None:
            self.best = heapq.nlargest(RANKED, self.sums.items(), key=itemgetter(1))
        return self.best


class TrendingIndex:
    """One worker's trending rankings; refreshed by :meth:`refresh`, read through ``current``."""

    def __init__(self, config: RecsConfig) -> None:
        self.config = config
        self.current = TrendingSnapshot()
        self._windows: dict[float, _Window] = {}

    async def refresh(self, store: Store, now: float, windows: Iterable[float]) -> None:
        asked = set(windows)
        wanted = sorted({min(w, self.config.trending_max_window) for w in asked})
        if not wanted:
            return
        size = self.config.trending_bucket
        states = {w: self._window(w, now) for w in wanted}
        for window in [w for w in self._windows if w not in states]:
            del self._windows[window]
        last = int(now // size)
        first = int((now - wanted[-1]) // size)
        open_buckets = [b for b in range(first, last + 1) if (b + 1) * size > now - CLOSED_AFTER]
        to_close = {
            b
            for state in states.values()
            for b in range(int((now - state.seconds) // size), last + 1)
            if (b + 1) * size <= now - CLOSED_AFTER and b not in state.included
        }
        keys = [*open_buckets, *sorted(to_close)]
        read = await store.scores_top([trend_key(b) for b in keys], _PER_BUCKET)
        found = dict(zip(keys, read, strict=True))
        ranked: dict[float, tuple[tuple[str, float], ...]] = {}
        for window, state in states.items():
            ranked[window] = self._rank(state, found, open_buckets, now)
        for window in asked:  # as the policy wrote them, when clamped to trending_max_window
            ranked.setdefault(window, ranked[min(window, self.config.trending_max_window)])
        shares = {
            window: {item: score / (top[0][1] or 1.0) for item, score in top}
            for window, top in ranked.items()
            if top
        }
        self.current = TrendingSnapshot(now, ranked, shares)

    def _window(self, seconds: float, now: float) -> _Window:
        state = self._windows.get(seconds)
        if state is None or (now - state.landmark) / (seconds / 2.0) > _RESCALE:
            state = self._windows[seconds] = _Window(seconds, now)  # re-read from the store
        return state

    def _rank(
        self,
        state: _Window,
        found: Mapping[int, list[tuple[bytes, float]]],
        open_buckets: list[int],
        now: float,
    ) -> tuple[tuple[str, float], ...]:
        size = self.config.trending_bucket
        half = state.seconds / 2.0
        for bucket in [b for b in state.included if (b + 0.5) * size < now - state.seconds]:
            state.remove(bucket, (bucket + 0.5) * size)
        for bucket, top in found.items():
            middle = (bucket + 0.5) * size
            if (
                bucket not in state.included
                and bucket not in open_buckets
                and now - middle <= state.seconds
            ):
                state.add(bucket, top, middle)
        sums = state.sums
        totals = dict(state.leaders())
        if open_buckets:
            for bucket in open_buckets:
                middle = min((bucket + 0.5) * size, now)
                if now - middle > state.seconds:
                    continue
                weight = state.weight(middle)
                for member, count in found.get(bucket, ()):
                    if member not in totals:
                        totals[member] = sums.get(member, 0.0)
                    totals[member] += count * weight
        scale = 2.0 ** ((state.landmark - now) / half)
        best = heapq.nlargest(RANKED, totals.items(), key=itemgetter(1))
        best.sort(key=lambda kv: (-kv[1], kv[0]))  # ties: the smaller id first
        return tuple((member.decode(), score * scale) for member, score in best)
