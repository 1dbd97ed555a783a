"""Exploration as the policy says, translated into Vowpal Wabbit options.

The one exploration type is ``slotwise.types.Explore`` (a kind and one parameter); this module
checks it with the bandit's error codes and maps each kind to a VW exploration reduction on top
of ``--cb_explore_adf``. VW computes the probability of every eligible variant and the engine
samples from it, so the logged probability is exactly the one the choice was drawn from.

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

from slotwise.proxy.bandit.errors import BanditError
from slotwise.types import EXPLORE_KINDS, Explore

KINDS = tuple(EXPLORE_KINDS)


def checked(explore: Explore) -> Explore:
    """``explore`` if the bandit can run it; else ``unknown_explore`` or ``bad_explore``."""
    problem = explore.problem()
    if problem is None:
        return explore
    if explore.kind not in EXPLORE_KINDS:
        raise BanditError("unknown_explore", problem)
    raise BanditError("bad_explore", problem)


def explore_from_policy(kind: str | None, parameter: float | None) -> Explore:
    """The checked Explore for a clause's kind and parameter (absent: epsilon 5%; absent
    parameter: the kind's default)."""
    return checked(Explore.of(kind, parameter))


def model_family(explore: Explore) -> str:
    """Models are interchangeable within a family (epsilon, greedy share one)."""
    return "epsilon" if explore.kind == "greedy" else explore.kind


def family_args(explore: Explore) -> list[str]:
    """Options fixed when a model is created (they shape the saved model)."""
    kind = explore.kind
    if kind == "squarecb":
        return ["--squarecb"]
    if kind == "softmax":
        return ["--softmax"]
    if kind in ("bag", "cover", "first"):
        return [f"--{kind}", str(int(explore.parameter))]
    return []


def tuning_args(explore: Explore) -> list[str]:
    """Options that may change when a saved model is loaded again."""
    kind, value = explore.kind, explore.parameter
    if kind == "epsilon":
        return ["--epsilon", repr(value)]
    if kind == "greedy":
        return ["--epsilon", "0"]
    if kind == "squarecb":
        return ["--gamma_scale", repr(value)]
    if kind == "softmax":
        return ["--lambda", repr(value)]
    return []
