"""Acknowledged means stored: kill -9 under load loses no 2xx'd event (a few trials here;
twenty per backend in tests/benchmarks/test_events_crash.py)."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from tests.proxy.events.crash_trials import redis_trial, sqlite_trial

pytestmark = pytest.mark.slow


async def test_kill_9_of_the_server_loses_no_acknowledged_event(tmp_path: Path) -> None:
    rng = random.Random(6)
    for index in range(2):
        trial = await sqlite_trial(tmp_path / f"trial{index}", rng, index)
        assert trial.acked > 0, "the load never got an answer"
        assert trial.missing == 0, trial
        assert trial.duplicates == 0, trial


@pytest.mark.redis
async def test_kill_9_of_redis_loses_no_acknowledged_event(tmp_path: Path) -> None:
    rng = random.Random(7)
    for index in range(2):
        trial = await redis_trial(tmp_path / f"trial{index}", rng, index)
        assert trial.acked > 0, "the load never got an answer"
        assert trial.missing == 0, trial
        assert trial.refused + trial.failed > 0, "the crash was not noticed"
