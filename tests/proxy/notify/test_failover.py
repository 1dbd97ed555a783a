"""Two senders on one Redis, the active one killed with SIGKILL mid-send: the standby takes
over, every notification arrives, none is accepted twice by key (2 trials here; 20 in
tests/benchmarks/test_notify_failover.py)."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from tests.proxy.notify.failover_trials import failover_trial

pytestmark = [pytest.mark.redis, pytest.mark.slow]


async def test_kill_9_of_the_active_sender_loses_nothing(tmp_path: Path) -> None:
    rng = random.Random(16)
    for i in range(2):
        trial = await failover_trial(tmp_path / f"t{i}", rng, count=100)
        assert trial.missing == 0, trial
        assert trial.delivered == trial.enqueued
