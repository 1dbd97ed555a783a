"""The catalogue as the request path reads it: one immutable snapshot, swapped whole.

A :class:`CatalogueSnapshot` maps ids to items and keeps, per category and per brand, the ids
in it (for similar items). A change makes a new snapshot (copy-on-write of the item map; the
indexes are rebuilt only when a category or brand changed), which the holder then swaps in
by reference, so a request reads one consistent catalogue without a lock.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from slotwise.proxy.catalogue.item import Item, ItemChange

_EMPTY: Mapping[str, tuple[str, ...]] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class CatalogueSnapshot:
    """Items by id, and the ids of each category and brand (in catalogue order)."""

    items: Mapping[str, Item] = field(default_factory=dict)
    by_category: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: _EMPTY)
    by_brand: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: _EMPTY)
    version: int = 0

    @classmethod
    def of(cls, items: Iterable[Item], version: int = 1) -> CatalogueSnapshot:
        by_id = {item.id: item for item in items}
        return cls(by_id, *_indexes(by_id), version)

    def get(self, item_id: str) -> Item | None:
        return self.items.get(item_id)

    def available(self, item_id: str) -> bool:
        item = self.items.get(item_id)
        return item is not None and item.available

    def __len__(self) -> int:
        return len(self.items)

    def changed(self, changes: Iterable[ItemChange]) -> CatalogueSnapshot:
        """A new snapshot with ``changes`` applied in order (this one is left as it is)."""
        items = dict(self.items)
        reindex = False
        for change in changes:
            before = items.get(change.id)
            if change.op == "remove":
                if items.pop(change.id, None) is not None:
                    reindex = True
                continue
            if change.op == "put" and change.item is not None:
                after = change.item
            elif change.op == "patch" and change.patch is not None and before is not None:
                after = change.patch.applied(before)
            else:
                continue  # a patch of an item that is not (or no longer) there
            items[change.id] = after
            reindex = reindex or (
                before is None or before.category != after.category or before.brand != after.brand
            )
        if reindex:
            return CatalogueSnapshot(items, *_indexes(items), self.version + 1)
        return CatalogueSnapshot(items, self.by_category, self.by_brand, self.version + 1)


def _indexes(
    items: Mapping[str, Item],
) -> tuple[Mapping[str, tuple[str, ...]], Mapping[str, tuple[str, ...]]]:
    categories: dict[str, list[str]] = {}
    brands: dict[str, list[str]] = {}
    for item in items.values():
        if item.category:
            categories.setdefault(item.category, []).append(item.id)
        if item.brand:
            brands.setdefault(item.brand, []).append(item.id)
    return (
        MappingProxyType({k: tuple(v) for k, v in categories.items()}),
        MappingProxyType({k: tuple(v) for k, v in brands.items()}),
    )
