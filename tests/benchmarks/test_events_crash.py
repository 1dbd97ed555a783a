"""Twenty kill -9 trials per backend under steady load: every 2xx'd event must be stored.

.venv/bin/pytest -m benchmark tests/benchmarks/test_events_crash.py -s
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from tests.proxy.events.crash_trials import Trial, redis_trial, sqlite_trial

pytestmark = pytest.mark.benchmark

TRIALS = 20


def _summary(name: str, trials: list[Trial]) -> str:
    return (
        f"{name}: {len(trials)} trials, {sum(t.acked for t in trials)} events acknowledged, "
        f"{sum(t.missing for t in trials)} missing, {sum(t.duplicates for t in trials)} "
        f"duplicates, {sum(t.refused for t in trials)} batches refused (503), "
        f"{sum(t.failed for t in trials)} replies lost"
    )


async def test_sqlite_crash_trials(tmp_path: Path) -> None:
    rng = random.Random(2026)
    trials = [await sqlite_trial(tmp_path / f"t{i}", rng, i) for i in range(TRIALS)]
    print("\n" + _summary("kill -9 of the server, sqlite store", trials))
    assert all(t.acked > 0 for t in trials)
    assert sum(t.missing for t in trials) == 0


async def test_redis_crash_trials(tmp_path: Path) -> None:
    rng = random.Random(2027)
    trials = [await redis_trial(tmp_path / f"t{i}", rng, i) for i in range(TRIALS)]
    print("\n" + _summary("kill -9 of redis-server (appendfsync always)", trials))
    assert all(t.acked > 0 for t in trials)
    assert sum(t.missing for t in trials) == 0
