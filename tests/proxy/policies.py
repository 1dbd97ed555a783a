"""Policy sets for proxy tests, built from slotwise.dsl.compiled's real classes.

The proxy reads a policy set only through ``version``, ``campaigns``, ``select(ctx)``, the
(here empty) ``triggers``, ``offers``, ``recommendations``, ``reranks``, and a campaign's
``name``, ``slots``, ``holdout``, ``applies(ctx)``, ``eligible(ctx)``, ``slot(name)``. A test
campaign is a real ``CompiledCampaign`` (the request path may be compiled with mypyc, which
checks declared classes) whose ``applies`` is a plain predicate and whose ``eligible`` comes
from a plain function instead of compiled rules, so the proxy's tests do not depend on the
policy compiler. ``fault`` injects engine faults (exception, hang).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from pyroaring import BitMap

from slotwise.dsl.compiled import (
    CompiledCampaign,
    CompiledPolicySet,
    Eligibility,
    Slot,
    SlotEligibility,
    Variant,
)
from slotwise.dsl.location import parse_location
from slotwise.dsl.matcher import build_rule_index
from slotwise.plugins.schema import Context
from slotwise.types import DEFAULT_EXPLORE, DEFAULT_GOAL

__all__ = ["Campaign", "CorruptCampaign", "PolicySet", "Slot", "SlotEligibility", "Variant"]

_NO_RULES = build_rule_index([], {}, lambda name: "discrete")


class Campaign(CompiledCampaign):
    """A campaign whose eligibility per slot is ``rules(ctx)`` (every variant when None)."""

    def __init__(
        self,
        name: str,
        slots: tuple[Slot, ...],
        when: Callable[[Context], bool],
        holdout: float = 0.0,
        rules: Callable[[Context], Mapping[str, SlotEligibility]] | None = None,
        fault: str | None = None,  # "raise" | "hang"
    ) -> None:
        super().__init__(
            name, slots, DEFAULT_GOAL, DEFAULT_EXPLORE, holdout, (), when, _NO_RULES, ()
        )
        object.__setattr__(self, "eligibility_of", rules)
        object.__setattr__(self, "fault", fault)

    def eligible(self, ctx: Context) -> Eligibility:
        if self.fault == "raise":
            raise RuntimeError("injected engine fault")
        if self.fault == "hang":
            time.sleep(0.05)  # far past a 10 ms decision deadline
        chosen = dict(self.eligibility_of(ctx)) if self.eligibility_of else {}
        return Eligibility(
            {
                s.name: chosen.get(s.name, SlotEligibility(tuple(v.name for v in s.variants)))
                for s in self.slots
            },
            BitMap(),
            (),
            _NO_RULES.ids,
        )


def PolicySet(campaigns: Iterable[CompiledCampaign], version: str = "test-1") -> CompiledPolicySet:
    """A policy set of these campaigns (no triggers, offers or product lists)."""
    return CompiledPolicySet(version, tuple(campaigns))


class CorruptCampaign:
    """A snapshot whose objects are broken (a half-built or corrupted policy set)."""

    name = "corrupt"
    slots = None
    holdout = "x"

    def applies(self, ctx: Context) -> bool:
        return True

    _applies = applies  # what CompiledPolicySet.select calls

    def eligible(self, ctx: Context) -> Any:
        return None


def slot(name: str, location: str, *variants: tuple[str, str]) -> Slot:
    return Slot(name, parse_location(location), tuple(Variant(n, v) for n, v in variants))


def campaign_id_is(value: str) -> Callable[[Context], bool]:
    return lambda ctx: ctx.signals.get("ad.campaign_id") == value
