"""Daily discount budgets per offer set, shared by every proxy through the store.

``offers.budgets`` gives an offer set a daily budget in the base currency. What its redeemed
offers cost is added up per UTC day in one store counter (``offers:budget:SET:DAY``, in
cents), by whichever proxy receives the purchase: the purchase's offer id names the decision,
and the decision's offer set is found in the ledger the proxy that served it wrote
(``offers:decision:ID``, kept for a few days, written off the request path in batches, only
for offer sets with a budget).

The request path never waits for the store: :class:`OfferBudgets` holds an immutable set of
the offer sets whose budget is spent today, refreshed every ``offers.budget_refresh`` seconds
by a background task. A spent set stops discounting: it serves ``none`` (decision records say
``budget_spent``) until the next UTC day. A purchase may overshoot the budget by what is
redeemed within one refresh interval, never more.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Sequence

from slotwise.proxy.events.schema import Event, PurchaseEvent
from slotwise.proxy.offer_money import arm_of, order_money, parse_offer_id
from slotwise.proxy.offers_config import OffersConfig
from slotwise.proxy.state import Store

_log = logging.getLogger(__name__)
_DAY = 86_400
LEDGER_TTL = 7 * _DAY  # a purchase later than this after its offer is not charged to a budget
_FLUSH_EVERY = 0.2
_MAX_QUEUED = 100_000


def day_of(ts: float) -> str:
    """The UTC day ``ts`` falls in, as the budget keys name it (2026-12-05)."""
    return time.strftime("%Y-%m-%d", time.gmtime(ts))


def budget_key(offer_set: str, day: str) -> str:
    return f"offers:budget:{offer_set}:{day}"


def ledger_key(decision_id: str) -> str:
    return f"offers:decision:{decision_id}"


class OfferBudgets:
    """The spent offer sets (read on the request path) and the work that keeps them true.

    ``spent`` is swapped whole by the refresh task; ``served`` only appends to a deque (no
    I/O); both are safe from the event loop's thread without a lock.
    """

    def __init__(self, store: Store | None, config: OffersConfig) -> None:
        self.store = store
        self.config = config
        self.spent: frozenset[str] = frozenset()
        self._ledger: deque[tuple[str, str]] = deque()
        self.dropped = 0

    @property
    def budgeted(self) -> bool:
        return bool(self.config.budgets)

    def served(self, decision_id: str, offer_set: str) -> None:
        """Remember which offer set a decision with a costly offer belongs to (no I/O)."""
        if offer_set in self.config.budgets:
            if len(self._ledger) >= _MAX_QUEUED:
                self.dropped += 1
                return
            self._ledger.append((decision_id, offer_set))

    async def flush(self) -> None:
        """Write the queued ledger entries to the store."""
        store = self.store
        while self._ledger and store is not None:
            decision_id, offer_set = self._ledger[0]
            await store.set(ledger_key(decision_id), offer_set.encode(), ttl=LEDGER_TTL)
            self._ledger.popleft()

    async def refresh(self, now: float | None = None) -> frozenset[str]:
        """Read today's spend of every budgeted set; the spent ones become ``spent``."""
        if self.store is None or not self.config.budgets:
            return self.spent
        day = day_of(time.time() if now is None else now)
        spent = set()
        for offer_set, budget in self.config.budgets.items():
            cents = await self.store.counter(budget_key(offer_set, day))
            if cents >= round(budget * 100):
                spent.add(offer_set)
        self.spent = frozenset(spent)
        return self.spent

    async def charge(self, events: Sequence[Event]) -> None:
        """Add what the redeemed offers of these newly stored purchases cost to their sets'
        budgets of the day (the purchase's day)."""
        if self.store is None or not self.config.budgets:
            return
        for event in events:
            if not isinstance(event, PurchaseEvent) or event.properties.offer_id is None:
                continue
            parsed = parse_offer_id(event.properties.offer_id)
            arm = arm_of(parsed[1]) if parsed is not None else None
            if parsed is None or arm is None or arm.kind == "none":
                continue
            found = await self.store.get(ledger_key(parsed[0]))
            if found is None:
                continue  # not an offer of a budgeted set (or older than the ledger keeps)
            props = event.properties
            try:
                money = order_money(
                    props, arm, self.config, discount=props.discount, shipping=props.shipping
                )
            except ValueError:
                continue  # refused at ingest already; never charged in a guessed currency
            cents = round(money.discount_cost * 100)
            if cents > 0:
                day = day_of(event.time or time.time())
                key = budget_key(found.decode(), day)
                await self.store.incr(key, cents, ttl=2 * _DAY)

    async def run(self) -> None:
        """Flush the ledger and refresh the spent sets, until cancelled."""
        refresh_every = self.config.budget_refresh
        next_refresh = 0.0
        while True:
            try:
                await self.flush()
                if time.monotonic() >= next_refresh:
                    await self.refresh()
                    next_refresh = time.monotonic() + refresh_every
            except Exception as exc:  # a store outage: serve with what is known, retry
                _log.warning("offer budgets: %s", exc)
            await asyncio.sleep(min(_FLUSH_EVERY, refresh_every))


__all__ = ["OfferBudgets", "budget_key", "day_of", "ledger_key"]
