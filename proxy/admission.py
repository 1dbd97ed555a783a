"""Admission control: under overload, personalisation is shed first and requests pass through.

A worker that gets more requests than it can serve queues them, and every request waits in
that queue: pass-through ones too. Most of that queue is not in the worker's event loop: the
requests wait in the kernel's socket buffers and in the HTTP server (granian's I/O thread,
which needs a CPU, and the interpreter lock, to hand them over), where neither the loop's lag
nor the count of requests the application has taken sees them (docs/benchmarks.md,
"Hardening": 1,024 requests outstanding, the loop lagging a few milliseconds, the work in
flight 0 in a third of the samples). What does see it is how busy the loop is: a loop that
has ready work all the time takes requests no faster than it serves them, and the rest wait
outside. So three signals, any of which sheds:

- busy (``max_busy``): the share of the last ``_WINDOW`` seconds the event loop's thread was
  running or runnable (on a CPU or waiting for one: the kernel's per-thread schedstat, so a
  CPU taken by other processes counts as busy too), rather than asleep waiting for I/O.
  Past ~0.9 the queue outside grows; shed requests cost the worker about 0.4 of a
  personalised one (docs/benchmarks.md: bench proxy (b) against (c)), so shedding brings the
  share down and the queue drains;
- work in flight (``max_work``): proxied requests this worker has taken and not answered,
  less those waiting for the upstream's response head (a slow or hung upstream is not work
  for this worker; its connections are bounded by the pool's route budgets) and those
  streaming an answer through (a slow download is not either). It catches a burst before a
  window ends;
- queue time (``max_lag``): how late a timer due every ``_EVERY`` seconds runs (measured with
  the clock, not ``loop.time()``, which uvloop reads once per iteration).

While the work in flight is over its threshold, or the loop is busy or late with more than
``FLOOR`` requests in flight, new requests that could be personalised are forwarded
unchanged instead (counted as ``slotwise_passthrough_total{reason="shed"}``). Requests
already personalising finish. Personalisation comes back as soon as the work in flight is
under the threshold again and the next window is not busy. The request path reads two
integers and a flag; the timer reads the thread's schedstat (one ``pread``) per tick.
"""

from __future__ import annotations

import asyncio
import os
import time

_EVERY = 0.01  # seconds between queue-time measurements (only with ``max_lag``)
# A busy or lagging loop holding fewer requests than this is a slow request or a machine
# short of CPU, not a queue: shedding would not shorten anything (and a test's handful of
# concurrent requests on a loaded machine is never shed)
FLOOR = 16
# Seconds of the busy share: short enough that a queue cannot build meanwhile. The timer's
# own wake-ups count as busy while they wait for a CPU (up to ~10 ms each on a loaded
# machine), so it ticks once a window when only the busy share is measured: an idle loop
# then reads a few tenths at most, not nearly all
_WINDOW = 0.05
_SCHEDSTAT = "/proc/thread-self/schedstat"  # ns on a CPU, ns runnable waiting for one, slices


class Admission:
    """One per worker. The timer runs between ``start`` and ``stop`` (the app lifespan)."""

    __slots__ = ("max_work", "max_lag", "max_busy", "floor", "active", "waiting", "overloaded",
                 "lag", "busy", "shed", "_due", "_timer", "_stat", "_since", "_ran")  # fmt: skip

    def __init__(self, max_work: int = 0, max_lag: float = 0.0, max_busy: float = 0.0) -> None:
        self.max_work = max_work  # requests; 0: not a signal
        self.max_lag = max_lag  # seconds; 0: not a signal
        self.max_busy = max_busy  # share of the window; 0: not measured; 1: never sheds
        self.floor = FLOOR  # work in flight below which busy and lag do not shed
        self.active = 0  # proxied requests taken, not yet answered
        self.waiting = 0  # of those, waiting for the upstream's head or streaming through
        self.overloaded = False  # busy or lagging: the timer's verdict, read per request
        self.lag = 0.0  # the last queue time measured (seconds)
        self.busy = 0.0  # the last window's busy share
        self.shed = 0  # requests forwarded unpersonalised because of overload
        self._due = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._stat: int | None = None  # the loop thread's schedstat, open
        self._since = 0.0
        self._ran = 0

    @property
    def shedding(self) -> bool:
        """Whether a request that could be personalised is to pass through now."""
        work = self.active - self.waiting
        return (self.overloaded and work > self.floor) or 0 < self.max_work < work

    def start(self) -> None:
        """Start measuring; called on the event loop's thread (its schedstat is the one read)."""
        if self._timer is not None or (self.max_lag <= 0 and self.max_busy <= 0):
            return
        if self.max_busy > 0:
            try:
                self._stat = os.open(_SCHEDSTAT, os.O_RDONLY)
                self._ran = self._runnable()
            except OSError:  # no schedstat (a kernel without it): the other signals remain
                self._stat = None
        loop = asyncio.get_running_loop()
        self._since = time.perf_counter()
        self._due = self._since + self._every
        self._timer = loop.call_later(self._every, self._tick, loop)

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._stat is not None:
            os.close(self._stat)
            self._stat = None
        self.overloaded = False

    @property
    def _every(self) -> float:
        return _EVERY if self.max_lag > 0 else _WINDOW

    def _runnable(self) -> int:
        """Nanoseconds the loop's thread has been on a CPU or waiting for one."""
        assert self._stat is not None
        running, waiting = os.pread(self._stat, 64, 0).split()[:2]
        return int(running) + int(waiting)

    def _tick(self, loop: asyncio.AbstractEventLoop) -> None:
        now = time.perf_counter()
        self.lag = now - self._due
        lagging = 0 < self.max_lag < self.lag
        if self._stat is not None and now - self._since >= _WINDOW:
            ran = self._runnable()
            # at most 1: a window's ends are read a few microseconds apart from the clock's
            self.busy = min(1.0, (ran - self._ran) / 1e9 / (now - self._since))
            self._ran, self._since = ran, now
        self.overloaded = lagging or 0 < self.max_busy < self.busy
        self._due = now + self._every
        self._timer = loop.call_later(self._every, self._tick, loop)
