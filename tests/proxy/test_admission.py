"""Admission control's signals (slotwise.proxy.admission). Busy: a worker whose event loop has
ready work all the time sheds personalisation while it holds more than a handful of requests,
and stops as soon as the loop idles again. Queue time: the share shed follows the probe's
queue time (up while over the threshold, down while under), spread evenly over requests, and
a probe that waited while the worker took only a handful of requests does not count."""

from __future__ import annotations

import asyncio
import time

import pytest

from slotwise.proxy.admission import FLOOR, QUEUE_FLOOR, Admission


async def _spin(seconds: float) -> None:
    """Keep the loop busy (CPU work, yielding so that its timers run) for ``seconds``."""
    until = time.perf_counter() + seconds
    while time.perf_counter() < until:
        sum(range(2000))
        await asyncio.sleep(0)


async def test_a_busy_loop_sheds_past_the_floor_and_an_idle_one_does_not() -> None:
    admission = Admission(max_work=0, max_queue=0.0, max_busy=0.8)
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
        # waiting for a CPU counts as busy: on a loaded machine it may take a few probes more
        deadline = time.monotonic() + 5
        while admission.busy >= 0.5 and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        assert admission.busy < 0.5
        assert not admission.overloaded and not admission.shedding
    finally:
        admission.stop()


async def test_without_thresholds_nothing_is_measured() -> None:
    admission = Admission(max_work=0, max_queue=0.0, max_busy=0.0)
    admission.start()
    admission.active = 1000
    await _spin(0.1)
    assert admission.busy == 0.0 and not admission.shedding
    admission.stop()


def _probe(admission: Admission, waited: float, taken: int) -> None:
    """A probe that waited ``waited`` seconds while the worker took ``taken`` requests."""
    now = [100.0]
    admission.clock = lambda: now[0]
    admission.sending_probe()
    admission.taken += taken
    now[0] += waited
    admission.probed()


def test_the_shed_share_follows_the_queue_time() -> None:
    admission = Admission(max_queue=0.020)
    _probe(admission, 0.010, taken=100)  # under the threshold: nothing shed
    assert admission.ration == 0.0 and admission.admit() and admission.shed == 0
    _probe(admission, 0.040, taken=100)  # twice over: up two steps
    first = admission.ration
    assert 0 < first < 1 and admission.shedding
    for _ in range(50):  # far over: up to all, at most four steps a probe
        _probe(admission, 1.0, taken=100)
    assert admission.ration == 1.0
    assert not any(admission.admit() for _ in range(10)) and admission.shed == 10
    _probe(admission, 0.001, taken=100)  # under: down one step, not at once
    assert 0.9 < admission.ration < 1.0
    for _ in range(200):
        _probe(admission, 0.001, taken=100)
    assert admission.ration == 0.0 and not admission.shedding
    assert all(admission.admit() for _ in range(100))
    assert admission.queue == pytest.approx(0.001)  # the last one measured, for the metric


def test_a_share_is_shed_evenly() -> None:
    admission = Admission(max_queue=0.020)
    admission.ration = 0.25
    admitted = [admission.admit() for _ in range(100)]
    assert admitted.count(False) == 25 == admission.shed
    # spread out: never two shed in a row at a quarter
    assert all(admitted[i] or admitted[i + 1] for i in range(99))


def test_a_probe_delayed_behind_at_most_the_floor_is_not_a_queue() -> None:
    """A machine short of CPU delays a test's few requests and the probe alike, and a closed
    loop of 64 connections has at most 64 requests ahead of it: neither is shed."""
    admission = Admission(max_queue=0.020)
    for _ in range(20):
        _probe(admission, 0.500, taken=QUEUE_FLOOR)
    assert admission.ration == 0.0 and admission.admit()
    _probe(admission, 0.500, taken=QUEUE_FLOOR + 1)
    assert admission.ration > 0


async def test_an_unanswered_probe_counts_while_it_waits() -> None:
    """The timer does not wait for a probe stuck in the queue to reach its handler."""
    admission = Admission(max_queue=0.020)
    admission.start()
    try:
        admission.sending_probe()
        admission.taken += 100
        await asyncio.sleep(0.1)
        assert admission.ration > 0 and admission.queue > 0.020
    finally:
        admission.stop()
