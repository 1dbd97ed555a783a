"""One campaign's decision: holdout, then per slot a draw from VW's distribution.

``CampaignModel`` binds a campaign to a workspace (a loaded model version) and its prepared
action examples; it is immutable once built and swapped in whole. ``CampaignModel.decide`` is
the bandit's part of the hot path, readable top to bottom:

    1. holdout layer (sticky hash): control gets the upstream untouched, logged as holdout
    2. features: personal namespaces only with consent and for known users
    3. per slot: the choice set the rules leave (pin > prefer > allowed), VW's distribution
       over it, boosts applied, one draw; the logged probability is the one drawn from
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from vowpalwabbit import Workspace

from slotwise.dsl.compiled import Slot
from slotwise.proxy.bandit.campaign import BanditCampaign
from slotwise.proxy.bandit.features import FeatureMap, uses_personal_features
from slotwise.proxy.bandit.holdout import in_holdout
from slotwise.proxy.bandit.workspace import PreparedActions, predict_pmf, shared_example
from slotwise.proxy.choice import Choice, SlotChoice
from slotwise.types import Signals


class SlotRules(Protocol):
    """What the rules left for one slot (``slotwise.dsl.compiled.SlotEligibility``)."""

    @property
    def variants(self) -> tuple[str, ...]: ...

    @property
    def preferred(self) -> tuple[str, ...]: ...

    @property
    def pinned(self) -> str | None: ...

    @property
    def boosts(self) -> Mapping[str, float]: ...


def candidates_for(slot: Slot, rules: SlotRules | None) -> tuple[str, ...]:
    """The choice set for a slot: pin wins, else the preferred, else all allowed."""
    if rules is None:
        return tuple(v.name for v in slot.variants)
    choices = getattr(rules, "choices", None)  # the compiled policy's own reading, when given
    if choices is not None:
        return tuple(choices)
    if rules.pinned is not None:
        return (rules.pinned,)
    if rules.preferred:
        return tuple(rules.preferred)
    return tuple(rules.variants)


def _boosted(pmf: list[float], names: Sequence[str], boosts: Mapping[str, float]) -> list[float]:
    weighted = [p * boosts.get(name, 1.0) for p, name in zip(pmf, names, strict=True)]
    total = sum(weighted)
    if total <= 0.0:
        return pmf
    return [w / total for w in weighted]


def _draw(pmf: Sequence[float], u: float) -> int:
    cumulative = 0.0
    for position, probability in enumerate(pmf):
        cumulative += probability
        if u < cumulative:
            return position
    # rounding left u above the last cumulative sum: the last action with mass
    for position in range(len(pmf) - 1, -1, -1):
        if pmf[position] > 0.0:
            return position
    return len(pmf) - 1


@dataclass(frozen=True, slots=True)
class CampaignModel:
    """A campaign bound to one model version: workspace, prepared actions, variant indexes."""

    campaign: BanditCampaign
    version: str
    workspace: Workspace
    actions: PreparedActions
    index: tuple[Mapping[str, int], ...]
    examples: int = 0  # what the model learned from (its metadata): how far learning has come

    @classmethod
    def build(
        cls, campaign: BanditCampaign, workspace: Workspace, version: str, examples: int = 0
    ) -> CampaignModel:
        index = tuple({v.name: i for i, v in enumerate(slot.variants)} for slot in campaign.slots)
        actions = PreparedActions.build(workspace, campaign)
        return cls(campaign, version, workspace, actions, index, examples)

    def decide(
        self,
        rules: Mapping[str, SlotRules],
        signals: Signals,
        user_key: str | None,
        features: FeatureMap,
        rng: random.Random,
    ) -> Choice:
        campaign = self.campaign
        personal = uses_personal_features(signals)
        used = features.usable_signals(signals, personal=personal)
        # without consent no user key may be used: the holdout draw is then per request
        consented = signals.get("consent.level") == "personal"
        if in_holdout(campaign.name, user_key if consented else None, campaign.holdout, rng):
            # the choice sets are logged without a choice: offline evaluation needs them to
            # say what another policy would have done for this control user
            sets = tuple(
                SlotChoice(slot.name, None, 1.0, candidates_for(slot, rules.get(slot.name)))
                for slot in campaign.slots
            )
            return Choice(campaign.name, self.version, True, campaign.holdout, personal, sets, used)
        shared: list[Any] = []  # built on the first slot with a real choice, then reused
        choices: list[SlotChoice] = []
        for position, slot in enumerate(campaign.slots):
            names, pmf = self._slot_pmf(position, rules, signals, personal, features, shared)
            if not names:
                choices.append(SlotChoice(slot.name, None, 1.0, ()))
                continue
            chosen = _draw(pmf, rng.random()) if len(names) > 1 else 0
            choices.append(SlotChoice(slot.name, names[chosen], pmf[chosen], names))
        return Choice(
            campaign.name, self.version, False, campaign.holdout, personal, tuple(choices), used
        )

    def greedy(
        self, rules: Mapping[str, SlotRules], signals: Signals, features: FeatureMap
    ) -> dict[str, str | None]:
        """Per slot, the most probable variant: what the model learned, without exploring."""
        personal = uses_personal_features(signals)
        shared: list[Any] = []
        greedy: dict[str, str | None] = {}
        for position, slot in enumerate(self.campaign.slots):
            names, pmf = self._slot_pmf(position, rules, signals, personal, features, shared)
            greedy[slot.name] = names[max(range(len(pmf)), key=pmf.__getitem__)] if names else None
        return greedy

    def _slot_pmf(
        self,
        position: int,
        rules: Mapping[str, SlotRules],
        signals: Signals,
        personal: bool,
        features: FeatureMap,
        shared: list[Any],
    ) -> tuple[tuple[str, ...], list[float]]:
        """One slot's eligible variants and the distribution to draw from (rules' boosts
        applied); a single candidate needs no model."""
        slot = self.campaign.slots[position]
        slot_rules = rules.get(slot.name)
        known = self.index[position]
        names = tuple(n for n in candidates_for(slot, slot_rules) if n in known)
        if len(names) < 2:
            return names, [1.0] * len(names)
        if not shared:
            shared.append(
                shared_example(self.workspace, features.shared(signals, personal=personal))
            )
        slot_actions = self.actions.per_slot[position]
        pmf = predict_pmf(self.workspace, shared[0], [slot_actions[known[n]] for n in names])
        if slot_rules is not None and slot_rules.boosts:
            pmf = _boosted(pmf, names, slot_rules.boosts)
        return names, pmf

    def distribution(
        self,
        signals: Signals,
        slot_position: int,
        names: Sequence[str],
        personal: bool,
        features: FeatureMap,
    ) -> list[float]:
        """VW's distribution over ``names`` for one slot (offline evaluation, explain)."""
        shared = shared_example(self.workspace, features.shared(signals, personal=personal))
        known = self.index[slot_position]
        actions = self.actions.per_slot[slot_position]
        return predict_pmf(self.workspace, shared, [actions[known[n]] for n in names])
