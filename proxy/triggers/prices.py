"""Price drops: a catalogue price update fires ``price_drop`` for the users who looked.

When a trigger of the serving policy listens to ``price_drop``, every accepted personal
``product_view`` and ``price_check`` is indexed: the user joins the product's viewer set of
that day (``triggers:viewers:PRODUCT:DAY``, kept :data:`INDEX_DAYS`), and the product joins the
user's own ``viewed`` set (a per-user key, erased with the user, which is how erasure finds
the viewer sets to leave). ``POST /_sw/admin/prices`` reports price updates
(slotwise.proxy.triggers.admin); for each update whose new price is lower, the users who viewed
or price-checked that product within ``within`` seconds (checked against their history, so
the day buckets never widen the window) get one ``price_drop`` event each, collected like any
other personal event: stored in the events log, added to their history, and driving their
triggers. The event id is derived from (product, old price, new price, user), so reporting the
same update twice fires once.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from typing import Any, Final

import msgspec

from slotwise.proxy.state import Store, subject_key
from slotwise.proxy.state.base import escape_key_part

PRICE_DROP: Final = "price_drop"
VIEWS: Final = frozenset({"product_view", "price_check"})
VIEWED: Final = "viewed"  # the per-user set of viewed product ids
INDEX_DAYS: Final = 31  # how long a day's viewer set is kept
_DAY: Final = 86_400.0


class _Product(msgspec.Struct):
    product_id: str


def viewers_key(product: str, day: int) -> str:
    return f"triggers:viewers:{escape_key_part(product)}:{day}"


async def index_views(
    store: Store, events: Sequence[tuple[str, Any]], now: float, ttl: float | None
) -> None:
    """Index the product views and price checks among ``events`` ((user, event) pairs)."""
    from slotwise.proxy.events.schema import event_type

    by_key: dict[str, set[bytes]] = {}
    viewed: dict[str, set[bytes]] = {}
    for subject, event in events:
        if event_type(event) not in VIEWS:
            continue
        product = event.properties.product_id
        day = int(min(event.time or now, now) // _DAY)
        by_key.setdefault(viewers_key(product, day), set()).add(subject.encode())
        viewed.setdefault(subject, set()).add(product.encode())
    for key, members in by_key.items():
        await store.set_add(key, *sorted(members), ttl=INDEX_DAYS * _DAY)
    for subject, products in viewed.items():
        await store.set_add(subject_key(subject, VIEWED), *sorted(products), ttl=ttl)


async def forget_views(store: Store, subject: str) -> int:
    """Erasure: take ``subject`` out of the viewer sets of every product they viewed."""
    products = await store.set_members(subject_key(subject, VIEWED))
    if not products:
        return 0
    removed = 0
    today = int(_now() // _DAY)
    for product in sorted(products):
        for day in range(today - INDEX_DAYS, today + 2):
            removed += await store.set_remove(viewers_key(product.decode(), day), subject.encode())
    return removed


async def viewers(store: Store, product: str, *, within: float, now: float) -> list[str]:
    """The users who viewed or price-checked ``product`` in ``[now - within, now]``."""
    from slotwise.proxy.events.collector import history_key
    from slotwise.proxy.events.erasure import erased_key

    first, last = int((now - within) // _DAY), int(now // _DAY)
    candidates: set[bytes] = set()
    for day in range(first, last + 1):
        candidates |= await store.set_members(viewers_key(product, day))
    users = sorted(member.decode() for member in candidates)
    if not users:
        return []
    markers = await store.get_many([erased_key(u) for u in users])
    found = []
    for user, marker in zip(users, markers, strict=True):
        if marker is not None:
            continue
        history = await store.history(history_key(user), since=now - within)
        if any(_is_view_of(item, product) for item in history):
            found.append(user)
    return found


def _is_view_of(item: Any, product: str) -> bool:
    if item.event not in VIEWS or not item.data:
        return False
    try:
        return bool(msgspec.json.decode(item.data, type=_Product).product_id == product)
    except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError):
        return False


def drop_event_id(product: str, old: float, new: float, user: str) -> str:
    digest = hashlib.sha256(f"{product}\x1f{old!r}\x1f{new!r}\x1f{user}".encode()).hexdigest()
    return f"price-drop.{digest[:32]}"


def drop_events(
    product: str, old: float, new: float, currency: str | None, users: Iterable[str], now: float
) -> list[Any]:
    """One ``price_drop`` event per user (ids deduplicate a repeated report)."""
    from slotwise.proxy.events.schema import Rejection, convert_event

    events = []
    for user in users:
        properties: dict[str, Any] = {"product_id": product, "old_price": old, "new_price": new}
        if currency is not None:
            properties["currency"] = currency
        event = convert_event(
            {"type": PRICE_DROP, "id": drop_event_id(product, old, new, user), "time": now,
             "user_id": user, "properties": properties}
        )  # fmt: skip
        if not isinstance(event, Rejection):  # a user id the schema refuses: not fired
            events.append(event)
    return events


def _now() -> float:
    import time

    return time.time()
