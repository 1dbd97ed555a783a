"""How the proxy picks one variant per slot: the chooser interface and the rule chooser.

The decision (slotwise.proxy.decide) asks a :class:`Chooser` for a
:class:`~slotwise.proxy.choice.Choice`: per slot the chosen variant and the probability it was
drawn with, plus the holdout flag. The rule chooser here needs no model: the pinned variant
wins; otherwise it draws among the preferred variants (or all allowed ones) uniformly, weighted
by boosts. The bandit plugs in through :class:`BanditChooser`, which hands the same inputs to
``BanditRuntime.choose``. Both return the same ``Choice`` and follow the same rules
(tests/proxy/test_chooser_contract.py):

- the holdout layer comes first (``slotwise.proxy.bandit.holdout``): sticky per (campaign,
  user) with personal consent; without it the user id is never used and the draw is per
  request;
- a holdout choice chooses nothing and keeps every slot's choice set (``slotwise.proxy.choice``);
- ``personal`` is whether personal data may shape the decision (personal consent and not a new
  user), the same test the bandit's features use.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, Protocol

from slotwise.proxy.bandit.features import uses_personal_features
from slotwise.proxy.bandit.holdout import in_holdout
from slotwise.proxy.bandit.runtime import BanditRuntime
from slotwise.proxy.choice import Choice, SlotChoice
from slotwise.types import Signals, Subject

if TYPE_CHECKING:
    from slotwise.dsl.compiled import CompiledCampaign, Eligibility, SlotEligibility

RULES_MODEL = "rules"  # the model_version logged for rule-chosen decisions


class Chooser(Protocol):
    """Chooses variants for one campaign and request; must not block or do I/O."""

    def choose(
        self,
        campaign: CompiledCampaign,
        eligibility: Eligibility,
        signals: Signals,
        subject: Subject,
    ) -> Choice: ...


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
    ) -> Choice:
        personal = uses_personal_features(signals)
        # Subject.personal, read as its field: the NamedTuple's property is a Python call
        key = subject.user_id if subject.consent == "personal" else None
        rules = eligibility.slots
        if in_holdout(campaign.name, key, campaign.holdout, self._rng):
            sets = tuple([_choice_set(slot.name, rules.get(slot.name)) for slot in campaign.slots])
            return Choice(
                campaign.name, RULES_MODEL, True, campaign.holdout, personal, sets, signals
            )
        draw = self._rng.random
        picks = tuple(
            [pick_variant(slot.name, rules.get(slot.name), draw()) for slot in campaign.slots]
        )
        return Choice(campaign.name, RULES_MODEL, False, campaign.holdout, personal, picks, signals)


def _choice_set(slot: str, rules: SlotEligibility | None) -> SlotChoice:
    """A slot of a holdout choice: nothing chosen, the choice set kept for evaluation."""
    return SlotChoice(slot, None, 1.0, () if rules is None else rules.choices)


def pick_variant(slot: str, rules: SlotEligibility | None, u: float) -> SlotChoice:
    """Draw one variant with ``u`` uniform in [0, 1); the probability is the one drawn with."""
    if rules is None:
        return SlotChoice(slot, None, 1.0, ())
    candidates = rules.choices
    if not candidates:
        return SlotChoice(slot, None, 1.0, ())
    count = len(candidates)
    if count == 1:
        return SlotChoice(slot, candidates[0], 1.0, candidates)
    if not rules.boosts:
        # all weights 1.0: the walk below stops at floor(u * count), exactly (integer sums)
        chosen = candidates[min(int(u * count), count - 1)]
        return SlotChoice(slot, chosen, 1.0 / count, candidates)
    weights = [rules.boosts.get(name, 1.0) for name in candidates]
    total = sum(weights)
    threshold = u * total
    running = 0.0
    for name, weight in zip(candidates, weights, strict=True):
        running += weight
        if threshold < running:
            return SlotChoice(slot, name, weight / total, candidates)
    return SlotChoice(slot, candidates[-1], weights[-1] / total, candidates)


class BanditChooser:
    """Adapts ``slotwise.proxy.bandit.runtime.BanditRuntime`` to :class:`Chooser`.

    A campaign the bandit does not know (no model installed) falls back to the rule chooser.
    """

    def __init__(self, runtime: BanditRuntime, fallback: Chooser | None = None) -> None:
        self._runtime = runtime
        self._fallback = fallback or RuleChooser()

    def choose(
        self,
        campaign: CompiledCampaign,
        eligibility: Eligibility,
        signals: Signals,
        subject: Subject,
    ) -> Choice:
        key = subject.user_id if subject.consent == "personal" else None
        decision = self._runtime.choose(campaign.name, eligibility.slots, signals, key)
        if decision is None:
            return self._fallback.choose(campaign, eligibility, signals, subject)
        return decision
