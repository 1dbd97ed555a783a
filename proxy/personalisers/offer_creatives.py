"""Offer creatives: campaign slots that take their text from an offer set.

``slot deal at "native:data:desc" from offers spring_deal`` makes the chosen offer's label (or,
with ``terms``, its terms) the text of an ad's asset. The campaign decides the ad unit as
always (slotwise.proxy.personalisers.campaigns); unless that campaign holds the unit out, each
offer set its slots name is then decided for the unit exactly as on a storefront page
(slotwise.proxy.personalisers.offers), once per offer set however many slots read it:

1. the guards are eligibility (slotwise.proxy.offer_set.screen), a spent daily budget leaves
   only ``none`` (``budget_spent``);
2. the offer chooser (holdout, the bandit's draw, the costliest-arm cap);
3. unless the offer set holds the user out: the offer's id goes into the ad's landing URL as
   ``sw_offer=<id>`` (Native ``link.url``, VAST ``ClickThrough``), which is how the shop gets
   it back at checkout, and, for any offer but ``none``, its label/terms into the slots. A
   ``none`` offer and a held-out user keep the upstream's text. The offer decision's own
   trackers are added (impression and click pixels beside the campaign's), and its record is
   appended: the shape of a storefront offer decision (``campaign: "offers.NAME"``, ``offer``,
   ``removed``), so a purchase carrying the offer id joins it in the learner.

An ad without a landing URL could not hand the offer id to the shop: no offer is decided for
it (counted as ``slotwise_campaigns_skipped_total{campaign="offers.NAME",
reason="missing_slot"}``), its offer slots keep the upstream's text. A policy or chooser that
raises fails the whole response open, like a campaign's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from slotwise.dsl.location import NativeLocation, VastLocation
from slotwise.proxy.offer_document import offer_document
from slotwise.proxy.offer_set import bandit_name
from slotwise.proxy.personalisers.offers import choose_offer, record_offer

if TYPE_CHECKING:
    from slotwise.dsl.compiled import CompiledCampaign, CompiledOffers, OfferCreative
    from slotwise.dsl.location import Location
    from slotwise.proxy.adapters import AdUnit
    from slotwise.proxy.decide import Engine
    from slotwise.proxy.exchange import Exchange
    from slotwise.types import Context

OFFER_PARAMETER: Final = "sw_offer"  # the landing URL's query parameter with the offer id
# where an ad's landing URL is: a Native ad's link, a VAST ad's ClickThrough
LANDINGS: Final[tuple[Location, ...]] = (
    NativeLocation("link", None, "native:link"),
    VastLocation("ClickThrough", "vast:ClickThrough"),
)


def with_offer(url: str, offer: str) -> str:
    """``url`` with ``sw_offer=<offer>`` added to its query (before any fragment). An offer
    id is a decision id and an arm name: letters, digits, ``-_.``, nothing to escape."""
    base, hash_, fragment = url.partition("#")
    separator = "&" if "?" in base else "?"
    if base.endswith(("?", "&")):
        separator = ""
    return f"{base}{separator}{OFFER_PARAMETER}={offer}{hash_}{fragment}"


def offer_sets(campaign: CompiledCampaign) -> list[tuple[CompiledOffers, list[OfferCreative]]]:
    """The offer sets a campaign's slots read, in policy order, each with its slots."""
    grouped: dict[str, tuple[CompiledOffers, list[OfferCreative]]] = {}
    for slot in campaign.offer_slots:
        grouped.setdefault(slot.offers.name, (slot.offers, []))[1].append(slot)
    return list(grouped.values())


def decide_offers(
    engine: Engine,
    exchange: Exchange,
    unit: AdUnit,
    campaign: CompiledCampaign,
    ctx: Context,
    writes: dict[Location, str],
) -> None:
    """Decide each offer set the campaign's slots read, for a unit the campaign serves (not
    held out): adds to ``writes`` (location -> text, the campaign's variants already in it)
    the offers' texts and the landing URL with the offer id; tracks and records each."""
    landing: Location | None = None
    url: str | None = None
    for location in LANDINGS:
        url = writes.get(location) or unit.read(location)
        if url:
            landing = location
            break
    for offers, slots in offer_sets(campaign):
        if landing is None or url is None:
            engine.metrics.campaigns_skipped.inc(bandit_name(offers), "missing_slot")
            continue
        written = _decide(engine, exchange, unit, offers, slots, ctx, writes)
        if written is not None:
            url = writes[landing] = with_offer(url, written)


def _decide(
    engine: Engine,
    exchange: Exchange,
    unit: AdUnit,
    offers: CompiledOffers,
    slots: list[OfferCreative],
    ctx: Context,
    writes: dict[Location, str],
) -> str | None:
    """One offer set's decision for the unit; the offer id written, if any."""
    offer = choose_offer(engine, exchange, offers, ctx)
    if offer.arm is not None and offer.written is not None and offer.arm.kind != "none":
        # `none` offers nothing: the ad keeps its own text
        document = offer_document(offer.arm, offer_id=offer.written)
        for slot in slots:
            text = document.get(slot.text)
            if isinstance(text, str) and text:
                writes[slot.location] = text
    document_format = exchange.document.format if exchange.document is not None else None
    record_offer(engine, exchange, unit, offer, document_format)
    return offer.written


__all__ = ["LANDINGS", "OFFER_PARAMETER", "decide_offers", "offer_sets", "with_offer"]
