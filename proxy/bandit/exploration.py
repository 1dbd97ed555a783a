"""Exploration as the policy says, translated into Vowpal Wabbit options.

The policy's ``explore`` clause names a kind and one parameter. Each kind maps to a VW
exploration reduction on top of ``--cb_explore_adf``; VW computes the probability of every
eligible variant and the engine samples from it, so the logged probability is exactly the one
the choice was drawn from.

    epsilon P     epsilon-greedy: the best variant gets 1 - P + P/K, every other P/K
    squarecb G    SquareCB with gamma scale G (exploration shrinks as evidence grows)
    softmax L     softmax over the scores with inverse temperature L
    bag N         bootstrap: N policies, probability = share of policies choosing each
    cover N       online cover with N policies
    first N       uniform for the model's first N learned decisions, then greedy
    greedy        no exploration (epsilon 0): only for evaluation or a frozen policy

The kind is part of the model's layout (SquareCB and bagging keep extra state), so a model
trained under one kind cannot serve another: ``model_family`` tells the model store which
saved models fit a campaign. The epsilon value itself may change without retraining.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from slotwise.proxy.bandit.errors import BanditError

KINDS = ("epsilon", "squarecb", "softmax", "bag", "cover", "first", "greedy")
DEFAULT_EXPLORE_PARAMETER = {
    "epsilon": 0.05,
    "squarecb": 10.0,
    "softmax": 1.0,
    "bag": 5.0,
    "cover": 5.0,
    "first": 1000.0,
}


@dataclass(frozen=True, slots=True)
class Explore:
    """One exploration strategy: ``kind`` from KINDS and its parameter."""

    kind: str = "epsilon"
    parameter: float = 0.05

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise BanditError(
                "unknown_explore",
                f"unknown exploration {self.kind!r}; use one of: {', '.join(KINDS)}",
            )
        if not math.isfinite(self.parameter):  # the checks below would pass nan, or crash on it
            raise BanditError(
                "bad_explore", f"the parameter must be a number, got {self.parameter}"
            )
        if self.kind == "epsilon" and not 0.0 <= self.parameter <= 1.0:
            raise BanditError(
                "bad_explore", f"epsilon must be in 0..1 (a share), got {self.parameter}"
            )
        if self.kind in ("squarecb", "softmax") and self.parameter <= 0:
            raise BanditError(
                "bad_explore", f"{self.kind} needs a positive parameter, got {self.parameter}"
            )
        whole = self.parameter == int(self.parameter)
        if self.kind in ("bag", "cover") and (self.parameter < 2 or not whole):
            raise BanditError(
                "bad_explore",
                f"{self.kind} needs a whole number of policies >= 2, got {self.parameter}",
            )
        if self.kind == "first" and (self.parameter < 1 or not whole):
            raise BanditError(
                "bad_explore", f"first needs a whole number of decisions >= 1, got {self.parameter}"
            )

    @property
    def model_family(self) -> str:
        """Models are interchangeable within a family (epsilon, greedy share one)."""
        return "epsilon" if self.kind == "greedy" else self.kind

    def family_args(self) -> list[str]:
        """Options fixed when a model is created (they shape the saved model)."""
        if self.kind == "squarecb":
            return ["--squarecb"]
        if self.kind == "softmax":
            return ["--softmax"]
        if self.kind in ("bag", "cover", "first"):
            return [f"--{self.kind}", str(int(self.parameter))]
        return []

    def tuning_args(self) -> list[str]:
        """Options that may change when a saved model is loaded again."""
        if self.kind == "epsilon":
            return ["--epsilon", repr(self.parameter)]
        if self.kind == "greedy":
            return ["--epsilon", "0"]
        if self.kind == "squarecb":
            return ["--gamma_scale", repr(self.parameter)]
        if self.kind == "softmax":
            return ["--lambda", repr(self.parameter)]
        return []


def explore_from_policy(kind: str | None, parameter: float | None) -> Explore:
    """The Explore for a compiled campaign's clause (absent: epsilon 5%)."""
    if kind is None:
        return Explore()
    if kind == "greedy":
        return Explore("greedy", 0.0)
    value = DEFAULT_EXPLORE_PARAMETER.get(kind, 0.0) if parameter is None else parameter
    return Explore(kind, float(value))
