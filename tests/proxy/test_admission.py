"""The busy signal of admission control (slotwise.proxy.admission): a worker whose event loop
has ready work all the time sheds personalisation while it holds more than a handful of
requests, and stops as soon as the loop idles again."""

from __future__ import annotations

import asyncio
import time

from slotwise.proxy.admission import FLOOR, Admission


async def _spin(seconds: float) -> None:
    """Keep the loop busy (CPU work, yielding so that its timers run) for ``seconds``."""
    until = time.perf_counter() + seconds
    while time.perf_counter() < until:
        sum(range(2000))
        await asyncio.sleep(0)


async def test_a_busy_loop_sheds_past_the_floor_and_an_idle_one_does_not() -> None:
    admission = Admission(max_work=0, max_lag=0.0, max_busy=0.8)
    admission.start()
    try:
        admission.active = FLOOR + 1
        await _spin(0.3)
        assert admission.busy > 0.8
        assert admission.overloaded and admission.shedding
        admission.active = FLOOR  # busy, but with a handful of requests: not a queue
        assert not admission.shedding
        admission.active = FLOOR + 1
        await asyncio.sleep(0.3)  # idle: asleep in the loop's poll
        assert admission.busy < 0.5
        assert not admission.overloaded and not admission.shedding
    finally:
        admission.stop()


async def test_without_thresholds_nothing_is_measured() -> None:
    admission = Admission(max_work=0, max_lag=0.0, max_busy=0.0)
    admission.start()
    admission.active = 1000
    await _spin(0.1)
    assert admission.busy == 0.0 and not admission.shedding
    admission.stop()
