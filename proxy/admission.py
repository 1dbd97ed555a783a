"""Admission control: under overload, personalisation is shed first and requests pass through.

A worker that gets more requests than it can serve queues them, and every request waits in
that queue: pass-through ones too. Most of that queue is not in the worker's event loop: the
requests wait in the kernel's socket buffers and in the HTTP server (granian's I/O thread,
which needs a CPU, and the interpreter lock, to hand them over), where neither the loop's lag
nor the count of requests the application has taken sees them (docs/benchmarks.md,
"Hardening": 1,024 requests outstanding, the loop lagging a few milliseconds, the work in
flight 0 in a third of the samples). So three signals, any of which sheds:

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
- queue time (``max_queue``): how long a request waits before this worker starts it, read
  by the worker's own probe request every 20 ms (slotwise.proxy.queue_probe), which waits in
  the kernel's buffers, the I/O thread and the loop's ready queue like any other. This is
  the one that sees the queue outside a worker that has its CPU to itself: there the loop is
  busy but holds fewer than 2 requests while 500 wait (docs/benchmarks.md). It sheds a
  share of the requests (``ration``), not all or none: at twice the capacity about 0.9 of
  them must go (a shed request costs ~0.4 of a personalised one), and all-or-none against a
  signal that arrives one queue time late swings the queue by more than the target. The
  share rises while the queue time is over the threshold, in proportion to how far over, and
  falls by a step each probe under it; requests are shed evenly (a running credit), not in
  bursts. A probe counts only if the worker took more than ``queue_floor`` requests (64)
  while it waited: a machine short of CPU delays a handful of requests too, and a closed
  loop of N connections (a load balancer's, a benchmark's at full speed) never has more than
  N requests ahead of the probe (measured: at most 64 with 64, 128 with 128); neither is an
  overload that shedding is for.

Requests already personalising finish. Personalisation comes back as soon as the work in
flight is under its threshold, the next window is not busy and the share is back at 0. The
request path reads a few numbers (``admit``); the timer reads the thread's schedstat (one
``pread``) per window, and the probe is one small request per 20 ms.
"""

from __future__ import annotations

import asyncio
import os
import time

_EVERY = 0.01  # seconds between checks of an unanswered probe (only with ``max_queue``)
# A busy loop holding fewer requests than this is a slow request or a machine short of CPU,
# not a queue: shedding would not shorten anything (and a test's handful of concurrent
# requests on a loaded machine is never shed)
FLOOR = 16
# Requests ahead of a probe at or below which its wait is not a queue of arrivals: a closed
# loop of this many connections (a load balancer's at its peak) never has more ahead
QUEUE_FLOOR = 64
# Seconds of the busy share: short enough that a queue cannot build meanwhile. The timer's
# own wake-ups count as busy while they wait for a CPU (up to ~10 ms each on a loaded
# machine), so it ticks once a window when only the busy share is measured: an idle loop
# then reads a few tenths at most, not nearly all
_WINDOW = 0.05
_SCHEDSTAT = "/proc/thread-self/schedstat"  # ns on a CPU, ns runnable waiting for one, slices
# The shed share's steps: up by this times how many thresholds over (at most _OVER), down by
# _DOWN per probe under. Up is fast (at 2x the queue grows by its own length each queue
# time), down slow (a tenth of a second from 0.9 to 0.8 at the probe's pace): the share
# settles where the queue time hovers at the threshold
_UP = 0.05
_OVER = 4.0
_DOWN = 0.02


class Admission:
    """One per worker. The timer runs between ``start`` and ``stop`` (the app lifespan)."""

    __slots__ = ("max_work", "max_queue", "max_busy", "floor", "queue_floor", "active", "waiting",
                 "taken", "overloaded", "queue", "busy", "shed", "ration", "credit", "token",
                 "probe_sent", "probe_behind", "ahead", "clock", "_timer", "_stat", "_since",
                 "_ran")  # fmt: skip

    def __init__(
        self,
        max_work: int = 0,
        max_queue: float = 0.0,
        max_busy: float = 0.0,
        queue_floor: int = QUEUE_FLOOR,
    ) -> None:
        self.max_work = max_work  # requests; 0: not a signal
        self.max_queue = max_queue  # seconds; 0: not a signal
        self.max_busy = max_busy  # share of the window; 0: not measured; 1: never sheds
        self.floor = FLOOR  # work in flight below which busy does not shed
        self.queue_floor = queue_floor  # requests ahead of a probe below which it is no queue
        self.active = 0  # proxied requests taken, not yet answered
        self.waiting = 0  # of those, waiting for the upstream's head or streaming through
        self.taken = 0  # proxied requests taken since the start (a running count)
        self.overloaded = False  # busy: the timer's verdict, read per request
        self.queue = 0.0  # the last queue time measured (seconds)
        self.busy = 0.0  # the last window's busy share
        self.shed = 0  # requests forwarded unpersonalised because of overload
        self.ration = 0.0  # share of personalisable requests shed for queue time (0..1)
        self.credit = 0.0  # ration accumulated since the last request shed for it
        self.token: bytes | None = None  # this worker's probe token (queue_probe), if probing
        self.probe_sent = 0.0  # when the unanswered probe was sent (0: none)
        self.probe_behind = 0  # ``taken`` when it was sent
        self.ahead = 0  # requests taken while the last probe measured waited
        self.clock = time.perf_counter
        self._timer: asyncio.TimerHandle | None = None
        self._stat: int | None = None  # the loop thread's schedstat, open
        self._since = 0.0
        self._ran = 0

    @property
    def shedding(self) -> bool:
        """Whether requests that could be personalised are being shed now (all or a share)."""
        work = self.active - self.waiting
        return (
            (self.overloaded and work > self.floor) or 0 < self.max_work < work or self.ration > 0
        )

    def admit(self) -> bool:
        """Whether this request, which could be personalised, is; if not, it is counted shed."""
        work = self.active - self.waiting
        if (self.overloaded and work > self.floor) or 0 < self.max_work < work:
            self.shed += 1
            return False
        if self.ration:  # a share: each request adds it, one is shed per whole one
            credit = self.credit + self.ration
            if credit >= 1.0:
                self.credit = credit - 1.0
                self.shed += 1
                return False
            self.credit = credit
        return True

    def sending_probe(self) -> None:
        self.probe_sent = self.clock()
        self.probe_behind = self.taken

    def probed(self) -> None:
        """This worker's probe has reached its handler: it waited since it was sent."""
        if self.probe_sent:
            self._waited(self.clock() - self.probe_sent)
            self.probe_sent = 0.0

    def _waited(self, queued: float) -> None:
        # a probe that waited while the worker took no more than ``queue_floor`` requests
        # waited for a CPU (a machine short of it) or behind a closed loop of at most that
        # many connections (a load balancer at full speed), not behind a queue of arrivals
        self.ahead = self.taken - self.probe_behind
        self.observe(queued, queueing=self.ahead > self.queue_floor)

    def observe(self, queued: float, *, queueing: bool = True) -> None:
        """A queue time measured (seconds): the shed share moves towards what keeps it at
        ``max_queue``; a wait that was not behind other requests (``queueing``) counts as
        none."""
        self.queue = queued
        if self.max_queue <= 0:
            return
        if queueing and queued > self.max_queue:
            self.ration = min(1.0, self.ration + _UP * min(queued / self.max_queue, _OVER))
        elif self.ration:
            self.ration = max(0.0, self.ration - _DOWN)
            if not self.ration:
                self.credit = 0.0

    def start(self) -> None:
        """Start measuring; called on the event loop's thread (its schedstat is the one read)."""
        if self._timer is not None or (self.max_queue <= 0 and self.max_busy <= 0):
            return
        if self.max_busy > 0:
            try:
                self._stat = os.open(_SCHEDSTAT, os.O_RDONLY)
                self._ran = self._runnable()
            except OSError:  # no schedstat (a kernel without it): the other signals remain
                self._stat = None
        loop = asyncio.get_running_loop()
        self._since = time.perf_counter()
        self._timer = loop.call_later(self._every, self._tick, loop)

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._stat is not None:
            os.close(self._stat)
            self._stat = None
        self.overloaded = False
        self.ration = 0.0

    @property
    def _every(self) -> float:
        return _EVERY if self.max_queue > 0 else _WINDOW

    def _runnable(self) -> int:
        """Nanoseconds the loop's thread has been on a CPU or waiting for one."""
        assert self._stat is not None
        running, waiting = os.pread(self._stat, 64, 0).split()[:2]
        return int(running) + int(waiting)

    def _tick(self, loop: asyncio.AbstractEventLoop) -> None:
        now = time.perf_counter()
        # a probe still unanswered has waited at least this long: no need to wait for it
        if self.probe_sent and now - self.probe_sent > self.max_queue > 0:
            self._waited(now - self.probe_sent)
        if self._stat is not None and now - self._since >= _WINDOW:
            ran = self._runnable()
            # at most 1: a window's ends are read a few microseconds apart from the clock's
            self.busy = min(1.0, (ran - self._ran) / 1e9 / (now - self._since))
            self._ran, self._since = ran, now
            self.overloaded = 0 < self.max_busy < self.busy
        self._timer = loop.call_later(self._every, self._tick, loop)
