"""Offline evaluation: what would a candidate policy have earned on a logged decision log?

Every logged decision carries the probability of what was served under the logging policy
(``DecisionRecord.propensity``: the holdout draw times each slot's probability). A candidate
gives its own probability of the same outcome; their ratio ``w`` reweighs the logged reward:

    IPS    mean(w * r)                           unbiased; variance grows with w
    SNIPS  sum(w * r) / sum(w)                   slightly biased, much steadier
    DR     mean(DM(x) + w * (r - r_hat(x, a)))   unbiased if propensities are right, and low
                                                 variance when the reward model is decent

The reward model ``r_hat`` is additive over slots (overall mean plus, per slot, the shrunk mean
deviation of each variant; the upstream response has its own mean), fitted on the same log.
It does not need to be right for DR to stay unbiased, only to be right for DR to be tight.
Intervals are 95% normal intervals (IPS, DR: the per-decision terms' standard error; SNIPS: the
delta method). Holdout assignment is per user, so decisions of one user are not independent:
intervals are somewhat optimistic when users have many decisions.

Candidates give, per logged decision, the probability of serving the upstream response and a
distribution over each slot's logged candidates: ``UniformCandidate`` (the rules alone,
uniform over what they leave), ``UpstreamCandidate`` (never personalise), ``FixedCandidate``
(always these variants), ``ModelCandidate`` (a saved model, as it would serve or greedy).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from slotwise.proxy.bandit.campaign import BanditCampaign, action_slot
from slotwise.proxy.bandit.engine import CampaignModel
from slotwise.proxy.bandit.features import FeatureMap
from slotwise.proxy.decision_log import DecisionRecord, SlotRecord, choice_sets, signals_of
from slotwise.proxy.learn.log import JoinedRecord

Z95 = 1.959963984540054
_SHRINK = 10.0  # pseudo-observations pulling a variant's mean towards the overall mean


class Candidate(Protocol):
    """A policy to evaluate, seen through the logged choice sets."""

    name: str

    def upstream_probability(self, record: DecisionRecord) -> float: ...

    def slot_distribution(
        self, record: DecisionRecord, position: int, slot: SlotRecord
    ) -> Mapping[str, float]: ...


@dataclass(frozen=True, slots=True)
class UniformCandidate:
    """Rules only: uniform over the variants the rules left, never the upstream."""

    name: str = "uniform"

    def upstream_probability(self, record: DecisionRecord) -> float:
        return 0.0

    def slot_distribution(
        self, record: DecisionRecord, position: int, slot: SlotRecord
    ) -> Mapping[str, float]:
        if not slot.candidates:
            return {}
        share = 1.0 / len(slot.candidates)
        return {name: share for name in slot.candidates}


@dataclass(frozen=True, slots=True)
class UpstreamCandidate:
    """Never personalise: always the upstream's own response."""

    name: str = "upstream"

    def upstream_probability(self, record: DecisionRecord) -> float:
        return 1.0

    def slot_distribution(
        self, record: DecisionRecord, position: int, slot: SlotRecord
    ) -> Mapping[str, float]:
        return {}


@dataclass(frozen=True, slots=True)
class FixedCandidate:
    """Always the given variant per slot, where the rules allow it (else uniform)."""

    choices: Mapping[str, str]
    name: str = "fixed"

    def upstream_probability(self, record: DecisionRecord) -> float:
        return 0.0

    def slot_distribution(
        self, record: DecisionRecord, position: int, slot: SlotRecord
    ) -> Mapping[str, float]:
        wanted = self.choices.get(slot.slot)
        if wanted is not None and wanted in slot.candidates:
            return {wanted: 1.0}
        return UniformCandidate().slot_distribution(record, position, slot)


class ModelCandidate:
    """A saved model, as it would serve (with exploration) or greedy (its best only)."""

    def __init__(
        self, model: CampaignModel, features: FeatureMap, greedy: bool = False, name: str = ""
    ) -> None:
        self.model = model
        self.features = features
        self.greedy = greedy
        self.name = name or f"model {model.version}{' greedy' if greedy else ''}"
        self._positions = {slot.name: i for i, slot in enumerate(model.campaign.slots)}

    def upstream_probability(self, record: DecisionRecord) -> float:
        return 0.0

    def slot_distribution(
        self, record: DecisionRecord, position: int, slot: SlotRecord
    ) -> Mapping[str, float]:
        at = self._positions.get(slot.slot)
        if at is None:
            return {}  # a slot the model's campaign does not have: it cannot choose there
        names = [n for n in slot.candidates if n in self.model.index[at]]
        if not names:
            return {}
        if len(names) == 1:
            return {names[0]: 1.0}
        pmf = self.model.distribution(signals_of(record), at, names, record.personal, self.features)
        if self.greedy:
            best = max(range(len(names)), key=lambda i: pmf[i])
            return {names[best]: 1.0}
        return dict(zip(names, pmf, strict=True))


def campaign_from_log(records: Iterable[JoinedRecord], name: str) -> BanditCampaign:
    """A campaign whose slots and variants are those the log mentions (no attributes)."""
    slots: dict[str, dict[str, None]] = {}
    for joined in records:
        for slot in choice_sets(joined.decision):
            known = slots.setdefault(slot.slot, {})
            for variant in (*slot.candidates, slot.variant):
                if variant is not None:
                    known.setdefault(variant, None)
    return BanditCampaign(
        name,
        tuple(action_slot(slot, variants) for slot, variants in slots.items() if variants),
    )


@dataclass(frozen=True, slots=True)
class Estimate:
    value: float
    low: float
    high: float

    @property
    def defined(self) -> bool:
        """False when the log cannot support the estimate (its values are then NaN)."""
        return all(math.isfinite(v) for v in (self.value, self.low, self.high))

    def as_dict(self) -> dict[str, float | None]:
        """JSON has no NaN: an undefined estimate is null."""
        if not self.defined:
            return {"value": None, "low": None, "high": None}
        return {"value": self.value, "low": self.low, "high": self.high}


@dataclass(frozen=True, slots=True)
class Evaluation:
    """The three estimates of one candidate on one log, with what they rest on."""

    candidate: str
    decisions: int
    ips: Estimate
    snips: Estimate
    dr: Estimate
    mean_weight: float
    max_weight: float
    support: float  # share of decisions where the candidate could have done what was logged

    def as_dict(self) -> dict[str, object]:
        return {
            "candidate": self.candidate,
            "decisions": self.decisions,
            "ips": self.ips.as_dict(),
            "snips": self.snips.as_dict(),
            "dr": self.dr.as_dict(),
            "mean_weight": self.mean_weight,
            "max_weight": self.max_weight,
            "support": self.support,
        }


class RewardModel:
    """Additive reward model for DR: overall mean + per-slot variant deviations (shrunk)."""

    def __init__(self, records: Sequence[JoinedRecord]) -> None:
        personalised = [j for j in records if not j.decision.holdout]
        control = [j.reward for j in records if j.decision.holdout]
        rewards = [j.reward for j in personalised]
        self.mean = sum(rewards) / len(rewards) if rewards else 0.0
        self.upstream = sum(control) / len(control) if control else self.mean
        totals: dict[tuple[str, str], list[float]] = {}
        for joined in personalised:
            for slot in joined.decision.slots:
                if slot.variant is not None:
                    entry = totals.setdefault((slot.slot, slot.variant), [0.0, 0.0])
                    entry[0] += joined.reward - self.mean
                    entry[1] += 1.0
        self.deviation = {key: total / (count + _SHRINK) for key, (total, count) in totals.items()}

    def logged(self, record: DecisionRecord) -> float:
        if record.holdout:
            return self.upstream
        return self.mean + sum(
            self.deviation.get((s.slot, s.variant), 0.0) for s in record.slots if s.variant
        )

    def expected(
        self, upstream: float, distributions: Sequence[tuple[str, Mapping[str, float]]]
    ) -> float:
        personalised = self.mean + sum(
            p * self.deviation.get((slot, variant), 0.0)
            for slot, distribution in distributions
            for variant, p in distribution.items()
        )
        return upstream * self.upstream + (1.0 - upstream) * personalised


def _interval(terms: Sequence[float]) -> Estimate:
    n = len(terms)
    mean = sum(terms) / n
    variance = sum((t - mean) ** 2 for t in terms) / (n - 1) if n > 1 else 0.0
    half = Z95 * math.sqrt(variance / n)
    return Estimate(mean, mean - half, mean + half)


def evaluate(candidate: Candidate, records: Sequence[JoinedRecord]) -> Evaluation:
    """IPS, SNIPS and DR estimates of the candidate's mean reward per decision."""
    if not records:
        raise ValueError("no decisions to evaluate")
    model = RewardModel(records)
    weights: list[float] = []
    ips_terms: list[float] = []
    dr_terms: list[float] = []
    unknown_context: list[int] = []  # holdout records logged without their choice sets
    personalised_dm: list[float] = []
    for joined in records:
        record = joined.decision
        upstream = candidate.upstream_probability(record)
        distributions = [
            (slot.slot, candidate.slot_distribution(record, position, slot))
            for position, slot in enumerate(choice_sets(record))
        ]
        if record.holdout:
            probability = upstream
        else:
            probability = 1.0 - upstream
            for slot, (_, distribution) in zip(record.slots, distributions, strict=True):
                if slot.variant is not None and len(slot.candidates) > 1:
                    probability *= distribution.get(slot.variant, 0.0)
        weight = probability / record.propensity if record.propensity > 0 else 0.0
        weights.append(weight)
        ips_terms.append(weight * joined.reward)
        if record.holdout and not distributions:
            unknown_context.append(len(dr_terms))
            baseline = upstream * model.upstream
        else:
            baseline = model.expected(upstream, distributions)
            personalised_dm.append(model.expected(0.0, distributions))
        dr_terms.append(baseline + weight * (joined.reward - model.logged(record)))
    if unknown_context and personalised_dm:
        # same population, unknown choice sets: the candidate's average personalised value
        average = sum(personalised_dm) / len(personalised_dm)
        for index in unknown_context:
            upstream = candidate.upstream_probability(records[index].decision)
            dr_terms[index] += (1.0 - upstream) * average
    n = len(records)
    total_weight = sum(weights)
    snips_value = sum(ips_terms) / total_weight if total_weight > 0 else 0.0
    if total_weight > 0:
        mean_weight = total_weight / n
        residuals = [w * (j.reward - snips_value) for w, j in zip(weights, records, strict=True)]
        spread = math.sqrt(sum(r * r for r in residuals) / max(n - 1, 1) / n) / mean_weight
        snips = Estimate(snips_value, snips_value - Z95 * spread, snips_value + Z95 * spread)
    else:
        snips = Estimate(math.nan, math.nan, math.nan)  # no decision the candidate supports
    return Evaluation(
        candidate=candidate.name,
        decisions=n,
        ips=_interval(ips_terms),
        snips=snips,
        dr=_interval(dr_terms),
        mean_weight=total_weight / n,
        max_weight=max(weights),
        support=sum(1 for w in weights if w > 0) / n,
    )


def logged_value(records: Sequence[JoinedRecord]) -> Estimate:
    """The logging policy's own mean reward per decision (on-policy, for comparison)."""
    return _interval([j.reward for j in records])
