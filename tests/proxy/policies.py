"""A compiled-policy stand-in for proxy tests, shaped like slotwise.dsl.compiled.

The proxy reads a policy set only through ``version``, ``campaigns``, ``select(ctx)``, the
(here empty) ``triggers``, ``offers``, ``recommendations``, ``reranks``, and a campaign's
``name``, ``slots``, ``holdout``, ``applies(ctx)``, ``eligible(ctx)``, ``slot(name)``; these classes
implement exactly that contract with plain predicates, so the proxy's tests do not depend on
the policy compiler. ``fault`` injects engine faults (exception, hang, corrupt snapshot).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from slotwise.dsl.location import Location, parse_location
from slotwise.plugins.schema import Context


@dataclass(frozen=True)
class Variant:
    name: str
    value: str
    attributes: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Slot:
    name: str
    location: Location
    variants: tuple[Variant, ...]

    def variant(self, name: str) -> Variant:
        return next(v for v in self.variants if v.name == name)


@dataclass(frozen=True)
class SlotEligibility:
    variants: tuple[str, ...]
    preferred: tuple[str, ...] = ()
    pinned: str | None = None
    boosts: Mapping[str, float] = field(default_factory=dict)

    @property
    def choices(self) -> tuple[str, ...]:
        if self.pinned is not None:
            return (self.pinned,)
        return self.preferred or self.variants


@dataclass(frozen=True)
class Eligibility:
    slots: Mapping[str, SlotEligibility]
    matched_rules: tuple[str, ...] = ()


@dataclass(frozen=True)
class Campaign:
    name: str
    slots: tuple[Slot, ...]
    when: Callable[[Context], bool]
    holdout: float = 0.0
    rules: Callable[[Context], Mapping[str, SlotEligibility]] | None = None
    fault: str | None = None  # "raise" | "hang"
    cap: Any = None  # no frequency cap (CompiledCampaign.cap)
    offer_slots: tuple[Any, ...] = ()  # no offer creatives (CompiledCampaign.offer_slots)

    def applies(self, ctx: Context) -> bool:
        return self.when(ctx)

    def eligible(self, ctx: Context) -> Eligibility:
        if self.fault == "raise":
            raise RuntimeError("injected engine fault")
        if self.fault == "hang":
            time.sleep(0.05)  # far past a 10 ms decision deadline
        chosen = dict(self.rules(ctx)) if self.rules else {}
        return Eligibility(
            {
                s.name: chosen.get(s.name, SlotEligibility(tuple(v.name for v in s.variants)))
                for s in self.slots
            }
        )

    def slot(self, name: str) -> Slot:
        return next(s for s in self.slots if s.name == name)


@dataclass(frozen=True)
class PolicySet:
    campaigns: tuple[Any, ...]
    version: str = "test-1"
    selects_on_response: bool = False  # the selectors are opaque: gather signals early
    triggers: tuple[Any, ...] = ()
    offers: tuple[Any, ...] = ()
    recommendations: tuple[Any, ...] = ()
    reranks: tuple[Any, ...] = ()

    def select(self, ctx: Context) -> Any:
        for campaign in self.campaigns:
            if campaign.applies(ctx):
                return campaign
        return None


class CorruptCampaign:
    """A snapshot whose objects are broken (a half-built or corrupted policy set)."""

    name = "corrupt"
    slots = None
    holdout = "x"

    def applies(self, ctx: Context) -> bool:
        return True

    def eligible(self, ctx: Context) -> Any:
        return None


def slot(name: str, location: str, *variants: tuple[str, str]) -> Slot:
    return Slot(name, parse_location(location), tuple(Variant(n, v) for n, v in variants))


def campaign_id_is(value: str) -> Callable[[Context], bool]:
    return lambda ctx: ctx.signals.get("ad.campaign_id") == value
