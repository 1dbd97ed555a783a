"""How the proxy picks one variant per slot: the chooser interface and the rule chooser.

The decision (slotwise.proxy.decide) asks a :class:`Chooser` for a :class:`Choice`: per slot the
chosen variant and the probability it was drawn with, plus the holdout flag. The rule chooser
here needs no model: the pinned variant wins; otherwise it draws among the preferred variants
(or all allowed ones) uniformly, weighted by boosts. The bandit plugs in through
:class:`BanditChooser`, which hands the same inputs to ``BanditRuntime.choose``.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from slotwise.proxy.bandit.holdout import in_holdout
from slotwise.types import Signals, SignalValue, Subject

if TYPE_CHECKING:
    from slotwise.dsl.compiled import CompiledCampaign, Eligibility, SlotEligibility

RULES_MODEL = "rules"  # the model_version logged for rule-chosen decisions


class SlotPick(Protocol):
    @property
    def slot(self) -> str: ...
    @property
    def variant(self) -> str | None: ...
    @property
    def probability(self) -> float: ...
    @property
    def candidates(self) -> tuple[str, ...]: ...


class Choice(Protocol):
    """What a chooser returns (``slotwise.proxy.bandit.engine.BanditDecision`` fits)."""

    @property
    def campaign(self) -> str: ...
    @property
    def model_version(self) -> str: ...
    @property
    def holdout(self) -> bool: ...
    @property
    def holdout_share(self) -> float: ...
    @property
    def personal(self) -> bool: ...
    @property
    def choices(self) -> Sequence[SlotPick]: ...
    @property
    def signals(self) -> Mapping[str, SignalValue]: ...


class Chooser(Protocol):
    """Chooses variants for one campaign and request; must not block or do I/O."""

    def choose(
        self,
        campaign: CompiledCampaign,
        eligibility: Eligibility,
        signals: Signals,
        subject: Subject,
    ) -> Choice: ...


# named tuples: built on every decision, and much cheaper to create than frozen dataclasses
class RuleSlotPick(NamedTuple):
    slot: str
    variant: str | None
    probability: float
    candidates: tuple[str, ...]


class RuleChoice(NamedTuple):
    campaign: str
    model_version: str
    holdout: bool
    holdout_share: float
    personal: bool
    choices: tuple[RuleSlotPick, ...]
    signals: Mapping[str, SignalValue]


class RuleChooser:
    """Pin wins, prefer narrows, otherwise a boost-weighted uniform draw."""

    def __init__(self, rng: random.Random | None = None) -> None:
        self._rng = rng or random.Random()

    def choose(
        self,
        campaign: CompiledCampaign,
        eligibility: Eligibility,
        signals: Signals,
        subject: Subject,
    ) -> RuleChoice:
        personal = subject.personal
        key = subject.user_id if personal else None
        if in_holdout(campaign.name, key, campaign.holdout, self._rng):
            return RuleChoice(
                campaign.name, RULES_MODEL, True, campaign.holdout, personal, (), signals
            )
        rules = eligibility.slots
        draw = self._rng.random
        picks = tuple(
            [pick_variant(slot.name, rules.get(slot.name), draw()) for slot in campaign.slots]
        )
        return RuleChoice(
            campaign.name, RULES_MODEL, False, campaign.holdout, personal, picks, signals
        )


def pick_variant(slot: str, rules: SlotEligibility | None, u: float) -> RuleSlotPick:
    """Draw one variant with ``u`` uniform in [0, 1); the probability is the one drawn with."""
    if rules is None:
        return RuleSlotPick(slot, None, 1.0, ())
    candidates = rules.choices
    if not candidates:
        return RuleSlotPick(slot, None, 1.0, ())
    count = len(candidates)
    if count == 1:
        return RuleSlotPick(slot, candidates[0], 1.0, candidates)
    if not rules.boosts:
        # all weights 1.0: the walk below stops at floor(u * count), exactly (integer sums)
        chosen = candidates[min(int(u * count), count - 1)]
        return RuleSlotPick(slot, chosen, 1.0 / count, candidates)
    weights = [rules.boosts.get(name, 1.0) for name in candidates]
    total = sum(weights)
    threshold = u * total
    running = 0.0
    for name, weight in zip(candidates, weights, strict=True):
        running += weight
        if threshold < running:
            return RuleSlotPick(slot, name, weight / total, candidates)
    return RuleSlotPick(slot, candidates[-1], weights[-1] / total, candidates)


class BanditChooser:
    """Adapts ``slotwise.proxy.bandit.runtime.BanditRuntime`` to :class:`Chooser`.

    A campaign the bandit does not know (no model installed) falls back to the rule chooser.
    """

    def __init__(self, runtime: Any, fallback: Chooser | None = None) -> None:
        self._runtime = runtime
        self._fallback = fallback or RuleChooser()

    def choose(
        self,
        campaign: CompiledCampaign,
        eligibility: Eligibility,
        signals: Signals,
        subject: Subject,
    ) -> Choice:
        decision: Choice | None = self._runtime.choose(
            campaign.name, eligibility.slots, signals, subject.user_id
        )
        if decision is None:
            return self._fallback.choose(campaign, eligibility, signals, subject)
        return decision
