"""Trending's incremental refresh (closed buckets summed once, open ones read each time) ranks
exactly as the formula computed from every bucket does, as time passes and buckets close,
age and leave the window."""

from __future__ import annotations

import random

import pytest

from slotwise.proxy.recommend.config import RecsConfig
from slotwise.proxy.recommend.state import trend_key
from slotwise.proxy.recommend.trending import TrendingIndex
from slotwise.proxy.state.memory import MemoryStore

HOUR = 3600.0


def _expected(
    counts: dict[int, dict[str, float]], now: float, window: float
) -> list[tuple[str, float]]:
    totals: dict[str, float] = {}
    for bucket, items in counts.items():
        middle = min((bucket + 0.5) * HOUR, now)
        age = now - middle
        if age > window or bucket * HOUR > now:
            continue
        for item, count in items.items():
            totals[item] = totals.get(item, 0.0) + count * 2.0 ** (-age / (window / 2))
    return _ranked(totals.items())


def _ranked(scores: object) -> list[tuple[str, float]]:
    # equal scores summed in another order differ in the last bits: compare them rounded
    rounded = [(item, round(score, 9)) for item, score in scores]  # type: ignore[attr-defined]
    return sorted(rounded, key=lambda kv: (-kv[1], kv[0]))


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_the_incremental_ranking_is_the_formula(seed: int) -> None:
    rng = random.Random(seed)
    store = MemoryStore()
    config = RecsConfig(trending_bucket=HOUR)
    index = TrendingIndex(config)
    counts: dict[int, dict[str, float]] = {}
    start = 1_750_000_000.0
    now = start
    for _ in range(120):
        now += rng.uniform(0, 1.5 * HOUR)
        bucket = int(now // HOUR)
        for _ in range(rng.randrange(1, 6)):
            item = f"i{rng.randrange(30)}"
            counts.setdefault(bucket, {})[item] = counts.setdefault(bucket, {}).get(item, 0) + 1
            await store.scores_add(trend_key(bucket), {item.encode(): 1.0}, max_len=2000)
        await index.refresh(store, now, [6 * HOUR, 24 * HOUR])
        for window in (6 * HOUR, 24 * HOUR):
            got = _ranked(index.current.top(window))
            assert got == _expected(counts, now, window), (now - start, window)
