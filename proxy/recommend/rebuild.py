"""``slotwise recs rebuild``: the recommenders' state learned again from the stored events.

For a store that holds events from before recommendations were switched on (or after the
``recs:*`` keys were deleted): the store's ``events`` log is read from its start, in order,
and every product view, add-to-cart and purchase goes through the same ``learn`` and
``write`` as the event collector's (slotwise.proxy.recommend.state), pairing each subject's
events with what they did before in the log. It adds to whatever state there is: run it on a
store without recommender state, and before the proxies learn from new events, or counts are
doubled.
"""

from __future__ import annotations

from dataclasses import dataclass

import msgspec

from slotwise.proxy.recommend.config import RecsConfig
from slotwise.proxy.recommend.state import TREND_WEIGHTS, Observed, Past, items_of, learn, write
from slotwise.proxy.state import Store

_PAGE = 1000


class _Event(msgspec.Struct):
    type: str
    time: float | None = None
    properties: msgspec.Raw = msgspec.Raw(b"")


class _Stored(msgspec.Struct):
    received: float
    event: _Event


_DECODE = msgspec.json.Decoder(_Stored)


@dataclass(frozen=True, slots=True)
class Rebuilt:
    events: int  # read from the log
    learned: int  # views, add-to-carts and purchases learned from
    sets: int  # scored-set additions written


async def rebuild(store: Store, config: RecsConfig, log: str = "events") -> Rebuilt:
    pasts: dict[str, Past] = {}
    after = "0"
    events = learned = sets = 0
    while True:
        page = await store.log_read(log, after=after, count=_PAGE)
        if not page:
            break
        after = page[-1].position
        batch: list[Observed] = []
        for entry in page:
            events += 1
            try:
                stored = _DECODE.decode(entry.data)
            except msgspec.DecodeError:
                continue
            event = stored.event
            if event.type not in TREND_WEIGHTS:
                continue
            items = items_of(event.type, bytes(event.properties))
            if items:
                at = event.time if event.time is not None else stored.received
                batch.append(Observed(entry.subject, event.type, at, items))
        for observed in batch:
            if observed.subject is not None and observed.subject not in pasts:
                pasts[observed.subject] = Past()
        increments = learn(batch, pasts, config)
        learned += len(batch)
        sets += len(increments.sets)
        await write(store, increments, config)
    return Rebuilt(events, learned, sets)
