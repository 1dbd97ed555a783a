"""Tests that depend on time, made to hold on a shared, noisy machine.

TTLs. A check that something is *still there* before its TTL passes only means something if it ran
before the TTL could have passed: on a loaded CI box a Redis Cluster call can stall for longer
than a test's 150 ms window, and the value is then rightly gone. `within_ttl` runs such a test
body with a window; the body reads, calls `window.open()` to confirm the reads were made in
time, then asserts them. A window found closed is not a failure but a stalled machine: the body
runs again on fresh keys with a window four times as long, three attempts in all. Checks that
something has *expired* need no guard: a stall only makes them more certain.

Clock-aligned periods. Hourly trending buckets, frequency caps `per 1h`, daily budgets and
audience pushes count in windows aligned to the epoch: a test whose events must share one
window fails when it runs across the boundary. `clear_of_boundary` waits past the next boundary
first when fewer than the seconds the test needs are left before it.

Deadlines. A served proxy's 10 ms decision deadline turns a stalled decision into a fail-open
answer, the upstream's untouched (no click link, no offer): tests of what a decision does serve
with `PATIENT_DEADLINES` in the environment of `slotwise serve`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

ATTEMPTS = 3

# deadlines a loaded machine meets: a fail-open answer carries no click link
PATIENT_DEADLINES = {
    "SLOTWISE_PROXY_DECISION_DEADLINE_MS": "2000",
    "SLOTWISE_PROXY_SIGNALS_DEADLINE_MS": "2000",
}


class Stalled(Exception):
    """The window may have closed before the reads it guards were made."""


@dataclass
class Window:
    ttl: float
    attempt: int
    started: float = field(default_factory=time.monotonic)

    def key(self, name: str) -> str:
        """`name` for this attempt: an earlier, stalled attempt's keys cannot interfere."""
        return f"{name}:{self.attempt}"

    def open(self, since: float | None = None) -> None:
        """Raises Stalled unless less than `ttl` has passed since `since` (the window's start)."""
        if time.monotonic() - (self.started if since is None else since) >= self.ttl:
            raise Stalled

    async def passed(self, factor: float = 2.0) -> None:
        """Sleeps until `factor` TTLs after the start: writes confirmed by `open()` have expired."""
        await asyncio.sleep(max(0.0, self.started + factor * self.ttl - time.monotonic()))


async def within_ttl(body: Callable[[Window], Awaitable[None]], ttl: float = 0.15) -> None:
    """Runs `body` with a window of `ttl` seconds, longer ones while the machine stalls."""
    for attempt in range(ATTEMPTS):
        try:
            await body(Window(ttl * 4**attempt, attempt))
            return
        except Stalled:
            continue
    raise AssertionError(f"the machine stalled past a {ttl * 4 ** (ATTEMPTS - 1):.2f} s window")


async def clear_of_boundary(period: float, needed: float = 30.0) -> None:
    """Returns once at least `needed` seconds are left in the current epoch-aligned `period`."""
    left = period - time.time() % period
    if left < needed:
        await asyncio.sleep(left + 0.05)
