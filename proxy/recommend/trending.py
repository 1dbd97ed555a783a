"""Trending: the store's bucketed counts, read by each worker into an immutable ranking.

``trending(24h)`` ranks items by their counts in the buckets of the last 24 hours, each
bucket weighted ``2 ** (-age / (window / 2))`` (age: from the bucket's middle to now): what
happened half a window ago counts half, nothing older than the window counts. The worker's
:class:`TrendingIndex` reads every bucket of the longest window its policies name in one
round trip every ``refresh_interval`` and swaps in a :class:`TrendingSnapshot` (per window,
the ranked ids): the request path never reads the store for trending.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from slotwise.proxy.recommend.config import RecsConfig
from slotwise.proxy.recommend.state import trend_key
from slotwise.proxy.state import Store

RANKED = 500  # items ranked per window (enough to fill lists after exclusions)
_PER_BUCKET = 1000  # items read per bucket


@dataclass(frozen=True, slots=True)
class TrendingSnapshot:
    """Per window (seconds), (item, score) best first; ``at``: when it was computed."""

    at: float = 0.0
    ranked: Mapping[float, tuple[tuple[str, float], ...]] = field(default_factory=dict)

    def top(self, window: float) -> tuple[tuple[str, float], ...]:
        return self.ranked.get(window, ())


class TrendingIndex:
    """One worker's trending rankings; refreshed by :meth:`refresh`, read through ``current``."""

    def __init__(self, config: RecsConfig) -> None:
        self.config = config
        self.current = TrendingSnapshot()

    async def refresh(self, store: Store, now: float, windows: Iterable[float]) -> None:
        wanted = sorted({min(w, self.config.trending_max_window) for w in windows})
        if not wanted:
            return
        size = self.config.trending_bucket
        last = int(now // size)
        first = int((now - wanted[-1]) // size)
        buckets = list(range(first, last + 1))
        tops = await store.scores_top([trend_key(b) for b in buckets], _PER_BUCKET)
        ranked: dict[float, tuple[tuple[str, float], ...]] = {}
        for window in wanted:
            half = window / 2.0
            totals: dict[bytes, float] = {}
            for bucket, top in zip(buckets, tops, strict=True):
                middle = min((bucket + 0.5) * size, now)
                age = now - middle
                if age > window or not top:
                    continue
                weight = 2.0 ** (-age / half)
                for member, count in top:
                    totals[member] = totals.get(member, 0.0) + count * weight
            best = sorted(totals.items(), key=lambda kv: (-kv[1], kv[0]))[:RANKED]
            ranked[window] = tuple((m.decode(), s) for m, s in best)
        # also the windows as the policy wrote them, when clamped to trending_max_window
        for window in windows:
            ranked.setdefault(window, ranked[min(window, self.config.trending_max_window)])
        self.current = TrendingSnapshot(now, ranked)
