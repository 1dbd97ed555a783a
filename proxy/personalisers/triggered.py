"""The triggered-campaigns step: first in precedence, a campaign a firing trigger shows.

A trigger (``trigger ... show campaign NAME``) fires for a user while its episode is armed:
after its ``on`` event and ``wait``, within its ``window``, with no ``unless`` event within its
``unless`` window, and with its ``when`` holding for the request. This step evaluates exactly
that (``CompiledTrigger.due``, the rule ``slotwise test`` runs) on the history the ``profile``
provider already read for the request: no store read of its own, so a request without an
armed trigger costs one dictionary lookup per trigger, and the state is current the moment the
event is acknowledged (the collector updates the history before it answers).

Consent first: nothing fires without personal consent and a user id. Per ad unit, a firing
trigger's campaign is decided when its ``applies when`` holds and its slots are in the unit;
it claims its locations before any regular campaign. A campaign a trigger shows is served only
through its trigger: the campaigns step leaves it out (after a purchase cancels the trigger,
the next response is generic again).

Each triggered decision has its own holdout, drawn per (trigger, user) with the campaign's
holdout share (the campaign's own holdout is not drawn again): the control group sees the
upstream's creative, is tracked, and its record says ``holdout: true`` and names the trigger.
The ladder's offer for the current ``cart.value`` goes into the response in the documented
offer shape (slotwise.proxy.offer_document) at the unit's ``offer`` location: the ``"offer"``
member of a JSON document, ``ext.offer`` of an OpenRTB bid (a VAST ad has none: the record
still names the offer). The decision record carries ``trigger`` and ``trigger_offer``.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import msgspec

from slotwise.dsl.precedence import TRIGGERED
from slotwise.proxy.adapters.json import JsonUnit
from slotwise.proxy.adapters.openrtb import BidUnit
from slotwise.proxy.bandit.holdout import in_holdout
from slotwise.proxy.decision_log import decision_record, unserved_record
from slotwise.proxy.exchange import MAX_UNITS, FailOpen
from slotwise.proxy.offer_document import offer_document, offer_id
from slotwise.proxy.personalisers.campaigns import capped
from slotwise.proxy.tracking import new_decision_id

if TYPE_CHECKING:
    from slotwise.dsl.compiled import CompiledCampaign, CompiledPolicySet, CompiledTrigger
    from slotwise.dsl.location import Location
    from slotwise.proxy.adapters import AdUnit
    from slotwise.proxy.decide import Engine
    from slotwise.proxy.exchange import Exchange
    from slotwise.types import Context, EventHistory


def shown_campaigns(policy: CompiledPolicySet) -> frozenset[str]:
    """The campaigns some trigger shows: served through their trigger only."""
    return frozenset(t.show_campaign for t in policy.triggers if t.show_campaign is not None)


class TriggeredCampaigns:
    """Decides the campaigns of the triggers firing for the user, per ad unit."""

    kind = TRIGGERED

    def __init__(self, rng: random.Random | None = None) -> None:
        self._rng = rng or random.Random()
        # per policy snapshot: (trigger, its campaign without a holdout of its own)
        self._policy: CompiledPolicySet | None = None
        self._shows: tuple[tuple[CompiledTrigger, CompiledCampaign, float], ...] = ()

    def wanted(self, policy: CompiledPolicySet) -> bool:
        return any(t.show_campaign is not None for t in policy.triggers)

    def locations(self, policy: CompiledPolicySet) -> Iterator[tuple[str, Location]]:
        # none: a firing trigger claims its campaign's locations itself (claim_always), so
        # the many responses it does not decide on pay nothing for the locations it shares
        return iter(())

    def _plan(
        self, policy: CompiledPolicySet
    ) -> tuple[tuple[CompiledTrigger, CompiledCampaign, float], ...]:
        if policy is not self._policy:
            campaigns = {c.name: c for c in policy.campaigns}
            shows = []
            for trigger in policy.triggers:
                campaign = campaigns.get(trigger.show_campaign or "")
                if campaign is not None:  # the checker refuses an unknown name
                    bare = dataclasses.replace(campaign, holdout=0.0)
                    shows.append((trigger, bare, campaign.holdout))
            self._shows, self._policy = tuple(shows), policy
        return self._shows

    def personalise(self, engine: Engine, exchange: Exchange) -> None:
        gathered = exchange.gathered
        if not gathered.personal or gathered.user_id is None:
            return  # consent first: no personal trigger without personal consent
        assert exchange.policy is not None and exchange.document is not None
        history, now = gathered.history, exchange.now
        # the common case, no trigger in its time window: a lookup per trigger, no context
        shows = [show for show in self._plan(exchange.policy) if _in_window(show[0], history, now)]
        if not shows:
            return
        for index, unit in enumerate(exchange.document.units[:MAX_UNITS]):
            ctx = gathered.context(exchange.now, unit.signals)
            for trigger, campaign, holdout in shows:
                try:
                    fires = trigger.due(ctx) and campaign.applies(ctx)
                except Exception:
                    raise FailOpen("policy_error", exchange.records) from None
                if fires and not _capped(trigger, campaign, ctx):
                    self._show(engine, exchange, index, unit, trigger, campaign, holdout, ctx)

    def _show(
        self,
        engine: Engine,
        exchange: Exchange,
        index: int,
        unit: AdUnit,
        trigger: CompiledTrigger,
        campaign: CompiledCampaign,
        holdout: float,
        ctx: Context,
    ) -> None:
        exchange.applied = True
        try:
            eligibility = campaign.eligible(ctx)
            arm = trigger.offer_for(ctx)
        except Exception:
            raise FailOpen("policy_error", exchange.records) from None
        for slot in campaign.slots:
            if unit.read(slot.location) is None:
                engine.metrics.campaigns_skipped.inc(campaign.name, "missing_slot")
                return
        locations = [slot.location for slot in campaign.slots]
        if exchange.claimed and exchange.contested(index, locations):
            engine.metrics.campaigns_skipped.inc(campaign.name, "contested")
            return
        policy = exchange.policy
        decision_id = new_decision_id()
        user = exchange.gathered.user_id
        subject = exchange.gathered.subject
        control = in_holdout(f"trigger:{trigger.name}", user, holdout, self._rng)
        try:
            choice = engine.chooser.choose(campaign, eligibility, ctx.signals, subject)
        except Exception:
            record = unserved_record(decision_id, exchange.now, policy, campaign, ctx)
            exchange.record(msgspec.structs.replace(record, trigger=trigger.name), user)
            raise FailOpen("chooser_error", exchange.records) from None
        choice = choice._replace(holdout=control, holdout_share=holdout)
        exchange.claim_always(index, locations)
        if not control:
            for pick in choice.choices:
                if pick.variant is not None:
                    slot = campaign.slot(pick.slot)
                    unit.write(slot.location, slot.variant(pick.variant).value)
            if arm is not None:
                write_offer(unit, offer_document(arm, offer_id=offer_id(decision_id, arm)))
        origin = engine.tracker_origin(exchange)
        unit.track(engine.signer.trackers(decision_id, origin))
        exchange.changed = True
        version = policy.version if policy is not None else ""
        format = exchange.document.format if exchange.document is not None else None
        record = decision_record(choice, decision_id, exchange.now, version, format=format)
        offer = arm.name if arm is not None else None
        exchange.record(
            msgspec.structs.replace(record, trigger=trigger.name, trigger_offer=offer), user
        )
        counter = engine.caps
        if counter is not None and user is not None:
            if trigger.cap is not None:
                counter.count(user, f"trigger:{trigger.name}", trigger.cap, exchange.now)
            if campaign.cap is not None:
                counter.count(user, f"campaign:{campaign.name}", campaign.cap, exchange.now)


def _capped(trigger: CompiledTrigger, campaign: CompiledCampaign, ctx: Context) -> bool:
    """Has the user reached the trigger's or its campaign's frequency cap?"""
    if trigger.cap is None and campaign.cap is None:
        return False
    return (trigger.cap is not None and capped(ctx, f"trigger:{trigger.name}")) or (
        campaign.cap is not None and capped(ctx, f"campaign:{campaign.name}")
    )


def _in_window(trigger: CompiledTrigger, history: EventHistory, now: float) -> bool:
    """Is the latest `on` event of ``trigger`` past its wait and within its window?"""
    started = history.last(trigger.on_event)
    return started is not None and started + trigger.wait <= now <= started + trigger.window


def write_offer(unit: AdUnit, document: dict[str, Any]) -> bool:
    """Put the offer at the unit's offer location (see the module docstring)."""
    if isinstance(unit, JsonUnit) and isinstance(unit.document, dict):
        unit.document["offer"] = document
        return True
    if isinstance(unit, BidUnit):
        ext = unit.bid.setdefault("ext", {})
        if isinstance(ext, dict):
            ext["offer"] = document
            return True
    return False
