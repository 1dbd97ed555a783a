"""The re-ranks step: ``rerank NAME at "$.products" by affinity(clicks: category, brand)``.

For each of the policy's re-ranks whose location in a storefront JSON response is a list of
products (ids, or objects with an ``id``/``product_id``/``sku``), the first ``limit`` items
(all without one) are put in the order slotwise.proxy.recommend.affinity gives: the
visitor's decayed affinity for each item's category and brand, blended with the upstream's
own order, out-of-stock items last. Items that are objects get their position's impression
and click pixels (``tracking``); the decision record names the re-rank, says
``signals["recs.strategy"] = "affinity"`` and lists the new order. A visitor without such
actions, or a list the affinities leave in the upstream's order, is left as it was (no
record). A visitor in the re-rank's control group (``holdout P%``, drawn once the new order
is known, so both arms are visitors whose listing would have moved) keeps the upstream's
order, tracked alike, with a ``holdout: true`` record
(slotwise.proxy.personalisers.recommendations.control).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from slotwise.dsl.location import JsonPathLocation as JsonPath
from slotwise.dsl.precedence import RERANK
from slotwise.proxy.adapters.json import JsonDocument, find
from slotwise.proxy.decision_log import DecisionRecord, SlotRecord
from slotwise.proxy.personalisers.recommendations import control, held_out
from slotwise.proxy.recommend.affinity import affinities, reorder
from slotwise.proxy.recommend.lists import TRACKING_KEY, Pixels, item_id_of
from slotwise.proxy.tracking import new_decision_id

if TYPE_CHECKING:
    from slotwise.dsl.compiled import CompiledPolicySet, CompiledRerank
    from slotwise.dsl.location import Location
    from slotwise.proxy.decide import Engine
    from slotwise.proxy.exchange import Exchange


class Reranks:
    """Reorders the policy set's re-ranked lists (with a catalogue configured)."""

    kind = RERANK

    def wanted(self, policy: CompiledPolicySet) -> bool:
        return bool(policy.reranks)

    def locations(self, policy: CompiledPolicySet) -> Iterator[tuple[str, Location]]:
        for item in policy.reranks:
            if item.location is not None:
                yield item.name, item.location

    def personalise(self, engine: Engine, exchange: Exchange) -> None:
        recs, prepared, document = engine.recs, exchange.prepared, exchange.document
        if recs is None or prepared is None or not isinstance(document, JsonDocument):
            return
        assert exchange.policy is not None
        catalogue = recs.catalogue.current
        for rerank in exchange.policy.reranks:
            location = rerank.location
            hits = find(document.root, location.steps) if isinstance(location, JsonPath) else []
            if not hits or not isinstance(hits[0][0][hits[0][1]], list):
                continue  # not a page with this list
            if exchange.claimed and exchange.contested(0, [rerank.location]):
                engine.metrics.campaigns_skipped.inc(rerank.name, "contested")
                continue
            if not prepared.visitor.known:
                continue
            affinity = affinities(
                prepared.visitor,
                rerank.metric,
                rerank.fields,
                catalogue,
                exchange.now,
                recs.config.affinity_half_life,
            )
            container, key = hits[0]
            listing = container[key]
            head = listing[: rerank.limit] if rerank.limit else listing
            ids = [item_id_of(entry) for entry in head]
            order = reorder(ids, affinity, rerank.fields, catalogue, recs.config.rerank_blend)
            if order == list(range(len(head))):
                continue
            if held_out(exchange, rerank.name, rerank.holdout):
                control(engine, exchange, rerank.name, rerank.location, hits[0], "affinity",
                        rerank.holdout, len(head))  # fmt: skip
                continue
            _write(engine, exchange, rerank, container, key, order, ids)


def _write(
    engine: Engine,
    exchange: Exchange,
    rerank: CompiledRerank,
    container: object,
    key: str | int,
    order: list[int],
    ids: list[str | None],
) -> None:
    listing = container[key]  # type: ignore[index]
    head = [listing[i] for i in order]
    decision_id = new_decision_id()
    pixels = Pixels(
        engine.tracker_origin(exchange),
        decision_id,
        rerank.name,
    )
    for position, entry in enumerate(head, 1):
        item_id = item_id_of(entry)
        if isinstance(entry, dict) and item_id is not None:
            entry[TRACKING_KEY] = pixels.at(position, item_id)
    listing[: len(head)] = head
    exchange.applied = exchange.changed = True
    if exchange.shared:
        exchange.claim(0, [rerank.location])
    policy = exchange.policy
    gathered = exchange.gathered
    exchange.record(
        DecisionRecord(
            id=decision_id,
            ts=exchange.now,
            campaign=rerank.name,
            policy_version=policy.version if policy is not None else "",
            holdout_share=rerank.holdout,
            personal=gathered.personal,
            signals={"recs.strategy": "affinity"},
            slots=[SlotRecord(str(p), ids[i] or "", 1.0) for p, i in enumerate(order, 1)],
            format="json",
        ),
        gathered.user_id,
    )
