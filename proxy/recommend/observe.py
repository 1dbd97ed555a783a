"""The recommenders learn from the events the proxy accepts (called by the event collector).

After a batch is durably stored, off the reply path: its product views, add-to-carts and
purchases become trending counts and (for events with a subject) co-views and co-purchases,
paired with what that subject did before (read from their stored history, before the batch
is appended to it). Contextual events (no identifiers) count for trending only.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from slotwise.proxy.recommend.config import RecsConfig
from slotwise.proxy.recommend.state import (
    TREND_WEIGHTS,
    Observed,
    Past,
    items_of,
    learn,
    past_of,
    write,
)
from slotwise.proxy.state import Store, subject_key

if TYPE_CHECKING:
    from slotwise.proxy.events.schema import Event

_PAIRED = frozenset({"product_view", "purchase"})


class RecsObserver:
    """Long-lived (the app's lifespan): one per worker, writing to the shared store."""

    def __init__(self, store: Store, config: RecsConfig | None = None) -> None:
        self.store = store
        self.config = config or RecsConfig()

    async def observe(self, events: Sequence[Event], subjects: Sequence[str | None]) -> None:
        """Learn from stored events; ``subjects`` are their resolved subjects (None: none)."""
        from slotwise.proxy.events.schema import event_type

        observed: list[Observed] = []
        for event, subject in zip(events, subjects, strict=True):
            kind = event_type(event)
            if kind not in TREND_WEIGHTS:
                continue
            items = items_of(kind, _properties(event))
            if items and event.time is not None:
                observed.append(Observed(subject, kind, event.time, items))
        if not observed:
            return
        observed.sort(key=lambda o: o.at)
        pasts: dict[str, Past] = {}
        for subject in sorted({o.subject for o in observed if o.subject and o.kind in _PAIRED}):
            history = await self.store.history(subject_key(subject, "history"))
            pasts[subject] = past_of([(h.event, h.at, h.data) for h in history])
        increments = learn(observed, pasts, self.config)
        if increments:
            await write(self.store, increments, self.config)


def _properties(event: Event) -> bytes:
    import msgspec

    properties = getattr(event, "properties", None)
    return msgspec.json.encode(properties) if properties is not None else b""
