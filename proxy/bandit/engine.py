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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from vowpalwabbit import Workspace

from slotwise.dsl.compiled import Slot
from slotwise.proxy.bandit.arm_means import ArmMeans, cell_of
from slotwise.proxy.bandit.campaign import BanditCampaign
from slotwise.proxy.bandit.features import FeatureMap, uses_personal_features
from slotwise.proxy.bandit.holdout import in_holdout
from slotwise.proxy.bandit.workspace import PreparedActions, predict_pmf, shared_example
from slotwise.proxy.choice import Choice, SlotChoice
from slotwise.types import Signals, SignalValue


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


# Distributions remembered per model by default (see ``CampaignModel``; the setting
# ``bandit.remembered_contexts``): cleared, not evicted one by one, when full (as FeatureMap
# does). The default was chosen by measurement (docs/benchmarks.md, "Remembered distributions").
REMEMBERED = 8192

# (personal, the usable signals' names, their values): two flat tuples cost less to build,
# hash and compare than one tuple of (name, value) pairs
_Key = tuple[bool, tuple[str, ...], tuple[SignalValue, ...]]
_SETS = 4096  # choice sets known per model (``CampaignModel.choice_set``)


@dataclass(frozen=True, slots=True)
class CampaignModel:
    """A campaign bound to one model version: workspace, prepared actions, variant indexes.

    A serving workspace never learns (the learner has its own, and a new version is a new
    ``CampaignModel``), so VW's distribution is a pure function of the features and the choice
    set: the model remembers it per (usable signals, slot, candidates), and a user's next page
    view in the same context, or a user in the same context, skips VW. The memo is bounded and
    needs no lock (a dict read or write is atomic under the GIL; racing writers store equal
    values), and a reload drops it with the model.
    """

    campaign: BanditCampaign
    version: str
    workspace: Workspace
    actions: PreparedActions
    index: tuple[Mapping[str, int], ...]
    examples: int = 0  # what the model learned from (its metadata): how far learning has come
    # an offer set's mean reward per (context cell, arm) (slotwise.proxy.bandit.arm_means):
    # when set, ``distribution`` serves from it instead of VW
    means: ArmMeans | None = None
    remember: int = REMEMBERED  # contexts whose distributions are remembered (0: none)
    _remembered: dict[_Key, dict[tuple[int, tuple[str, ...]], list[float]]] = field(
        default_factory=dict, compare=False, repr=False
    )
    # (slot position, the rules' choice set) -> the variants of it this model knows, and their
    # prepared action examples: choice sets repeat across requests (the rules' outcomes are
    # few), so each is read once; bounded and lock-free as the memo above
    _sets: dict[tuple[int, tuple[str, ...]], tuple[tuple[str, ...], list[Any]]] = field(
        default_factory=dict, compare=False, repr=False
    )

    @classmethod
    def build(
        cls,
        campaign: BanditCampaign,
        workspace: Workspace,
        version: str,
        examples: int = 0,
        means: ArmMeans | None = None,
        remember: int = REMEMBERED,
    ) -> CampaignModel:
        index = tuple({v.name: i for i, v in enumerate(slot.variants)} for slot in campaign.slots)
        actions = PreparedActions.build(workspace, campaign)
        return cls(campaign, version, workspace, actions, index, examples, means, remember)

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
        request = _Request(self, features, used, personal)
        choices: list[SlotChoice] = []
        for position, slot in enumerate(campaign.slots):
            names, pmf = request.slot_pmf(position, rules.get(slot.name))
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
        request = _Request(
            self, features, features.usable_signals(signals, personal=personal), personal
        )
        greedy: dict[str, str | None] = {}
        for position, slot in enumerate(self.campaign.slots):
            names, pmf = request.slot_pmf(position, rules.get(slot.name))
            greedy[slot.name] = names[max(range(len(pmf)), key=pmf.__getitem__)] if names else None
        return greedy

    def distribution(
        self,
        signals: Signals,
        slot_position: int,
        names: Sequence[str],
        personal: bool,
        features: FeatureMap,
        costs: Callable[[], Sequence[float]] | None = None,
        prefer_cheaper: float = 0.0,
    ) -> list[float]:
        """The distribution over ``names`` for one slot (offers, offline evaluation, explain):
        the means' epsilon-greedy one where the model has them (with ``costs``, the cheapest
        arm within ``prefer_cheaper`` standard errors of the best: ArmMeans.distribution),
        else VW's."""
        means = self.means
        if means is not None:
            return means.distribution(
                cell_of(signals, features),
                names,
                self.campaign.explore.parameter,
                costs,
                prefer_cheaper,
            )
        used = features.usable_signals(signals, personal=personal)
        request = _Request(self, features, used, personal)
        return list(request.vw_pmf(slot_position, tuple(names)))

    def choice_set(
        self, position: int, candidates: tuple[str, ...]
    ) -> tuple[tuple[str, ...], list[Any]]:
        """The candidates this model knows for one slot, in order, and their action examples."""
        found = self._sets.get((position, candidates))
        if found is None:
            known = self.index[position]
            names = tuple([n for n in candidates if n in known])
            slot_actions = self.actions.per_slot[position]
            found = (names, [slot_actions[known[n]] for n in names])
            if len(self._sets) >= _SETS:
                self._sets.clear()
            self._sets[(position, candidates)] = found
        return found

    def remembered(self, key: _Key) -> dict[tuple[int, tuple[str, ...]], list[float]]:
        """The distributions known for one context (a new, empty entry if none)."""
        memo = self._remembered
        entry = memo.get(key)
        if entry is None:
            entry = {}
            if self.remember > 0:
                if len(memo) >= self.remember:
                    memo.clear()
                memo[key] = entry
        return entry


class _Request:
    """One request's view of a model: its usable signals, its shared example (its features
    and example built on the first slot that needs VW, then reused by the others; none when
    no slot does) and its remembered distributions."""

    __slots__ = ("_example", "_features", "_known", "_model", "_personal", "_used")

    def __init__(
        self,
        model: CampaignModel,
        features: FeatureMap,
        used: dict[str, SignalValue],
        personal: bool,
    ) -> None:
        self._model = model
        self._features = features
        self._used = used
        self._personal = personal
        self._example: Any = None
        self._known = model.remembered((personal, tuple(used), tuple(used.values())))

    def slot_pmf(
        self, position: int, slot_rules: SlotRules | None
    ) -> tuple[tuple[str, ...], list[float]]:
        """One slot's eligible variants and the distribution to draw from (rules' boosts
        applied); a single candidate needs no model."""
        model = self._model
        names, actions = model.choice_set(
            position, candidates_for(model.campaign.slots[position], slot_rules)
        )
        if len(names) < 2:
            return names, [1.0] * len(names)
        pmf = self._pmf(position, names, actions)
        if slot_rules is not None and slot_rules.boosts:
            pmf = _boosted(pmf, names, slot_rules.boosts)
        return names, pmf

    def vw_pmf(self, position: int, names: tuple[str, ...]) -> list[float]:
        """VW's distribution over ``names`` (remembered, or one prediction)."""
        known, actions = self._model.choice_set(position, names)
        if known != names:  # as a prediction over variants the slot does not have: refused
            raise KeyError(next(n for n in names if n not in known))
        return self._pmf(position, names, actions)

    def _pmf(self, position: int, names: tuple[str, ...], actions: list[Any]) -> list[float]:
        pmf = self._known.get((position, names))
        if pmf is not None:
            return pmf
        workspace = self._model.workspace
        if self._example is None:
            # the usable signals' features: what ``FeatureMap.split`` gives for the request
            shared = self._features.shared(self._used, personal=self._personal)
            self._example = shared_example(workspace, shared)
        pmf = predict_pmf(workspace, self._example, actions)
        self._known[(position, names)] = pmf
        return pmf
