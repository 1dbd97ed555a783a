"""The campaigns step: every campaign that applies to an ad unit, in policy order.

Per ad unit (the whole document for generic JSON, each bid of an OpenRTB response, each
``<Ad>`` of a VAST document; the first ``MAX_UNITS``), each campaign whose ``applies when``
holds for the unit's signals (the request's plus the unit's ``ad.*``) is decided, unless

- one of its slots is not in the unit: skipped, counted as ``missing_slot``;
- an earlier personalisation claimed one of its locations on the unit: skipped, counted as
  ``contested``;
- its guardrail reverted it (slotwise.proxy.guardrail): the upstream's creative goes out,
  counted as ``guardrail``, and its record says ``fail_open: "guardrail"``.

Deciding: the rules' eligibility (worked out first, so that a broken policy fails the response
open wherever its campaign applies), the chooser's choice, then (unless held out) the chosen
variants written, and the decision's trackers added, held out or not: a control response keeps
the upstream's creative but carries the same trackers as a personalised one (its record says
``holdout: true``), so the control arm's impressions, clicks and conversions are collected.
A campaign whose slots take an offer set's text (``slot ... from offers NAME``) decides those
offer sets too when it serves the unit (slotwise.proxy.personalisers.offer_creatives: one
more decision record per offer set); a campaign without such slots pays one empty-tuple test.
The campaign claims its locations either way, and its decision record is appended. A policy
that raises is ``policy_error``, a chooser that raises ``chooser_error`` (that campaign's
record is logged as not served, and so is the campaign's when its offer set's chooser
raises): both fail the whole response open.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from slotwise.dsl.precedence import CAMPAIGN
from slotwise.plugins.decision_inputs import decision_context, request_subject
from slotwise.proxy.decision_log import decision_record, failed, unserved_record
from slotwise.proxy.exchange import MAX_UNITS, FailOpen
from slotwise.proxy.personalisers.offer_creatives import decide_offers
from slotwise.proxy.tracking import new_decision_id

if TYPE_CHECKING:
    from slotwise.dsl.compiled import CompiledCampaign, CompiledPolicySet
    from slotwise.dsl.location import Location
    from slotwise.proxy.adapters import AdUnit
    from slotwise.proxy.choice import Choice
    from slotwise.proxy.decide import Engine
    from slotwise.proxy.exchange import Exchange
    from slotwise.types import Context, Subject


class Campaigns:
    """Decides every campaign that applies, per ad unit, in policy order."""

    kind = CAMPAIGN

    def __init__(self) -> None:
        # per policy snapshot: its campaigns less those a trigger shows (served by their
        # trigger only, slotwise.proxy.personalisers.triggered)
        self._policy: CompiledPolicySet | None = None
        self._campaigns: tuple[CompiledCampaign, ...] = ()
        # per campaign of that snapshot: the locations it writes, and those of them another
        # personalisation writes too (``shared``, per plan: worked out for ``_shared_of``)
        self._written: dict[str, tuple[Location, ...]] = {}
        self._shared_of: frozenset[Location] | None = None
        self._shared: dict[str, tuple[Location, ...]] = {}

    def _regular(self, policy: CompiledPolicySet) -> tuple[CompiledCampaign, ...]:
        if policy is not self._policy:
            shown = {t.show_campaign for t in policy.triggers}
            self._campaigns = tuple(c for c in policy.campaigns if c.name not in shown)
            self._written = {c.name: tuple(_locations(c)) for c in policy.campaigns}
            self._shared_of = None
            self._policy = policy
        return self._campaigns

    def _claimed(
        self, campaign: CompiledCampaign, shared: frozenset[Location]
    ) -> tuple[Location, ...]:
        """The campaign's locations that ``shared`` (the plan's) names: those it claims."""
        if shared is not self._shared_of:
            self._shared = {
                name: tuple(at for at in written if at in shared)
                for name, written in self._written.items()
            }
            self._shared_of = shared
        return self._shared[campaign.name]

    def wanted(self, policy: CompiledPolicySet) -> bool:
        return bool(policy.campaigns)

    def locations(self, policy: CompiledPolicySet) -> Iterator[tuple[str, Location]]:
        for campaign in self._regular(policy):
            for location in _locations(campaign):
                yield campaign.name, location

    def personalise(self, engine: Engine, exchange: Exchange) -> None:
        assert exchange.policy is not None and exchange.document is not None
        campaigns = self._regular(exchange.policy)
        gathered = exchange.gathered
        subject = request_subject(gathered)
        for index, unit in enumerate(exchange.document.units[:MAX_UNITS]):
            ctx = decision_context(gathered, exchange.now, unit.signals)
            for campaign in campaigns:
                try:
                    applies = campaign.applies(ctx)
                except Exception:
                    raise FailOpen("policy_error", exchange.records) from None
                if applies:
                    shared = exchange.shared
                    claims = self._claimed(campaign, shared) if shared else ()
                    written = self._written[campaign.name]
                    _decide(engine, exchange, index, unit, campaign, ctx, subject, written, claims)


def _decide(
    engine: Engine,
    exchange: Exchange,
    index: int,
    unit: AdUnit,
    campaign: CompiledCampaign,
    ctx: Context,
    subject: Subject,
    written: tuple[Location, ...],
    claims: tuple[Location, ...],
) -> None:
    """Decide one campaign on one unit; ``written`` are the locations it writes, ``claims``
    those of them it claims (the plan's shared ones)."""
    exchange.applied = True
    if campaign.name in engine.guardrails.campaigns:
        # reverted by its guardrail: everyone gets the upstream's creative (the control
        # experience) until a person re-enables it; the record says why, in neither arm
        engine.metrics.campaigns_skipped.inc(campaign.name, "guardrail")
        record = unserved_record(new_decision_id(), exchange.now, exchange.policy, campaign, ctx)
        exchange.record(failed(record, "guardrail"), exchange.gathered.user_id)
        return
    cap = campaign.cap
    user = exchange.gathered.user_id
    if cap is not None and user is not None and capped(ctx, f"campaign:{campaign.name}"):
        engine.metrics.campaigns_skipped.inc(campaign.name, "capped")
        return
    try:
        eligibility = campaign.eligible(ctx)
    except Exception:
        raise FailOpen("policy_error", exchange.records) from None
    for slot in campaign.slots:
        if unit.read(slot.location) is None:
            engine.metrics.campaigns_skipped.inc(campaign.name, "missing_slot")
            return
    if campaign.offer_slots and _missing_offer_slot(unit, campaign):
        engine.metrics.campaigns_skipped.inc(campaign.name, "missing_slot")
        return
    if exchange.claimed and exchange.contested(index, written):
        engine.metrics.campaigns_skipped.inc(campaign.name, "contested")
        return
    policy = exchange.policy
    decision_id = new_decision_id()
    try:
        choice = engine.chooser.choose(campaign, eligibility, ctx.signals, subject)
    except Exception:
        record = unserved_record(decision_id, exchange.now, policy, campaign, ctx)
        exchange.record(record, user)
        raise FailOpen("chooser_error", exchange.records) from None
    if claims:
        exchange.claim_always(index, claims)  # only the shared ones: Exchange.claim's choice
    if not choice.holdout and campaign.offer_slots:
        _write_with_offers(engine, exchange, unit, campaign, choice, ctx, decision_id)
    elif not choice.holdout:
        for pick in choice.choices:
            if pick.variant is not None:
                slot = campaign.slot(pick.slot)
                unit.write(slot.location, slot.variant(pick.variant).value)
    # a control (holdout) keeps the upstream's creative but is tracked like any other
    # decision: its impressions, clicks and conversions are the baseline lift is measured from
    origin = engine.tracker_origin(exchange)
    unit.track(engine.signer.trackers(decision_id, origin))
    exchange.changed = True
    version = policy.version if policy is not None else ""
    format = exchange.document.format if exchange.document is not None else None
    exchange.record(
        decision_record(choice, decision_id, exchange.now, version, format=format), user
    )
    if cap is not None and user is not None and engine.caps is not None:
        engine.caps.count(user, f"campaign:{campaign.name}", cap, exchange.now)


def _missing_offer_slot(unit: AdUnit, campaign: CompiledCampaign) -> bool:
    return any(unit.read(slot.location) is None for slot in campaign.offer_slots)


def _write_with_offers(
    engine: Engine,
    exchange: Exchange,
    unit: AdUnit,
    campaign: CompiledCampaign,
    choice: Choice,
    ctx: Context,
    decision_id: str,
) -> None:
    """The chosen variants, then the offer sets' decisions (their texts, and the offer id in
    the landing URL, which a variant may have set): each location written once."""
    writes: dict[Location, str] = {}
    for pick in choice.choices:
        if pick.variant is not None:
            slot = campaign.slot(pick.slot)
            writes[slot.location] = slot.variant(pick.variant).value
    try:
        decide_offers(engine, exchange, unit, campaign, ctx, writes)
    except FailOpen as exc:
        # the campaign decided, then its offer set failed: nothing is served, and the
        # campaign's decision is logged as not served beside the offer set's
        record = unserved_record(decision_id, exchange.now, exchange.policy, campaign, ctx)
        exchange.record(record, exchange.gathered.user_id)
        raise FailOpen(exc.cause, exchange.records) from None
    for location, value in writes.items():
        unit.write(location, value)


def _locations(campaign: CompiledCampaign) -> list[Location]:
    """The locations the campaign writes: its slots', its offer creatives' too."""
    locations = [slot.location for slot in campaign.slots]
    if campaign.offer_slots:
        locations += [slot.location for slot in campaign.offer_slots]
    return locations


def capped(ctx: Context, label: str) -> bool:
    """Has the user reached the frequency cap ``label`` (the ``user.capped`` signal)?"""
    reached = ctx.signals.get("user.capped")
    return isinstance(reached, tuple) and label in reached
