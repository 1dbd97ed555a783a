"""Admission control: under overload, personalisation is shed first and requests pass through.

A worker that gets more requests than it can serve queues them, and every request waits in
that queue: pass-through ones too. Two signals say a worker is past its capacity:

- work in flight (``max_work``): proxied requests this worker has taken and not answered,
  less those waiting for the upstream's response head (a slow or hung upstream is not work
  for this worker; its connections are bounded by the pool's route budgets) and those
  streaming an answer through (a slow download is not either). Under overload
  it climbs into the thousands (up to the server's backpressure); a worker serving within its
  capacity holds about its concurrency (64 connections: at most 64);
- queue time (``max_lag``): how late a timer due every ``_EVERY`` seconds runs, i.e. how long
  ready work waits for this worker's event loop (measured with the clock, not
  ``loop.time()``, which uvloop reads once per iteration).

While either is over its threshold, new requests that could be personalised are forwarded
unchanged instead (counted as ``slotwise_passthrough_total{reason="shed"}``): they cost the
worker a fraction of a personalised one, so the queue drains and pass-through latency stays
bounded. Requests already personalising finish. Personalisation comes back as soon as the
work in flight is under the threshold again (the next request sees it) and the next timer
runs on time. The request path reads two integers and a flag.
"""

from __future__ import annotations

import asyncio
import time

_EVERY = 0.01  # seconds between queue-time measurements


class Admission:
    """One per worker. The lag timer runs between ``start`` and ``stop`` (the app lifespan)."""

    __slots__ = ("max_work", "max_lag", "active", "waiting", "lagging", "lag", "shed", "_due",
                 "_timer")  # fmt: skip

    def __init__(self, max_work: int = 0, max_lag: float = 0.0) -> None:
        self.max_work = max_work  # requests; 0: not a signal
        self.max_lag = max_lag  # seconds; 0: not a signal
        self.active = 0  # proxied requests taken, not yet answered
        self.waiting = 0  # of those, waiting for the upstream's head or streaming through
        self.lagging = False
        self.lag = 0.0  # the last queue time measured (seconds)
        self.shed = 0  # requests forwarded unpersonalised because of overload
        self._due = 0.0
        self._timer: asyncio.TimerHandle | None = None

    @property
    def shedding(self) -> bool:
        """Whether a request that could be personalised is to pass through now."""
        if self.lagging:
            return True
        return 0 < self.max_work < self.active - self.waiting

    def start(self) -> None:
        if self.max_lag > 0 and self._timer is None:
            loop = asyncio.get_running_loop()
            self._due = time.perf_counter() + _EVERY
            self._timer = loop.call_later(_EVERY, self._tick, loop)

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.lagging = False

    def _tick(self, loop: asyncio.AbstractEventLoop) -> None:
        now = time.perf_counter()
        self.lag = now - self._due
        self.lagging = self.lag > self.max_lag
        self._due = now + _EVERY
        self._timer = loop.call_later(_EVERY, self._tick, loop)
