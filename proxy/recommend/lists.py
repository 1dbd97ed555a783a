"""From ranked candidates to the list a storefront shows: exclusions, diversity, the limit,
and the items in the storefront's own shape with their trackers.

Exclusions (the policy's ``exclude``): ``unavailable`` (out of stock in the catalogue now),
``purchased``, ``in_cart``, ``viewed``; items the catalogue does not know are never
recommended, nor the page's own product. ``at most N per category`` keeps the first N of
each category (or brand) and moves on.

The shape: the keys of the list's first item as the upstream sent it (a list of ids stays a
list of ids); for an empty list, ``DEFAULT_FIELDS``. Each key is filled from the catalogue
item: its field of that name, an alias (``product_id``, ``sku``: the id; ``name``: the
title), or an attribute; a key the catalogue cannot fill is left out. Each item gets
``tracking``: the position's impression and click pixels, naming the list (``campaign``),
the position (``slot``, from 1) and the item (``variant``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any
from urllib.parse import quote

from slotwise.proxy.catalogue import CatalogueSnapshot, Item
from slotwise.proxy.recommend.visitor import Visitor
from slotwise.proxy.tracking import PIXEL_PATH

DEFAULT_FIELDS = ("id", "title", "price", "currency", "image", "url", "category", "brand")
_ID_KEYS = frozenset({"id", "product_id", "sku", "item_id"})
_ALIASES = {"name": "title", "in_stock": "available"}
TRACKING_KEY = "tracking"


def select(
    ranked: Iterable[tuple[str, float]],
    catalogue: CatalogueSnapshot,
    visitor: Visitor,
    exclude: Sequence[str],
    limit: int,
    diversity: tuple[int, str] | None,
    page: str | None,
    already: Sequence[str] = (),
) -> list[str]:
    """The first ``limit`` candidates the exclusions and the diversity leave."""
    chosen = list(already)
    taken = set(chosen)
    unavailable = "unavailable" in exclude
    banned: set[str] = set()
    if "purchased" in exclude:
        banned |= visitor.purchased
    if "in_cart" in exclude:
        banned |= visitor.in_cart
    if "viewed" in exclude:
        banned.update(item for item, _ in visitor.views)
    if page:
        banned.add(page)
    per: dict[str, int] = {}
    if diversity is not None:
        for item_id in chosen:
            item = catalogue.get(item_id)
            if item is not None:
                value = getattr(item, diversity[1])
                per[value] = per.get(value, 0) + 1
    for item_id, _ in ranked:
        if len(chosen) >= limit:
            break
        if item_id in taken or item_id in banned:
            continue
        item = catalogue.get(item_id)
        if item is None or (unavailable and not item.available):
            continue
        if diversity is not None:
            value = getattr(item, diversity[1])
            if per.get(value, 0) >= diversity[0]:
                continue
            per[value] = per.get(value, 0) + 1
        chosen.append(item_id)
        taken.add(item_id)
    return chosen


def shape_of(upstream: Sequence[Any]) -> tuple[str, ...] | None:
    """The item keys of the upstream's list; None when it is a list of ids."""
    if upstream and not isinstance(upstream[0], dict):
        return None
    if upstream:
        return tuple(k for k in upstream[0] if k != TRACKING_KEY)
    return DEFAULT_FIELDS


def written(item: Item, shape: tuple[str, ...]) -> dict[str, Any]:
    """The item in the storefront's shape (keys the catalogue cannot fill are left out)."""
    out: dict[str, Any] = {}
    for key in shape:
        if key in _ID_KEYS:
            out[key] = item.id
            continue
        name = _ALIASES.get(key, key)
        if name in Item.__struct_fields__ and name != "attributes":
            value = getattr(item, name)
            if value is not None and value != "":
                out[key] = value
        elif key in item.attributes:
            out[key] = item.attributes[key]
    return out


class Pixels:
    """The impression and click pixels of the positions of one list (one decision)."""

    __slots__ = ("_click", "_common", "_impression")

    def __init__(self, origin: str, decision_id: str, name: str) -> None:
        did = _quoted(decision_id)
        base = f"{origin}{PIXEL_PATH}"
        self._impression = f"{base}?t=impression&id={did}.i"
        self._click = f"{base}?t=click&id={did}.c"
        self._common = f"&did={did}&p.campaign={_quoted(name)}&p.slot="

    def at(self, position: int, item_id: str) -> dict[str, str]:
        rest = f"{self._common}{position}&p.variant={_quoted(item_id)}"
        return {
            "impression": f"{self._impression}{position}{rest}",
            "click": f"{self._click}{position}{rest}",
        }


_SAFE = re.compile(r"[A-Za-z0-9_.-]+")


def _quoted(text: str) -> str:
    return text if _SAFE.fullmatch(text) else quote(text, safe="")


def item_id_of(entry: Any) -> str | None:
    """The product id of one entry of an upstream list (an id, or an object with one)."""
    if isinstance(entry, str):
        return entry
    if isinstance(entry, int) and not isinstance(entry, bool):
        return str(entry)
    if isinstance(entry, dict):
        for key in ("id", "product_id", "sku", "item_id"):
            value = entry.get(key)
            if isinstance(value, str):
                return value
            if isinstance(value, int) and not isinstance(value, bool):
                return str(value)
    return None
