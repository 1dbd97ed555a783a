"""The recommendations step: ``recommend NAME at "$.path" { ... }``, a product list filled.

For each of the policy's recommendations whose location in a storefront JSON response is a
list (a page without it is not a page for it: nothing is done or counted; a location an
earlier personalisation claimed is skipped, counted as ``contested``):

1. the strategy: ``new users:`` for a new visitor (``user.is_new``), else ``otherwise:`` or
   ``use`` (``CompiledRecommendation.strategy_for``);
2. its ranking (slotwise.proxy.recommend.strategies), from what ``RecsRuntime.prepare`` read
   before engine time (visitor, page product, neighbours) and the trending snapshot;
3. the exclusions, diversity and limit (slotwise.proxy.recommend.lists.select); when the
   strategy leaves the list short (a returning visitor with no views yet, an item nobody
   bought with anything), the ``new users:`` strategy fills it up;
4. the list replaced by those items in the storefront's own item shape, each with its
   position's impression and click pixels, and one decision record (the recommendation's
   name, the strategy in ``signals["recs.strategy"]``, one slot per position).

A visitor in the recommendation's control group (``holdout P%``: sticky per visitor and list,
drawn like a campaign's, slotwise.proxy.bandit.holdout) gets the upstream's list unchanged
but tracked alike: each of its items with an id gets its position's pixels, and the record
says ``holdout: true`` with the upstream's items as its slots. The draw comes after the
choice, so both arms are the visitors a list would have been filled for (the report compares
them: docs/reports.md).

Nothing to recommend leaves the upstream's list as it was (no record). A policy that raises
fails the response open (``policy_error``). Without a catalogue (``catalogue.feed``) the step
does nothing.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from slotwise.dsl.location import JsonPathLocation as JsonPath
from slotwise.dsl.precedence import RECOMMENDATION
from slotwise.proxy.adapters.json import JsonDocument, find
from slotwise.proxy.bandit.holdout import in_holdout
from slotwise.proxy.decision_log import DecisionRecord, SlotRecord
from slotwise.proxy.exchange import FailOpen
from slotwise.proxy.recommend.lists import (
    TRACKING_KEY,
    Pixels,
    item_id_of,
    select,
    shape_of,
    written,
)
from slotwise.proxy.recommend.strategies import Inputs, rank, seeds_for
from slotwise.proxy.tracking import new_decision_id

if TYPE_CHECKING:
    from slotwise.dsl.compiled import CompiledPolicySet, CompiledRecommendation, Strategy
    from slotwise.dsl.location import Location
    from slotwise.proxy.decide import Engine
    from slotwise.proxy.exchange import Exchange
    from slotwise.proxy.recommend.runtime import Prepared, RecsRuntime

_RNG = random.Random()  # the control draw of visitors without a stable id (per request)


class Recommendations:
    """Fills the policy set's recommendation lists (with a catalogue configured)."""

    kind = RECOMMENDATION

    def wanted(self, policy: CompiledPolicySet) -> bool:
        return bool(policy.recommendations)

    def locations(self, policy: CompiledPolicySet) -> Iterator[tuple[str, Location]]:
        for item in policy.recommendations:
            if item.location is not None:
                yield item.name, item.location

    def personalise(self, engine: Engine, exchange: Exchange) -> None:
        recs, prepared, document = engine.recs, exchange.prepared, exchange.document
        if recs is None or prepared is None or not isinstance(document, JsonDocument):
            return
        assert exchange.policy is not None
        ctx = exchange.gathered.context(exchange.now)
        for recommendation in exchange.policy.recommendations:
            location = recommendation.location
            hits = find(document.root, location.steps) if isinstance(location, JsonPath) else []
            if not hits or not isinstance(hits[0][0][hits[0][1]], list):
                continue  # not a page with this list
            if exchange.claimed and exchange.contested(0, [recommendation.location]):
                engine.metrics.campaigns_skipped.inc(recommendation.name, "contested")
                continue
            try:
                strategy = recommendation.strategy_for(ctx)
            except Exception:
                raise FailOpen("policy_error", exchange.records) from None
            if strategy is None:
                continue
            chosen, used = _choose(recs, prepared, exchange, recommendation, strategy)
            if not chosen:
                continue
            if held_out(exchange, recommendation.name, recommendation.holdout):
                control(engine, exchange, recommendation.name, recommendation.location, hits[0],
                        used, recommendation.holdout)  # fmt: skip
            else:
                _write(engine, exchange, recommendation, hits, chosen, used)


def held_out(exchange: Exchange, name: str, share: float) -> bool:
    """Whether this visitor is in the list's control group."""
    if share <= 0.0:
        return False
    gathered = exchange.gathered
    return in_holdout(name, gathered.user_id if gathered.personal else None, share, _RNG)


def control(
    engine: Engine,
    exchange: Exchange,
    name: str,
    location: Location,
    hit: tuple[Any, str | int],
    strategy: str,
    share: float,
    limit: int | None = None,
) -> None:
    """The control experience: the upstream's list as it is (its first ``limit`` items for a
    re-rank), each item with an id tracked at its position; a holdout decision record."""
    container, key = hit
    listing = container[key]
    head = listing if limit is None else listing[:limit]
    decision_id = new_decision_id()
    pixels = Pixels(
        engine.tracker_origin(exchange),
        decision_id,
        name,
    )
    slots = []
    for position, entry in enumerate(head, 1):
        item_id = item_id_of(entry)
        slots.append(SlotRecord(str(position), item_id or "", 1.0))
        if isinstance(entry, dict) and item_id is not None:
            entry[TRACKING_KEY] = pixels.at(position, item_id)
    exchange.applied = exchange.changed = True
    if exchange.shared:
        exchange.claim(0, [location])
    policy = exchange.policy
    gathered = exchange.gathered
    record = DecisionRecord(
        id=decision_id,
        ts=exchange.now,
        campaign=name,
        policy_version=policy.version if policy is not None else "",
        holdout=True,
        holdout_share=share,
        personal=gathered.personal,
        signals={"recs.strategy": strategy},
        slots=slots,
        format="json",
    )
    exchange.record(record, gathered.user_id)


def _choose(
    recs: RecsRuntime,
    prepared: Prepared,
    exchange: Exchange,
    recommendation: CompiledRecommendation,
    strategy: Strategy,
) -> tuple[list[str], str]:
    catalogue = recs.catalogue.current
    steps = [strategy]
    if recommendation.new_users is not None and recommendation.new_users is not strategy:
        steps.append(recommendation.new_users)  # the fallback that fills a short list
    chosen: list[str] = []
    used: list[str] = []
    for step in steps:
        if len(chosen) >= recommendation.limit:
            break
        signal = exchange.gathered.signals.get(str(step.parameter))
        seeds = seeds_for(
            step.kind,
            step.parameter,
            tuple(signal) if isinstance(signal, tuple) else (),
            prepared.page,
            prepared.visitor,
        )
        inputs = Inputs(
            catalogue,
            recs.trending.current,
            prepared.neighbours,
            seeds,
            prepared.visitor,
            recs.config.trending_max_window,
        )
        before = len(chosen)
        chosen = select(
            rank(step.kind, step.parameter, inputs, 4 * recommendation.limit + 40),
            catalogue,
            prepared.visitor,
            recommendation.exclude,
            recommendation.limit,
            recommendation.diversity,
            prepared.page,
            chosen,
        )
        if len(chosen) > before:
            used.append(step.kind)
    return chosen, "+".join(used)


def _write(
    engine: Engine,
    exchange: Exchange,
    recommendation: CompiledRecommendation,
    hits: list[tuple[Any, str | int]],
    chosen: list[str],
    used: str,
) -> None:
    assert engine.recs is not None
    catalogue = engine.recs.catalogue.current
    decision_id = new_decision_id()
    pixels = Pixels(
        engine.tracker_origin(exchange),
        decision_id,
        recommendation.name,
    )
    for container, key in hits:
        upstream = container[key]
        shape = shape_of(upstream)
        items: list[Any] = []
        for position, item_id in enumerate(chosen, 1):
            item = catalogue.get(item_id)
            if shape is None or item is None:
                items.append(item_id)
                continue
            entry = written(item, shape)
            entry[TRACKING_KEY] = pixels.at(position, item_id)
            items.append(entry)
        container[key] = items
    exchange.applied = exchange.changed = True
    if exchange.shared:
        exchange.claim(0, [recommendation.location])
    policy = exchange.policy
    gathered = exchange.gathered
    record = DecisionRecord(
        id=decision_id,
        ts=exchange.now,
        campaign=recommendation.name,
        policy_version=policy.version if policy is not None else "",
        holdout_share=recommendation.holdout,
        personal=gathered.personal,
        signals={"recs.strategy": used},
        slots=[SlotRecord(str(p), item_id, 1.0) for p, item_id in enumerate(chosen, 1)],
        format="json",
    )
    exchange.record(record, gathered.user_id)
