"""An offer set as the bandit and the decision record see it.

The bandit learns an offer set like a campaign with one slot, ``offer``, whose variants are the
set's arms (``none``, ``discount_10``, ``free_shipping``...). Its model, its decision records
and its goal are named ``offers.NAME`` (:func:`bandit_name`): policy names have no dots, so an
offer set never shares a model with a campaign of the same name.

Each arm's variant carries its kind and, for a discount, its size as attributes: the bandit's
action features (``offer.kind=discount``, ``offer.percent=10``), so what it learns about one
discount carries over to its neighbours.

Guards are eligibility: :func:`screen` returns the arms the active guards leave and, for the
decision record, which guards removed which arm (a guard is named by its source text).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from slotwise.dsl.compiled import CompiledOffers, OfferArm, OfferGuard, Slot, Variant
from slotwise.dsl.location import JsonPathLocation
from slotwise.proxy.bandit.campaign import BanditCampaign
from slotwise.types import Context

OFFER_SLOT = "offer"
PREFIX = "offers."


def bandit_name(offers: CompiledOffers | str) -> str:
    """The name of an offer set's model, goal and decision records: ``offers.NAME``."""
    name = offers if isinstance(offers, str) else offers.name
    return PREFIX + name


def offer_set_of(decision_campaign: str) -> str | None:
    """The offer set a decision record's ``campaign`` names, or None (a campaign's)."""
    return decision_campaign[len(PREFIX) :] if decision_campaign.startswith(PREFIX) else None


def _attributes(arm: OfferArm) -> Mapping[str, str]:
    attributes = {"kind": arm.kind}
    if arm.kind == "discount":
        attributes["percent"] = f"{round(arm.discount * 100, 6):g}"
    return MappingProxyType(attributes)


def offer_slot(offers: CompiledOffers) -> Slot:
    """The one slot the bandit chooses for: a variant per arm, in declaration order."""
    location = offers.location
    if not isinstance(location, JsonPathLocation):
        location = JsonPathLocation((OFFER_SLOT,), f"$.{OFFER_SLOT}")
    variants = tuple(Variant(arm.name, arm.name, _attributes(arm)) for arm in offers.arms)
    return Slot(OFFER_SLOT, location, variants)


def bandit_offers(offers: CompiledOffers) -> BanditCampaign:
    """The bandit's view of an offer set (its arms, exploration, holdout and goal)."""
    return BanditCampaign(
        name=bandit_name(offers),
        slots=(offer_slot(offers),),
        explore=offers.explore,
        holdout=float(offers.holdout or 0.0),
        goal=offers.goal,
    )


def guard_text(guard: OfferGuard) -> str:
    """How the guard reads in the policy (``guard discount <= 15% when loyal``)."""
    return guard.text or (
        f"guard no {guard.banned_kind}"
        if guard.banned_kind is not None
        else f"guard discount {guard.cap_op} {guard.cap * 100:g}%"
    )


_NAMES: dict[int, tuple[CompiledOffers, dict[OfferArm, str]]] = {}


def arm_names(offers: CompiledOffers) -> dict[OfferArm, str]:
    """Each arm's name, worked out once per compiled offer set (names are formatted)."""
    known = _NAMES.get(id(offers))
    if known is None or known[0] is not offers:
        if len(_NAMES) > 256:  # old policy snapshots: forget them
            _NAMES.clear()
        known = _NAMES[id(offers)] = (offers, {arm: arm.name for arm in offers.arms})
    return known[1]


# Per compiled offer set, per combination of active guards: the arms left and, per removed
# arm, the guards' texts. An arm's fate depends only on which guards are active (a guard's
# ``allows`` reads the arm, never the request), so the request path evaluates the guards'
# conditions and looks the rest up: a few guards make at most a few dozen combinations.
_SCREENS: dict[
    int,
    tuple[CompiledOffers, dict[int, tuple[tuple[OfferArm, ...], dict[str, tuple[str, ...]]]]],
] = {}


def _screened(
    offers: CompiledOffers, active: int
) -> tuple[tuple[OfferArm, ...], dict[str, tuple[str, ...]]]:
    """The arms the guards whose bits are set in ``active`` leave, and what they removed."""
    known = _SCREENS.get(id(offers))
    if known is None or known[0] is not offers:
        if len(_SCREENS) > 256:  # old policy snapshots: forget them
            _SCREENS.clear()
        known = _SCREENS[id(offers)] = (offers, {})
    cached = known[1].get(active)
    if cached is None:
        guards = [g for bit, g in enumerate(offers.guards) if active >> bit & 1]
        names = arm_names(offers)
        allowed: list[OfferArm] = []
        removed: dict[str, tuple[str, ...]] = {}
        for arm in offers.arms:
            against = tuple([guard_text(guard) for guard in guards if not guard.allows(arm)])
            if against:
                removed[names[arm]] = against
            else:
                allowed.append(arm)
        cached = known[1][active] = (tuple(allowed), removed)
    return cached


def screen(
    offers: CompiledOffers, ctx: Context
) -> tuple[tuple[OfferArm, ...], dict[str, tuple[str, ...]]]:
    """The arms the active guards allow, and per removed arm the guards that removed it (a
    fresh dict: the caller may add to it).

    A guard whose condition raises removes nothing and fails the decision: the caller treats
    the exception as a broken policy (the response goes out unchanged).
    """
    active = 0
    for bit, guard in enumerate(offers.guards):
        if guard.condition(ctx):
            active |= 1 << bit
    if not active:
        return offers.arms, {}
    allowed, removed = _screened(offers, active)
    return allowed, dict(removed)


__all__ = [
    "OFFER_SLOT",
    "bandit_name",
    "bandit_offers",
    "arm_names",
    "guard_text",
    "offer_set_of",
    "offer_slot",
    "screen",
]
