"""``[recommendations]``: how the recommenders' state is kept and read (recommendations.md)."""

from __future__ import annotations

from typing import Annotated

import msgspec


def _help(text: str, *, ge: float | None = None, le: float | None = None) -> msgspec.Meta:
    """A key's help and bounds (its own helper: slotwise.proxy.config imports this module)."""
    return msgspec.Meta(description=text, ge=ge, le=le)


_DAY = 86_400.0


class RecsConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The recommenders' state: trending buckets, item neighbours, sessions, affinities."""

    trending_bucket: Annotated[
        float, _help("seconds per trending bucket (counts of views, carts, purchases)", ge=0.001)
    ] = 3600.0
    trending_max_window: Annotated[
        float, _help("longest trending window served; buckets are kept this long", ge=0.001)
    ] = 7 * _DAY
    trending_per_bucket: Annotated[
        int, _help("items kept per trending bucket (the most counted)", ge=1)
    ] = 2000
    neighbours: Annotated[
        int, _help("co-viewed and co-bought items kept per item (the strongest)", ge=1)
    ] = 100
    neighbour_half_life: Annotated[
        float, _help("seconds after which a co-view or co-purchase counts half", ge=0.001)
    ] = 30 * _DAY
    neighbour_ttl: Annotated[
        float, _help("seconds an item's neighbours live after its last co-occurrence", ge=0.001)
    ] = 180 * _DAY
    session_gap: Annotated[
        float,
        _help("seconds of inactivity that end a session", ge=0.001),
    ] = 1800.0
    co_view_span: Annotated[
        int, _help("earlier views of the same session each product view is paired with", ge=1)
    ] = 5
    affinity_half_life: Annotated[
        float,
        _help("seconds after which an action counts half in re-rank affinity", ge=0.001),
    ] = 7 * _DAY
    rerank_blend: Annotated[
        float,
        _help(
            "weight of the upstream's own order in a re-rank (0: affinity alone, 1: unchanged)",
            ge=0,
            le=1,
        ),
    ] = 0.5
    refresh_interval: Annotated[
        float, _help("seconds between reads of the trending buckets by each worker", ge=0.001)
    ] = 2.0
    page_product: Annotated[
        tuple[str, ...],
        _help(
            "JSON paths of the page's own product id in a storefront response (a seed of "
            "item-based strategies, never recommended on its own page)"
        ),
    ] = ("$.product.id",)
