"""The sender's lease: one active sender across every proxy on a store.

Time is cut into windows of ``seconds``; the holder of window ``w`` is whoever first set the
store key of ``w`` (``set_if_absent``, atomic on every backend). The holder claims ``w + 1``
as soon as it holds ``w``; a standby only ever claims the window its clock is in. So the holder
keeps the lease for as long as it renews, and when it dies a standby takes over within two
windows, with no compare-and-set needed. Clocks may differ between proxies by less than a
window. A holder that stops (shutdown) deletes its windows so a standby takes over at once.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Callable

from slotwise.proxy.state.base import Store, now

LEASE_PREFIX = "notify:lease:"


class Lease:
    def __init__(
        self,
        store: Store,
        seconds: float,
        *,
        owner: str | None = None,
        clock: Callable[[], float] = now,
    ) -> None:
        self.store = store
        self.seconds = seconds
        self.owner = owner or secrets.token_hex(8)
        self.clock = clock
        self._owned: set[int] = set()

    def _key(self, window: int) -> str:
        return f"{LEASE_PREFIX}{window}"

    async def _claim(self, window: int) -> bool:
        if window in self._owned:
            return True
        key = self._key(window)
        # the key outlives its window, so a late claim of a passed window fails
        mine = await self.store.set_if_absent(key, self.owner.encode(), ttl=self.seconds * 4)
        if not mine:
            mine = await self.store.get(key) == self.owner.encode()
        if mine:
            self._owned.add(window)
        return mine

    async def hold(self) -> bool:
        """Whether this sender holds the lease now (claiming and renewing as it goes)."""
        window = math.floor(self.clock() / self.seconds)
        self._owned = {w for w in self._owned if w >= window}
        if not await self._claim(window):
            return False
        await self._claim(window + 1)
        return True

    def valid_for(self) -> float:
        """Seconds left of the windows held without a gap from now (0: not holding)."""
        at = self.clock()
        window = math.floor(at / self.seconds)
        end = window
        while end in self._owned:
            end += 1
        return max(0.0, end * self.seconds - at) if end > window else 0.0

    async def release(self) -> None:
        if self._owned:
            await self.store.delete(*(self._key(w) for w in self._owned))
        self._owned.clear()
