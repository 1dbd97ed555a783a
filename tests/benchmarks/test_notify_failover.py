"""Twenty kill -9 trials of the active notification sender (two senders on one Redis): every
notification delivered, none accepted twice by its idempotency key.

.venv/bin/pytest -m benchmark tests/benchmarks/test_notify_failover.py -s
"""

from __future__ import annotations

import random
import statistics
from pathlib import Path

import pytest

from tests.proxy.notify.failover_trials import failover_trial

pytestmark = [pytest.mark.benchmark, pytest.mark.redis]

TRIALS = 20


async def test_twenty_kill_9_trials(tmp_path: Path) -> None:
    rng = random.Random(2016)
    trials = [await failover_trial(tmp_path / f"t{i}", rng) for i in range(TRIALS)]
    takeovers = sorted(t.takeover for t in trials if t.takeover)
    print(
        f"\nkill -9 of the active sender, redis (appendfsync always): {len(trials)} trials, "
        f"{sum(t.enqueued for t in trials)} notifications, "
        f"{sum(t.delivered for t in trials)} delivered, {sum(t.missing for t in trials)} "
        f"missing, {sum(t.redelivered for t in trials)} redelivered under a key already "
        f"accepted (dropped by the receiver), takeover median "
        f"{statistics.median(takeovers) if takeovers else 0:.2f}s, max "
        f"{max(takeovers, default=0):.2f}s"
    )
    assert sum(t.missing for t in trials) == 0
    assert all(t.delivered == t.enqueued for t in trials)
