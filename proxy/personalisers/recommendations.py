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

Nothing to recommend leaves the upstream's list as it was (no record). A policy that raises
fails the response open (``policy_error``). Without a catalogue (``catalogue.feed``) the step
does nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from slotwise.dsl.location import JsonPathLocation as JsonPath
from slotwise.dsl.precedence import RECOMMENDATION
from slotwise.proxy.adapters.json import JsonDocument, find
from slotwise.proxy.decision_log import DecisionRecord, SlotRecord
from slotwise.proxy.exchange import FailOpen
from slotwise.proxy.recommend.lists import TRACKING_KEY, Pixels, select, shape_of, written
from slotwise.proxy.recommend.strategies import Inputs, rank, seeds_for
from slotwise.proxy.tracking import new_decision_id

if TYPE_CHECKING:
    from slotwise.dsl.compiled import CompiledPolicySet, CompiledRecommendation, Strategy
    from slotwise.dsl.location import Location
    from slotwise.proxy.decide import Engine
    from slotwise.proxy.exchange import Exchange
    from slotwise.proxy.recommend.runtime import Prepared, RecsRuntime


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
            if chosen:
                _write(engine, exchange, recommendation, hits, chosen, used)


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
        exchange.origin(engine.public_url, engine.allowed_hosts), decision_id, recommendation.name
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
        personal=gathered.personal,
        signals={"recs.strategy": used},
        slots=[SlotRecord(str(p), item_id, 1.0) for p, item_id in enumerate(chosen, 1)],
        format="json",
    )
    exchange.record(record, gathered.user_id)
