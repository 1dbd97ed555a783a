"""Frequency caps (``cap 2 per 1d`` in a campaign or trigger), enforced across proxies.

A cap counts a user's decisions of one campaign (or one trigger's campaign) in fixed windows
of its period, aligned to the epoch: one store counter per (user, campaign or trigger, window),
``subject_key(user, "cap:campaign:NAME:WINDOW")``, which expires with its window and is erased
with the user. Every proxy increments the same counters, so the cap holds across proxies.

Reading costs a request nothing extra: the ``profile`` provider reads the user's current
counters in the same ``get_many`` as the profile and cart (:func:`cap_keys`, handed to
slotwise.plugins.profile_source.StoreProfileSource) and lists the capped names in the
``user.capped`` signal (``campaign:NAME``, ``trigger:NAME``). Counting is off the request path:
a decided response queues its increments (:meth:`CapCounter.count`, no I/O) and a task of the
app's lifespan applies them every :data:`FLUSH_INTERVAL` seconds, so a cap may be overshot by
the decisions of that interval. Held-out decisions count too (a control user had the same
opportunity), so the cap shapes both groups alike. Caps apply to users with an id (personal
consent): without one there is nobody to count.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Final

from slotwise.proxy.state import Store, subject_key

if TYPE_CHECKING:
    from slotwise.dsl.compiled import CompiledPolicySet, FrequencyCap

log = logging.getLogger("slotwise.caps")
FLUSH_INTERVAL: Final = 0.02  # seconds between two flushes of queued increments
_FAN_OUT: Final = 16


def cap_key(user: str, label: str, cap: FrequencyCap, now: float) -> str:
    """The counter of ``label`` (``campaign:NAME`` or ``trigger:NAME``) for ``now``'s window."""
    return subject_key(user, f"cap:{label}:{int(now // cap.per)}")


def caps_of(policy: CompiledPolicySet) -> list[tuple[str, FrequencyCap]]:
    """(label, cap) of every capped campaign and trigger of the policy."""
    found = [(f"campaign:{c.name}", c.cap) for c in policy.campaigns if c.cap is not None]
    found += [(f"trigger:{t.name}", t.cap) for t in policy.triggers if t.cap is not None]
    return found


def cap_keys(
    policy: Callable[[], CompiledPolicySet | None],
) -> Callable[[str, float], Sequence[tuple[str, str, int]]]:
    """For the profile source: (label, counter key, limit) of a user's caps at a time."""
    cached: list[object] = [None, []]

    def keys(user: str, now: float) -> Sequence[tuple[str, str, int]]:
        current = policy()
        if current is None:
            return ()
        if cached[0] is not current:
            cached[0], cached[1] = current, caps_of(current)
        caps: list[tuple[str, FrequencyCap]] = cached[1]  # type: ignore[assignment]
        return [(label, cap_key(user, label, cap, now), cap.count) for label, cap in caps]

    return keys


class CapCounter:
    """Queued increments of cap counters, applied by :meth:`run` (a lifespan task)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._pending: dict[str, list[float]] = {}  # key -> [count, ttl]

    def count(self, user: str, label: str, cap: FrequencyCap, now: float) -> None:
        """One more decision of ``label`` for ``user`` (no I/O: queued)."""
        key = cap_key(user, label, cap, now)
        entry = self._pending.get(key)
        if entry is None:
            # the counter lives as long as its window (a little longer: clocks differ)
            self._pending[key] = [1, cap.per - now % cap.per + 60.0]
        else:
            entry[0] += 1

    async def flush(self) -> int:
        """Apply the queued increments; how many counters were bumped."""
        pending, self._pending = self._pending, {}
        items = list(pending.items())
        for start in range(0, len(items), _FAN_OUT):
            await asyncio.gather(
                *(
                    self.store.incr(key, int(count), ttl=ttl)
                    for key, (count, ttl) in items[start : start + _FAN_OUT]
                )
            )
        return len(items)

    async def run(self, interval: float = FLUSH_INTERVAL) -> None:
        while True:
            await asyncio.sleep(interval)
            if not self._pending:
                continue
            try:
                await self.flush()
            except Exception as exc:  # counts lost for this interval; serving goes on
                log.warning("frequency cap counts not stored: %s", exc)
