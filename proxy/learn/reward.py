"""The reward of a decision: the campaign's ``optimize`` expression over its outcomes.

An outcome totals what came back for one decision inside its window: clicks, conversions,
revenue and discount cost. The goal weighs them (``optimize clicks + 10 * conversions`` is
``{"clicks": 1, "conversions": 10}``); VW minimises cost, so the learner feeds it ``-reward``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from slotwise.proxy.bandit.errors import BanditError

TERMS = ("clicks", "conversions", "revenue", "discount_cost")


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one decision earned inside its reward window."""

    clicks: float = 0.0
    conversions: float = 0.0
    revenue: float = 0.0
    discount_cost: float = 0.0

    def add(self, event: str, value: float) -> Outcome:
        """This outcome plus one reward event (click, conversion, revenue, discount_cost)."""
        if event == "click":
            return Outcome(self.clicks + 1, self.conversions, self.revenue, self.discount_cost)
        if event == "conversion":
            return Outcome(
                self.clicks, self.conversions + 1, self.revenue + value, self.discount_cost
            )
        if event == "revenue":
            return Outcome(self.clicks, self.conversions, self.revenue + value, self.discount_cost)
        if event == "discount_cost":
            return Outcome(self.clicks, self.conversions, self.revenue, self.discount_cost + value)
        raise BanditError(
            "unknown_reward_event",
            f"unknown reward event {event!r}; use click, conversion, revenue or discount_cost",
        )

    def as_dict(self) -> dict[str, float]:
        return {
            "clicks": self.clicks,
            "conversions": self.conversions,
            "revenue": self.revenue,
            "discount_cost": self.discount_cost,
        }


@dataclass(frozen=True, slots=True)
class Goal:
    """A weighted sum of outcome terms: the policy's ``optimize`` expression."""

    weights: Mapping[str, float] = field(default_factory=lambda: {"clicks": 1.0})

    def __post_init__(self) -> None:
        unknown = sorted(set(self.weights) - set(TERMS))
        if unknown:
            raise BanditError(
                "unknown_goal_term",
                f"unknown goal term(s) {', '.join(unknown)}; use {', '.join(TERMS)}",
            )

    def reward(self, outcome: Outcome) -> float:
        values = outcome.as_dict()
        return sum(weight * values[term] for term, weight in self.weights.items())

    def describe(self) -> str:
        return " + ".join(f"{w:g} * {t}" for t, w in self.weights.items()) or "0"
