"""What the bandit needs to know about a campaign: a thin view of the compiled one.

``BanditCampaign`` holds the slots and variants of a campaign (the actions: the compiled
policy's own ``Slot`` and ``Variant`` objects, ``slotwise.dsl.compiled``), how it explores, its
holdout share and its goal (``slotwise.types``), without the rule matcher, which the bandit never
reads: the rules' outcome reaches it per request as ``SlotRules``. ``from_compiled`` builds it
from a ``CompiledCampaign``; a scenario without a policy file, a decision log and tests build
it directly, with ``action_slot`` for a slot known only by its variant names.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from types import MappingProxyType

from slotwise.dsl.compiled import CompiledCampaign, Slot, Variant
from slotwise.dsl.location import JsonPathLocation
from slotwise.proxy.bandit.errors import BanditError
from slotwise.proxy.bandit.exploration import checked
from slotwise.types import DEFAULT_EXPLORE, DEFAULT_GOAL, Explore, Goal


@dataclass(frozen=True, slots=True)
class BanditCampaign:
    """The actions, exploration, holdout and goal of one campaign."""

    name: str
    slots: tuple[Slot, ...]
    explore: Explore = DEFAULT_EXPLORE
    holdout: float = 0.0
    goal: Goal = DEFAULT_GOAL

    def __post_init__(self) -> None:
        checked(self.explore)
        if not 0.0 <= self.holdout <= 1.0:
            raise BanditError(
                "bad_holdout", f"campaign {self.name}: holdout must be in 0..1, got {self.holdout}"
            )
        if not self.slots:
            raise BanditError("no_slots", f"campaign {self.name} has no slots")
        for slot in self.slots:
            if not slot.variants:
                raise BanditError("no_variants", f"campaign {self.name}: slot {slot.name} is empty")

    def slot(self, name: str) -> Slot:
        for slot in self.slots:
            if slot.name == name:
                return slot
        raise KeyError(name)

    @property
    def combinations(self) -> int:
        total = 1
        for slot in self.slots:
            total *= len(slot.variants)
        return total


def from_compiled(campaign: CompiledCampaign) -> BanditCampaign:
    """The bandit's view of a compiled campaign (its slots, exploration, holdout and goal)."""
    return BanditCampaign(
        name=campaign.name,
        slots=campaign.slots,
        explore=campaign.explore,
        holdout=float(campaign.holdout or 0.0),
        goal=campaign.goal,
    )


def action_slot(name: str, variants: Iterable[str]) -> Slot:
    """A slot known only by its name and its variants' names (a scenario without a policy
    file, a decision log): no attributes, each variant's value its name, and the location
    ``$.<name>``, which nothing reads: such a campaign is simulated or evaluated, never served.
    """
    return Slot(
        name,
        JsonPathLocation((name,), f"$.{name}"),
        tuple(Variant(variant, variant, _NO_ATTRIBUTES) for variant in variants),
    )


_NO_ATTRIBUTES: MappingProxyType[str, str] = MappingProxyType({})
