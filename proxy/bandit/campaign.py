"""What the bandit needs to know about a campaign, independent of how the policy was written.

``BanditCampaign`` is the bandit's view of one compiled campaign: its slots and variants (the
actions), the exploration strategy, the holdout share and the goal. ``from_compiled`` builds it
from ``slotwise.dsl.compiled.CompiledCampaign``; tests, the simulator and logs from other
systems build it directly.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from slotwise.proxy.bandit.errors import BanditError
from slotwise.proxy.bandit.exploration import Explore, explore_from_policy
from slotwise.proxy.learn.reward import Goal


@dataclass(frozen=True, slots=True)
class BanditVariant:
    name: str
    attributes: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class BanditSlot:
    name: str
    variants: tuple[BanditVariant, ...]

    def index(self, variant: str) -> int:
        for position, candidate in enumerate(self.variants):
            if candidate.name == variant:
                return position
        raise KeyError(variant)


@dataclass(frozen=True, slots=True)
class BanditCampaign:
    """The actions, exploration, holdout and goal of one campaign."""

    name: str
    slots: tuple[BanditSlot, ...]
    explore: Explore = field(default_factory=Explore)
    holdout: float = 0.0
    goal: Goal = field(default_factory=Goal)

    def __post_init__(self) -> None:
        if not 0.0 <= self.holdout <= 1.0:
            raise BanditError(
                "bad_holdout", f"campaign {self.name}: holdout must be in 0..1, got {self.holdout}"
            )
        if not self.slots:
            raise BanditError("no_slots", f"campaign {self.name} has no slots")
        for slot in self.slots:
            if not slot.variants:
                raise BanditError("no_variants", f"campaign {self.name}: slot {slot.name} is empty")

    def slot(self, name: str) -> BanditSlot:
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


def from_compiled(campaign: Any) -> BanditCampaign:
    """The bandit's view of a ``CompiledCampaign`` (see the compiled-policy contract).

    Reads ``name``, ``slots[].variants[].{name, attributes}``, ``holdout``, ``explore`` (an
    object with ``kind`` and ``parameter``, or None) and ``goal`` (weighted terms: a mapping
    term -> weight, or an object with ``weights`` / ``terms``).
    """
    slots = tuple(
        BanditSlot(
            slot.name,
            tuple(BanditVariant(v.name, dict(v.attributes)) for v in slot.variants),
        )
        for slot in campaign.slots
    )
    explore = campaign.explore
    if explore is None:
        bandit_explore = explore_from_policy(None, None)
    else:
        kind = getattr(explore, "kind", None)
        parameter = getattr(explore, "parameter", None)
        bandit_explore = explore_from_policy(
            None if kind is None else str(kind), None if parameter is None else float(parameter)
        )
    return BanditCampaign(
        name=campaign.name,
        slots=slots,
        explore=bandit_explore,
        holdout=float(campaign.holdout or 0.0),
        goal=_goal_from_compiled(getattr(campaign, "goal", None)),
    )


def _goal_from_compiled(goal: Any) -> Goal:
    if goal is None:
        return Goal()
    if isinstance(goal, Mapping):
        return Goal({str(k): float(v) for k, v in goal.items()})
    weights = getattr(goal, "weights", None)
    if isinstance(weights, Mapping):
        return Goal({str(k): float(v) for k, v in weights.items()})
    terms = getattr(goal, "terms", None)
    if terms is not None:
        combined: dict[str, float] = {}
        for term in terms:
            name = str(getattr(term, "metric", getattr(term, "name", "")))
            combined[name] = combined.get(name, 0.0) + float(getattr(term, "weight", 1.0))
        return Goal(combined)
    raise BanditError("bad_goal", f"cannot read the goal {goal!r} of a compiled campaign")
