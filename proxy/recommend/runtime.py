"""What the request path needs to serve recommendations and re-ranks, made once per worker.

:class:`RecsRuntime` holds the live catalogue, the trending index (refreshed in the
background, :meth:`RecsRuntime.refresh_loop`) and the store. For a response a policy may fill,
:meth:`RecsRuntime.prepare` works out, before engine time, everything the steps will read:
the visitor (from the history the signals carried), the page's own product, and the
neighbours of every seed any of the policy's recommendations may use, read in one store round
trip (``scores_top`` of all their keys). The steps themselves then run without I/O.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from slotwise.proxy.adapters.json import JsonDocument, find
from slotwise.proxy.catalogue import LiveCatalogue
from slotwise.proxy.recommend.config import RecsConfig
from slotwise.proxy.recommend.strategies import NEIGHBOURS_READ, neighbour_keys, seeds_for
from slotwise.proxy.recommend.trending import TrendingIndex
from slotwise.proxy.recommend.visitor import NO_VISITOR, Visitor, visitor_of
from slotwise.proxy.state import Store

if TYPE_CHECKING:
    from slotwise.dsl.compiled import CompiledPolicySet, CompiledRecommendation, Strategy
    from slotwise.dsl.location import JsonPathLocation
    from slotwise.proxy.exchange import Exchange
    from slotwise.proxy.policy_snapshot import PolicySnapshot

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Prepared:
    """What the recommendation and re-rank steps read for one response."""

    visitor: Visitor = NO_VISITOR
    page: str | None = None
    neighbours: Mapping[str, Sequence[tuple[str, float]]] = field(default_factory=dict)
    cart: tuple[str, ...] = ()


def strategies(recommendation: CompiledRecommendation) -> Iterator[Strategy]:
    for strategy in (recommendation.strategy, recommendation.new_users, recommendation.otherwise):
        if strategy is not None:
            yield strategy


def trending_windows(policy: CompiledPolicySet | None) -> set[float]:
    windows: set[float] = set()
    for recommendation in policy.recommendations if policy is not None else ():
        for strategy in strategies(recommendation):
            if strategy.kind == "trending":
                windows.add(float(strategy.parameter))
    return windows


class RecsRuntime:
    """One worker's recommenders: catalogue, trending, the store, the configuration."""

    def __init__(self, catalogue: LiveCatalogue, store: Store, config: RecsConfig) -> None:
        self.catalogue = catalogue
        self.store = store
        self.config = config
        self.trending = TrendingIndex(config)
        self.page_paths: tuple[JsonPathLocation, ...] = _paths(config.page_product)
        self.read_failures = 0

    async def refresh(self, policy: CompiledPolicySet | None, now: float | None = None) -> None:
        windows = trending_windows(policy) | {self.config.trending_max_window}
        await self.trending.refresh(self.store, time.time() if now is None else now, windows)

    async def refresh_loop(self, policies: PolicySnapshot) -> None:
        """Forever: the trending rankings of the windows the current policies name."""
        while True:
            try:
                await self.refresh(policies.current)
            except Exception as exc:  # the previous rankings keep serving
                log.warning("trending refresh failed: %s", exc)
            await asyncio.sleep(self.config.refresh_interval)

    def page_product(self, document: Any) -> str | None:
        if not isinstance(document, JsonDocument):
            return None
        for path in self.page_paths:
            for container, key in find(document.root, path.steps):
                value = container[key]
                if isinstance(value, str) and value:
                    return value
                if isinstance(value, int) and not isinstance(value, bool):
                    return str(value)
        return None

    async def prepare(self, x: Exchange, timeout: float) -> None:
        """Fill ``x.prepared`` for the steps; one store read at most (neighbours)."""
        policy = x.policy
        assert policy is not None
        gathered = x.gathered
        cart = _strings(gathered.signals.get("cart.items"))
        events = getattr(gathered.history, "events", ())
        visitor = (
            visitor_of([(e.event, e.at, e.data) for e in events], cart) if events or cart else
            NO_VISITOR
        )  # fmt: skip
        page = self.page_product(x.document)
        keys: list[str] = []
        for recommendation in policy.recommendations:
            if not _has_list(x.document, recommendation.location):
                continue  # not on this page: nothing of it to read
            for strategy in strategies(recommendation):
                signal = _strings(gathered.signals.get(str(strategy.parameter)))
                seeds = seeds_for(strategy.kind, strategy.parameter, signal, page, visitor)
                keys += neighbour_keys(strategy.kind, seeds)
        neighbours: dict[str, Sequence[tuple[str, float]]] = {}
        if keys:
            unique = list(dict.fromkeys(keys))
            try:
                async with asyncio.timeout(timeout):
                    found = await self.store.scores_top(unique, NEIGHBOURS_READ)
                neighbours = {
                    key: [(m.decode(), s) for m, s in top]
                    for key, top in zip(unique, found, strict=True)
                    if top
                }
            except Exception as exc:  # served without neighbours: trending, similar still work
                self.read_failures += 1
                log.debug("recommender neighbours not read: %s", exc)
        x.prepared = Prepared(visitor, page, neighbours, cart)


def _has_list(document: object, location: object) -> bool:
    from slotwise.dsl.location import JsonPathLocation

    if not isinstance(document, JsonDocument) or not isinstance(location, JsonPathLocation):
        return False
    hits = find(document.root, location.steps)
    return bool(hits) and isinstance(hits[0][0][hits[0][1]], list)


def _strings(value: object) -> tuple[str, ...]:
    if isinstance(value, tuple | list):
        return tuple(v for v in value if isinstance(v, str))
    return ()


def _paths(texts: Sequence[str]) -> tuple[JsonPathLocation, ...]:
    from slotwise.dsl.location import JsonPathLocation, parse_location

    paths = []
    for text in texts:
        location = parse_location(text)
        if not isinstance(location, JsonPathLocation):
            raise ValueError(f"recommendations.page_product: {text!r} is not a JSON path")
        paths.append(location)
    return tuple(paths)
