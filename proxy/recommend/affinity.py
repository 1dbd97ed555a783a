"""Re-ranking a listing by the visitor's affinity, blended with the upstream's own order.

``rerank NAME at "$.products" by affinity(clicks: category, brand)``: the visitor's actions
of that metric (visitor.METRIC_EVENTS) on products, each weighing ``2 ** (-age /
affinity_half_life)``, summed per category and per brand of the product (from the catalogue:
the events need not carry them). An item's affinity is the sum over the named fields of its
value's share of the visitor's total for that field (0..1 each). Its score blends the
upstream's order and the affinity::

    blend * (1 - position / n) + (1 - blend) * affinity / best affinity

(``recommendations.rerank_blend``, 0.5 by default), and an item the catalogue says is out of
stock goes after every available one. Only the first ``limit`` items are reordered; the
rest keep their places. A visitor with no such actions gets the upstream's order.
"""

from __future__ import annotations

from collections.abc import Sequence

from slotwise.proxy.catalogue import CatalogueSnapshot
from slotwise.proxy.recommend.visitor import METRIC_EVENTS, Visitor


def affinities(
    visitor: Visitor,
    metric: str,
    fields: Sequence[str],
    catalogue: CatalogueSnapshot,
    now: float,
    half_life: float,
) -> dict[tuple[str, str], float]:
    """(field, value) -> share of the visitor's decayed actions with that value (0..1)."""
    kinds = METRIC_EVENTS.get(metric, frozenset())
    totals: dict[tuple[str, str], float] = {}
    per_field: dict[str, float] = {}
    for kind, item_id, at in visitor.actions:
        if kind not in kinds:
            continue
        item = catalogue.get(item_id)
        if item is None:
            continue
        weight = 2.0 ** (-max(now - at, 0.0) / half_life)
        for name in fields:
            value = _field(item, name)
            if value:
                totals[(name, value)] = totals.get((name, value), 0.0) + weight
                per_field[name] = per_field.get(name, 0.0) + weight
    return {key: value / per_field[key[0]] for key, value in totals.items()}


def _field(item: object, name: str) -> str:
    value = getattr(item, name, None)
    if isinstance(value, str):
        return value
    attributes = getattr(item, "attributes", {})
    found = attributes.get(name, "")
    return found if isinstance(found, str) else ""


def reorder(
    ids: Sequence[str | None],
    affinity: dict[tuple[str, str], float],
    fields: Sequence[str],
    catalogue: CatalogueSnapshot,
    blend: float,
) -> list[int]:
    """The new order of ``ids`` (their indexes), best first."""
    n = len(ids)
    raw: list[float] = []
    for item_id in ids:
        item = catalogue.get(item_id) if item_id is not None else None
        raw.append(
            sum(affinity.get((name, _field(item, name)), 0.0) for name in fields) if item else 0.0
        )
    best = max(raw, default=0.0) or 1.0
    scores = []
    for position, item_id in enumerate(ids):
        score = blend * (1.0 - position / n) + (1.0 - blend) * raw[position] / best
        item = catalogue.get(item_id) if item_id is not None else None
        if item is not None and not item.available:
            score -= 2.0  # out of stock: after every available item
        scores.append((-score, position))
    return [position for _, position in sorted(scores)]
