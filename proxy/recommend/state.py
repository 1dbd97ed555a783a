"""The recommenders' state in the store, and how events change it.

Kept in the state store (any backend), so that every worker and machine serves from the same
counts, bounded everywhere:

- ``recs:trend:<bucket>``: per ``trending_bucket`` seconds, a scored set of items counted
  (a view 1, an add-to-cart 2, a purchase 3), the ``trending_per_bucket`` most counted kept,
  expiring after ``trending_max_window``;
- ``recs:cv:<item>``: the items viewed in the same session as ``item`` (within
  ``co_view_span`` views of each other), and ``recs:cb:<item>``: the items bought in the same
  order or by the same person; the ``neighbours`` strongest kept per item. Each co-occurrence
  adds ``2 ** ((t - T0) / neighbour_half_life)`` (forward decay): a newer one weighs more,
  so an old pairing fades against newer ones without ever rewriting the set;
- per user, nothing new: the recommenders read the user's event history (the collector's
  ``subject_key(user, "history")``, erased with the user).

:func:`learn` turns events, and what each subject did before in the session, into
increments; :func:`write` adds them to the store. Production (the event collector, off the
reply path) and ``slotwise recs replay`` run exactly these two.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import msgspec

from slotwise.proxy.recommend.config import RecsConfig
from slotwise.proxy.state import Store
from slotwise.proxy.state.base import escape_key_part

T0 = 1_600_000_000.0  # the forward-decay landmark (2020-09-13): weights stay finite to 2100
TREND_WEIGHTS: Mapping[str, float] = {"product_view": 1.0, "add_to_cart": 2.0, "purchase": 3.0}
_EARLIER_PURCHASES = 10  # a purchase is paired with this many of the buyer's earlier ones
_EARLIER_WEIGHT = 0.5  # bought by the same person, not in the same order: half a pairing


def trend_key(bucket: int) -> str:
    return f"recs:trend:{bucket}"


def co_view_key(item: str) -> str:
    return f"recs:cv:{escape_key_part(item)}"


def co_buy_key(item: str) -> str:
    return f"recs:cb:{escape_key_part(item)}"


def decayed(at: float, half_life: float) -> float:
    """The forward-decay weight of something that happened at ``at``."""
    return float(2.0 ** ((at - T0) / half_life))


@dataclass(frozen=True, slots=True)
class Observed:
    """One event as the recommenders learn from it: who, what kind, when, which items."""

    subject: str | None
    kind: str  # product_view, add_to_cart or purchase
    at: float
    items: tuple[str, ...]


@dataclass(slots=True)
class Past:
    """What one subject did before: product views and purchased items, oldest first."""

    views: list[tuple[str, float]] = field(default_factory=list)
    purchases: list[tuple[str, float]] = field(default_factory=list)


@dataclass(slots=True)
class Increments:
    """What to add to which scored set."""

    sets: dict[str, dict[bytes, float]] = field(default_factory=dict)

    def add(self, key: str, member: str, amount: float) -> None:
        scores = self.sets.setdefault(key, {})
        encoded = member.encode()
        scores[encoded] = scores.get(encoded, 0.0) + amount

    def __bool__(self) -> bool:
        return bool(self.sets)


def learn(events: Iterable[Observed], pasts: Mapping[str, Past], config: RecsConfig) -> Increments:
    """The increments these events make, in time order; ``pasts`` (by subject) is updated as
    the events are read, so a batch pairs with itself as it would one event at a time."""
    out = Increments()
    bucket_seconds = config.trending_bucket
    for event in events:
        weight = TREND_WEIGHTS.get(event.kind)
        if weight is None or not event.items:
            continue
        bucket = int(event.at // bucket_seconds)
        for item in event.items:
            out.add(trend_key(bucket), item, weight)
        past = pasts.get(event.subject) if event.subject is not None else None
        if past is None:
            continue
        if event.kind == "product_view":
            _co_view(out, past, event, config)
        elif event.kind == "purchase":
            _co_buy(out, past, event, config)
    return out


def _co_view(out: Increments, past: Past, event: Observed, config: RecsConfig) -> None:
    item = event.items[0]
    weight = decayed(event.at, config.neighbour_half_life)
    paired: set[str] = set()
    last = event.at
    for other, at in reversed(past.views):
        if last - at > config.session_gap or len(paired) >= config.co_view_span:
            break  # an earlier session, or far enough back
        last = at
        if other != item and other not in paired:
            paired.add(other)
            out.add(co_view_key(item), other, weight)
            out.add(co_view_key(other), item, weight)
    past.views.append((item, event.at))
    if len(past.views) > 4 * config.co_view_span:
        del past.views[: -2 * config.co_view_span]


def _co_buy(out: Increments, past: Past, event: Observed, config: RecsConfig) -> None:
    weight = decayed(event.at, config.neighbour_half_life)
    order = list(dict.fromkeys(event.items))
    for index, item in enumerate(order):
        for other in order[index + 1 :]:
            out.add(co_buy_key(item), other, weight)
            out.add(co_buy_key(other), item, weight)
    earlier = list(dict.fromkeys(i for i, _ in reversed(past.purchases) if i not in order))
    for other in earlier[:_EARLIER_PURCHASES]:
        for item in order:
            out.add(co_buy_key(item), other, weight * _EARLIER_WEIGHT)
            out.add(co_buy_key(other), item, weight * _EARLIER_WEIGHT)
    past.purchases.extend((item, event.at) for item in order)
    if len(past.purchases) > 4 * _EARLIER_PURCHASES:
        del past.purchases[: -2 * _EARLIER_PURCHASES]


async def write(store: Store, increments: Increments, config: RecsConfig) -> None:
    """Add the increments to the store, one atomic add per scored set."""
    for key, scores in increments.sets.items():
        if key.startswith("recs:trend:"):
            ttl = config.trending_max_window + config.trending_bucket
            await store.scores_add(key, scores, max_len=config.trending_per_bucket, ttl=ttl)
        else:
            await store.scores_add(key, scores, max_len=config.neighbours, ttl=config.neighbour_ttl)


# -- reading events and histories ------------------------------------------------------------


class _Product(msgspec.Struct):
    product_id: str


class _Line(msgspec.Struct):
    product_id: str


class _Order(msgspec.Struct):
    items: list[_Line] = []


_PRODUCT = msgspec.json.Decoder(_Product)
_ORDER = msgspec.json.Decoder(_Order)


def items_of(kind: str, data: bytes) -> tuple[str, ...]:
    """The product ids a stored event's JSON properties name (none when unreadable)."""
    if not data or kind not in TREND_WEIGHTS:
        return ()
    try:
        if kind == "purchase":
            return tuple(line.product_id for line in _ORDER.decode(data).items)
        return (_PRODUCT.decode(data).product_id,)
    except (msgspec.DecodeError, UnicodeDecodeError):
        return ()


def past_of(history: Sequence[tuple[str, float, bytes]]) -> Past:
    """A subject's past from their stored history: (event type, time, properties)."""
    past = Past()
    for kind, at, data in history:
        if kind == "product_view":
            past.views.extend((item, at) for item in items_of(kind, data))
        elif kind == "purchase":
            past.purchases.extend((item, at) for item in items_of(kind, data))
    return past
