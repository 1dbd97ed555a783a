"""The offers step: each offer set (``offers NAME { slot at ... }``) whose location is in a
storefront JSON response gets an offer written there.

An offer set applies wherever its ``slot at`` location exists in the document (the shop marks
the place: ``"offer": null``, or its own offer, which control visitors keep). Per offer set:

1. the cart: ``cart.value`` and ``cart.count`` read from the response where the shop's cart
   says them (``offers.cart``), over the profile's, so the guards judge the cart on the page;
2. the guards are eligibility (slotwise.proxy.offer_set.screen): a guarded arm is never
   offered, and the decision record lists, per removed arm, the guards that removed it; a
   spent daily budget leaves only ``none`` (``budget_spent``);
3. the choice (slotwise.proxy.offer_chooser): holdout, the bandit's draw, the cap;
4. unless held out, the offer in its documented shape (slotwise.proxy.offer_document) at the
   location; control keeps the upstream's offer. Either way the decision's trackers are added
   and the location claimed, like a campaign's, and the record appended.

A policy that raises is ``policy_error``, a chooser that raises ``chooser_error``: both fail the
whole response open. This step writes JSON documents only: in an OpenRTB or VAST response an
offer set is served through the campaign slots that take it (``slot ... from offers NAME``,
slotwise.proxy.personalisers.offer_creatives).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, NamedTuple

import msgspec

from slotwise.dsl.location import JsonPathLocation
from slotwise.dsl.precedence import OFFERS
from slotwise.proxy.adapters.json import JsonUnit, find
from slotwise.proxy.decision_log import decision_record, unserved_record
from slotwise.proxy.exchange import MAX_UNITS, FailOpen
from slotwise.proxy.offer_chooser import BUDGET_SPENT
from slotwise.proxy.offer_document import offer_document, offer_id
from slotwise.proxy.offer_set import bandit_name, screen
from slotwise.proxy.tracking import new_decision_id

if TYPE_CHECKING:
    from slotwise.dsl.compiled import CompiledOffers, CompiledPolicySet, OfferArm
    from slotwise.dsl.location import Location
    from slotwise.proxy.adapters import Document
    from slotwise.proxy.adapters.base import AdUnit
    from slotwise.proxy.choice import Choice
    from slotwise.proxy.decide import Engine
    from slotwise.proxy.exchange import Exchange
    from slotwise.types import Context, SignalValue


class Offers:
    """Decides every offer set whose location is in the response."""

    kind = OFFERS

    def wanted(self, policy: CompiledPolicySet) -> bool:
        return bool(policy.offers)

    def locations(self, policy: CompiledPolicySet) -> Iterator[tuple[str, Location]]:
        for item in policy.offers:
            if item.location is not None:
                yield item.name, item.location

    def personalise(self, engine: Engine, exchange: Exchange) -> None:
        assert exchange.policy is not None and exchange.document is not None
        if exchange.document.format != "json":
            return
        for index, unit in enumerate(exchange.document.units[:MAX_UNITS]):
            if not isinstance(unit, JsonUnit):
                continue
            cart: dict[str, SignalValue] | None = None
            for offers in exchange.policy.offers:
                location = offers.location
                if not isinstance(location, JsonPathLocation):
                    continue
                places = find(unit.document, location.steps)
                if not places:
                    continue  # the page has no place for this offer
                if exchange.claimed and exchange.contested(index, (location,)):
                    engine.metrics.campaigns_skipped.inc(bandit_name(offers), "contested")
                    continue
                if cart is None:
                    cart = cart_signals(engine, unit)
                _decide(engine, exchange, index, unit, offers, places, cart)


def has_offer_place(policy: CompiledPolicySet, document: Document) -> bool:
    """Is the location of one of the policy's offer sets in this JSON document?"""
    if document.format != "json":
        return False
    for unit in document.units[:MAX_UNITS]:
        if isinstance(unit, JsonUnit):
            for offers in policy.offers:
                location = offers.location
                if isinstance(location, JsonPathLocation) and find(unit.document, location.steps):
                    return True
    return False


def cart_signals(engine: Engine, unit: JsonUnit) -> dict[str, SignalValue]:
    """``cart.value`` / ``cart.count`` as the response states them (first path that holds a
    number), with the response's ``ad.*`` signals.

    ``cart.*`` are personal signals (the profile's cart): the guards read them, the bandit
    only with consent. The page's own cart is also given as ``page.cart_value`` and
    ``page.cart_count``, contextual features: what this page shows, not a profile, so the
    bandit can learn by cart size for every visitor."""
    signals: dict[str, SignalValue] = dict(unit.signals)
    value_paths, count_paths = engine.offers.cart
    value = _number(unit.document, value_paths)
    if value is not None:
        signals["cart.value"] = signals["page.cart_value"] = float(value)
    count = _number(unit.document, count_paths)
    if count is not None:
        signals["cart.count"] = signals["page.cart_count"] = int(count)
    return signals


def _number(document: Any, paths: tuple[JsonPathLocation, ...]) -> float | None:
    for path in paths:
        for container, key in find(document, path.steps):
            value = container[key]
            if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
                return float(value)
    return None


def _decide(
    engine: Engine,
    exchange: Exchange,
    index: int,
    unit: JsonUnit,
    offers: CompiledOffers,
    places: list[tuple[Any, str | int]],
    cart: dict[str, SignalValue],
) -> None:
    exchange.applied = True
    ctx = exchange.gathered.context(exchange.now, cart)
    offer = choose_offer(engine, exchange, offers, ctx)
    assert offers.location is not None
    if exchange.shared:
        exchange.claim(index, (offers.location,))
    if offer.arm is not None and offer.written is not None:
        document = offer_document(offer.arm, offer_id=offer.written)
        for container, key in places:
            container[key] = document
    record_offer(engine, exchange, unit, offer, "json")


class OfferChoice(NamedTuple):
    """One offer set's decision for a unit: the arm served (None when held out or nothing was
    eligible), the offer id written for it, the arms the guards or the budget removed."""

    decision_id: str
    choice: Choice
    arm: OfferArm | None
    written: str | None
    removed: dict[str, tuple[str, ...]]


def choose_offer(
    engine: Engine, exchange: Exchange, offers: CompiledOffers, ctx: Context
) -> OfferChoice:
    """Screen the offer set's arms (guards, then the daily budget) and choose among the rest;
    a served arm other than ``none`` is counted against the budget. The storefront's offer
    slots and the offers in ad creatives both decide here, so they cannot drift apart."""
    try:
        arms, removed = screen(offers, ctx)
    except Exception:
        raise FailOpen("policy_error", exchange.records) from None
    chooser = engine.offers
    if chooser.spent(offers):
        for arm in arms:
            if arm.kind != "none":
                removed[arm.name] = (BUDGET_SPENT,)
        arms = tuple(arm for arm in arms if arm.kind == "none")
    decision_id = new_decision_id()
    try:
        choice = chooser.choose(offers, arms, ctx.signals, exchange.gathered.subject)
    except Exception:
        record = unserved_record(decision_id, exchange.now, exchange.policy, offers, ctx)
        exchange.record(
            msgspec.structs.replace(record, campaign=bandit_name(offers)),
            exchange.gathered.user_id,
        )
        raise FailOpen("chooser_error", exchange.records) from None
    served: OfferArm | None = None
    written = None
    picked = choice.choices[0].variant
    if not choice.holdout and picked is not None:
        served = arms[choice.choices[0].candidates.index(picked)]
        written = offer_id(decision_id, served)
        if served.kind != "none" and chooser.budgets is not None:
            chooser.budgets.served(decision_id, offers.name)
    return OfferChoice(decision_id, choice, served, written, removed)


def record_offer(
    engine: Engine,
    exchange: Exchange,
    unit: AdUnit | JsonUnit,
    offer: OfferChoice,
    document_format: str | None,
) -> None:
    """Track the offer decision on its unit and log it: held out or not, its control is
    measured like the rest."""
    origin = engine.tracker_origin(exchange)
    unit.track(engine.signer.trackers(offer.decision_id, origin))
    exchange.changed = True
    policy = exchange.policy
    record = decision_record(
        offer.choice, offer.decision_id, exchange.now,
        policy.version if policy is not None else "", format=document_format,
    )  # fmt: skip
    if offer.written is not None or offer.removed:
        record = msgspec.structs.replace(record, offer=offer.written, removed=offer.removed)
    exchange.record(record, exchange.gathered.user_id)
