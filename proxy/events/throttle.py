"""Throttling failed admin token attempts per client address, in bounded memory.

A client that fails ``limit`` times within ``window`` seconds (counted from its first failure)
is refused without its token being looked at until that window has passed. The table holds at
most ``max_clients`` addresses: past that, the oldest entry goes, so a flood of addresses costs
bounded memory (and can at worst forget a throttled client early, never block a good one).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

ADMIN_FAILURES = 5  # failed attempts allowed per client and window
ADMIN_WINDOW = 60.0  # seconds


class FailureThrottle:
    """Failed attempts per client address; ``retry_after`` says whether one is throttled."""

    def __init__(
        self,
        limit: int = ADMIN_FAILURES,
        window: float = ADMIN_WINDOW,
        max_clients: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit = limit
        self.window = window
        self.max_clients = max_clients
        self._clock = clock
        self._failures: dict[str, tuple[float, int]] = {}  # address -> (window start, count)

    def retry_after(self, client: str) -> int | None:
        """Whole seconds until ``client`` may try again, or None when it may try now."""
        entry = self._failures.get(client)
        if entry is None:
            return None
        started, count = entry
        left = started + self.window - self._clock()
        if left <= 0:
            del self._failures[client]
            return None
        return math.ceil(left) if count >= self.limit else None

    def failed(self, client: str) -> None:
        """Count a failed attempt of ``client``."""
        now = self._clock()
        started, count = self._failures.pop(client, (now, 0))
        if started + self.window <= now:
            started, count = now, 0
        while len(self._failures) >= self.max_clients:  # the oldest entry first
            del self._failures[next(iter(self._failures))]
        self._failures[client] = (started, count + 1)

    def succeeded(self, client: str) -> None:
        """A valid token: the client's failures are forgotten."""
        self._failures.pop(client, None)

    def __len__(self) -> int:
        return len(self._failures)
