"""The recommendation strategies: each ranks candidate items for one request.

Pure functions of a :class:`Inputs` (the catalogue snapshot, the trending snapshot, the
neighbours read for this request, the seeds and the visitor), so production and ``slotwise
recs replay`` rank with the same code:

- ``trending(W)``: the trending ranking of window W;
- ``last_visit(N views)``: the visitor's N latest viewed products, newest first, then what
  was viewed with them and items like them;
- ``also_bought(S)`` / ``also_viewed(S)``: the items bought / viewed with the seeds (the
  signal's products and the page's own product), each seed's list scaled to its best;
- ``similar(S)``: items like the seeds: same category, same brand, shared attributes, a
  close price, the more popular first among equals;
- ``hybrid(S)``: co-views, co-purchases and similarity of the seeds (or, without any, of the
  latest views) blended with popularity.
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from slotwise.proxy.catalogue import CatalogueSnapshot
from slotwise.proxy.recommend.state import co_buy_key, co_view_key
from slotwise.proxy.recommend.trending import TrendingSnapshot
from slotwise.proxy.recommend.visitor import Visitor

Scored = list[tuple[str, float]]
NEIGHBOURS_READ = 50  # neighbours read per seed and relation
SIMILAR_SCAN = 60  # candidates looked at per seed: of its category, of its brand, popular
HYBRID_SCAN = 40  # the same within hybrid, where similarity only orders the rest
HYBRID_SEEDS = 3  # latest views used as seeds when the request names none
SEEDED = frozenset({"also_bought", "also_viewed", "similar", "hybrid"})


@dataclass(frozen=True, slots=True)
class Blend:
    """hybrid's weights (each part scaled to its best, then weighed) and similarity scan."""

    co_view: float = 1.0
    co_buy: float = 1.0
    similar: float = 0.35
    popular: float = 0.15
    scan: int = HYBRID_SCAN


# production's blend: what was viewed or bought together dominates, similarity and popularity
# order the rest. Set by hand on the Diginetica replay before it had a held-out split; the
# blend tuned there without its test period (scripts/tune_hybrid.py) drops co-purchases and
# popularity, which a purchase-only log cannot weigh, so it is not taken (recommendations.md)
HYBRID = Blend()


@dataclass(frozen=True, slots=True)
class Inputs:
    catalogue: CatalogueSnapshot
    trending: TrendingSnapshot
    neighbours: Mapping[str, Sequence[tuple[str, float]]]  # store key -> (item, score)
    seeds: tuple[str, ...]
    visitor: Visitor
    popularity_window: float  # the trending window hybrid and similar take popularity from
    blend: Blend = HYBRID  # hybrid's weights (the replay and its tuning try others)


def neighbour_keys(kind: str, seeds: Iterable[str]) -> list[str]:
    """The store keys a strategy reads for these seeds."""
    keys: list[str] = []
    for seed in seeds:
        if kind in ("also_viewed", "hybrid", "last_visit"):
            keys.append(co_view_key(seed))
        if kind in ("also_bought", "hybrid"):
            keys.append(co_buy_key(seed))
    return keys


def seeds_for(kind: str, parameter: object, signal: Sequence[str], page: str | None,
              visitor: Visitor) -> tuple[str, ...]:  # fmt: skip
    """The products a strategy starts from."""
    if kind == "last_visit":
        return tuple(item for item, _ in visitor.views[: int(float(str(parameter)))])
    if kind not in SEEDED:
        return ()
    seeds = [*signal, page] if page else list(signal)
    if kind == "hybrid" and not seeds:
        seeds = [item for item, _ in visitor.views[:HYBRID_SEEDS]]
    return tuple(dict.fromkeys(seeds))


def rank(kind: str, parameter: object, inputs: Inputs, want: int = 200) -> Scored:
    """The strategy's ``want`` best candidates, best first (exclusions come later: ask for
    a few times the list's length)."""
    if kind == "trending":
        return list(inputs.trending.top(float(str(parameter)))[:want])
    if kind == "last_visit":
        scores = _last_visit(inputs)
    elif kind == "also_bought":
        scores = _related(inputs, co_buy_key)
    elif kind == "also_viewed":
        scores = _related(inputs, co_view_key)
    elif kind == "similar":
        scores = _similar(inputs, inputs.seeds, SIMILAR_SCAN)
    elif kind == "hybrid":
        scores = _hybrid(inputs)
    else:
        raise ValueError(f"unknown strategy {kind!r}")
    return _best(scores, want)


def _best(scores: Mapping[str, float], want: int) -> Scored:
    # ties: the smaller id first, so that every run and every worker ranks alike
    return heapq.nsmallest(want, scores.items(), key=lambda kv: (-kv[1], kv[0]))


def _related(inputs: Inputs, key_of: object) -> dict[str, float]:
    """Each seed's neighbours scaled to its strongest (1.0), summed over the seeds."""
    out: dict[str, float] = {}
    for seed in inputs.seeds:
        found = inputs.neighbours.get(key_of(seed), ())  # type: ignore[operator]
        if not found:
            continue
        best = found[0][1] or 1.0
        for item, score in found:
            out[item] = out.get(item, 0.0) + score / best
    return out


def _popularity(inputs: Inputs) -> Mapping[str, float]:
    return inputs.trending.share(inputs.popularity_window)


def _similar(inputs: Inputs, seeds: Iterable[str], scan: int) -> dict[str, float]:
    catalogue = inputs.catalogue
    popular = _popularity(inputs)
    out: dict[str, float] = {}
    for seed_id in seeds:
        seed = catalogue.get(seed_id)
        if seed is None:
            continue
        pool = {*catalogue.by_category.get(seed.category, ())[:scan]}
        pool.update(catalogue.by_brand.get(seed.brand, ())[:scan])
        pool.update(itertools.islice(popular, scan))
        for item_id in pool:
            item = catalogue.get(item_id)
            if item is None or item_id == seed_id:
                continue
            score = 1.0 if seed.category and item.category == seed.category else 0.0
            score += 0.5 if seed.brand and item.brand == seed.brand else 0.0
            if score == 0.0:
                continue
            if seed.attributes:
                shared = sum(1 for k, v in seed.attributes.items() if item.attributes.get(k) == v)
                score += 0.25 * shared / len(seed.attributes)
            if seed.price and item.price:
                score += 0.25 / (1.0 + abs(math.log(item.price / seed.price)))
            score += 0.2 * popular.get(item_id, 0.0)
            if score > out.get(item_id, 0.0):
                out[item_id] = score
    return out


def _last_visit(inputs: Inputs) -> dict[str, float]:
    viewed = [item for item in inputs.seeds]
    out: dict[str, float] = {item: 2.0 - i / (len(viewed) + 1) for i, item in enumerate(viewed)}
    related = _related(inputs, co_view_key)
    best = max(related.values(), default=1.0)
    for item, score in related.items():
        out.setdefault(item, score / best)
    for item, score in _similar(inputs, viewed[:HYBRID_SEEDS], HYBRID_SCAN).items():
        out.setdefault(item, 0.5 * score / 2.2)
    return out


def _hybrid(inputs: Inputs) -> dict[str, float]:
    blend = inputs.blend
    parts = (
        (blend.co_view, _related(inputs, co_view_key) if blend.co_view else {}),
        (blend.co_buy, _related(inputs, co_buy_key) if blend.co_buy else {}),
        (blend.similar, _similar(inputs, inputs.seeds, blend.scan) if blend.similar else {}),
        (blend.popular, _popularity(inputs) if blend.popular else {}),
    )
    out: dict[str, float] = {}
    for weight, scores in parts:
        if not scores:
            continue
        best = max(scores.values()) or 1.0
        for item, score in scores.items():
            out[item] = out.get(item, 0.0) + weight * score / best
    return out
