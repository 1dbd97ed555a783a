"""What the recommenders read of one visitor: recent views, purchases, cart, actions.

Built from the event history the ``profile`` provider read for the request (no store read of
its own): product views newest first (``last_visit``, seeds of ``hybrid``), purchased items
(``exclude purchased``), the cart (``exclude in_cart``), and every product action with its
time for re-rank affinities.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import msgspec

from slotwise.proxy.recommend.state import items_of

# what each affinity metric counts (rerank ... by affinity(METRIC: ...)); a click on a
# product in a listing is the view of its page, or a click on a recommended item
METRIC_EVENTS = {
    "clicks": frozenset({"product_view", "click"}),
    "views": frozenset({"product_view"}),
    "carts": frozenset({"add_to_cart"}),
    "purchases": frozenset({"purchase"}),
}
_ACTIONS = frozenset({"product_view", "add_to_cart", "purchase", "click"})


class _Clicked(msgspec.Struct):
    variant: str | None = None


_CLICKED = msgspec.json.Decoder(_Clicked)


@dataclass(frozen=True, slots=True)
class Visitor:
    views: tuple[tuple[str, float], ...] = ()  # distinct products, newest first
    purchased: frozenset[str] = frozenset()
    in_cart: frozenset[str] = frozenset()
    actions: tuple[tuple[str, str, float], ...] = ()  # (event type, product, time)

    @property
    def known(self) -> bool:
        return bool(self.actions)


NO_VISITOR = Visitor()


def visitor_of(events: Sequence[tuple[str, float, bytes]], cart: Iterable[str]) -> Visitor:
    """The visitor of a history ((event type, time, properties), oldest first) and a cart."""
    actions: list[tuple[str, str, float]] = []
    for kind, at, data in events:
        if kind not in _ACTIONS:
            continue
        if kind == "click":
            try:
                variant = _CLICKED.decode(data).variant if data else None
            except (msgspec.DecodeError, UnicodeDecodeError):
                variant = None
            if variant:
                actions.append((kind, variant, at))
            continue
        actions.extend((kind, item, at) for item in items_of(kind, data))
    views: dict[str, float] = {}
    purchased: set[str] = set()
    for kind, item, at in reversed(actions):
        if kind == "product_view" and item not in views:
            views[item] = at
        elif kind == "purchase":
            purchased.add(item)
    return Visitor(tuple(views.items()), frozenset(purchased), frozenset(cart), tuple(actions))
