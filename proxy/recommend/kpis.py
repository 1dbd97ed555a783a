"""Section KPIs as metrics: what each recommended list's positions were shown and clicked, and
what was put in the cart and bought from them (``/_sw/metrics``, beside ``slotwise recs report``).

Called with the events the collector stored (``EventCollector.after_store``: each event once,
deduplicated by its id, off the reply path):

- an ``impression`` or ``click`` pixel of a list (``properties.campaign`` a recommendation or
  re-rank of the policies served now, ``properties.slot`` a position from 1 to the list's
  ``limit``) counts in ``slotwise_recs_impressions_total`` / ``slotwise_recs_clicks_total``
  ``{list, position}``; other pixels (campaigns', or names and positions a client made up) are
  not counted here, so the labels stay as few as the policy's lists and positions;
- a click also records its list under its decision id in the store (``recs:did:<id>``, for
  ``ATTRIBUTION_TTL``), so any worker or machine on that store attributes what follows;
- an ``add_to_cart`` or ``purchase`` with the ``decision_id`` of a clicked list item counts in
  ``slotwise_recs_attributed_total{list, event}``, a purchase's value in
  ``slotwise_recs_attributed_value_total{list, currency}``.

``slotwise recs report`` counts from the logs (decisions, and add-to-carts with a list's
decision id whether or not its click arrived); these counters are the live view since the
process started, added up over the workers like every counter.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from slotwise.proxy.metrics import KpiCounters
from slotwise.proxy.state import Store

if TYPE_CHECKING:
    from slotwise.proxy.events.schema import Event

ATTRIBUTION_TTL = 7 * 86400.0  # how long after a click its add-to-carts and purchases count
UNLIMITED = 200  # the positions counted of a re-rank without a limit
_KEY = "recs:did:"


def lists_of(policy: Any) -> dict[str, int]:
    """The lists of a compiled policy set: name -> the positions counted."""
    if policy is None:
        return {}
    lists = {r.name: r.limit for r in policy.recommendations}
    lists.update({r.name: r.limit or UNLIMITED for r in policy.reranks})
    return lists


class SectionKpis:
    """Long-lived (the app's lifespan): one per worker."""

    def __init__(self, store: Store, counters: KpiCounters, policy: Callable[[], Any]) -> None:
        self.store = store
        self.counters = counters
        self.policy = policy  # the compiled policy set served now (None: none)
        self._cached: tuple[Any, Mapping[str, int]] = (None, {})

    def _lists(self) -> Mapping[str, int]:
        policy = self.policy()
        if policy is not self._cached[0]:
            self._cached = (policy, lists_of(policy))
        return self._cached[1]

    async def observe(self, events: Sequence[Event]) -> None:
        from slotwise.proxy.events.schema import event_type

        lists = self._lists()
        clicked: dict[str, str] = {}
        attributed: list[tuple[Event, str]] = []
        for event in events:
            kind = event_type(event)
            if kind in ("impression", "click"):
                name = self._pixel(event, kind, lists)
                if name is not None and kind == "click" and event.decision_id:
                    clicked[event.decision_id] = name
            elif kind in ("add_to_cart", "purchase") and event.decision_id:
                attributed.append((event, kind))
        for decision_id, name in clicked.items():
            await self.store.set(_KEY + decision_id, name.encode(), ttl=ATTRIBUTION_TTL)
        if attributed:
            found = await self.store.get_many([_KEY + str(e.decision_id) for e, _ in attributed])
            for (event, kind), value in zip(attributed, found, strict=True):
                name = value.decode() if value is not None else None
                if name is not None and name in lists:
                    self._attribute(event, kind, name)

    def _pixel(self, event: Event, kind: str, lists: Mapping[str, int]) -> str | None:
        properties = event.properties
        name: str | None = getattr(properties, "campaign", None)
        slot: str | None = getattr(properties, "slot", None)
        if name is None or slot is None or not (slot.isascii() and slot.isdigit()):
            return None
        limit = lists.get(name)
        if limit is None or not 1 <= int(slot) <= limit:
            return None
        counter = self.counters.impressions if kind == "impression" else self.counters.clicks
        counter.inc(name, str(int(slot)))
        return name

    def _attribute(self, event: Event, kind: str, name: str) -> None:
        self.counters.attributed.inc(name, kind)
        properties = event.properties
        value = getattr(properties, "value", None)
        currency = getattr(properties, "currency", None)
        if kind == "purchase" and value and currency:
            self.counters.value.inc(name, str(currency), amount=float(value))
