"""Section KPIs of recommended lists and re-ranks, from the store's logs.

``slotwise recs report`` reads the ``decisions`` log for the decisions of recommendations and
re-ranks (records with ``signals["recs.strategy"]``) and the ``events`` log for what points at
them by ``decision_id``:

- ``impression`` and ``click`` pixels of a list's positions (``properties.slot``, from 1), as
  the proxy writes them into each item's ``tracking``;
- ``add_to_cart`` and ``purchase`` events the shop sends with the ``decision_id`` of the list
  the product came from: attributed to that list (a purchase's value and items counted).

Per list (the recommendation's or re-rank's name): decisions, impressions, clicks, CTR
(clicks / impressions), add-to-carts, purchases, revenue; per position: impressions, clicks.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import msgspec

from slotwise.proxy.decision_codec import decode_stored
from slotwise.proxy.decision_log import DecisionRecord
from slotwise.proxy.state import Store

_PAGE = 1000


class _Props(msgspec.Struct):
    slot: str | None = None
    value: float | None = None


class _Event(msgspec.Struct):
    type: str
    decision_id: str | None = None
    properties: _Props = msgspec.field(default_factory=_Props)


class _Stored(msgspec.Struct):
    event: _Event


_EVENT = msgspec.json.Decoder(_Stored)


@dataclass(slots=True)
class ListKpis:
    name: str
    decisions: int = 0
    strategies: dict[str, int] = field(default_factory=dict)
    impressions: int = 0
    clicks: int = 0
    carts: int = 0
    purchases: int = 0
    revenue: float = 0.0
    positions: dict[int, list[int]] = field(default_factory=dict)  # position -> [shown, clicked]

    @property
    def ctr(self) -> float:
        return self.clicks / self.impressions if self.impressions else 0.0


async def _entries(store: Store, log: str) -> AsyncIterator[bytes]:
    after = "0"
    while True:
        page = await store.log_read(log, after=after, count=_PAGE)
        if not page:
            return
        for entry in page:
            yield entry.data
        after = page[-1].position


async def report(
    store: Store, keep: Callable[[DecisionRecord], bool] | None = None
) -> list[ListKpis]:
    """The KPIs of every list with a decision in the store's logs (that ``keep`` keeps: the
    selection of ``slotwise report``), by name."""
    lists: dict[str, ListKpis] = {}
    owner: dict[str, ListKpis] = {}  # decision id -> its list
    async for data in _entries(store, "decisions"):
        try:
            record = decode_stored(data)
        except msgspec.MsgspecError:
            continue  # another record type of the log
        strategy = record.signals.get("recs.strategy")
        if not isinstance(strategy, str) or record.fail_open is not None:
            continue
        if keep is not None and not keep(record):
            continue
        kpis = lists.setdefault(record.campaign, ListKpis(record.campaign))
        kpis.decisions += 1
        kpis.strategies[strategy] = kpis.strategies.get(strategy, 0) + 1
        owner[record.id] = kpis
    async for data in _entries(store, "events"):
        try:
            event = _EVENT.decode(data).event
        except msgspec.DecodeError:
            continue
        target = owner.get(event.decision_id) if event.decision_id else None
        if target is not None:
            _count(target, event)
    return sorted(lists.values(), key=lambda k: k.name)


def _count(kpis: ListKpis, event: _Event) -> None:
    if event.type in ("impression", "click"):
        try:
            position = int(event.properties.slot or "")
        except ValueError:
            position = 0
        cell = kpis.positions.setdefault(position, [0, 0])
        if event.type == "impression":
            kpis.impressions += 1
            cell[0] += 1
        else:
            kpis.clicks += 1
            cell[1] += 1
    elif event.type == "add_to_cart":
        kpis.carts += 1
    elif event.type == "purchase":
        kpis.purchases += 1
        kpis.revenue += event.properties.value or 0.0
