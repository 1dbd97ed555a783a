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
delta method, or Wilson's when the estimate is a plain proportion), and on request bootstrap
percentile intervals beside them (slotwise.lab.intervals). Holdout assignment is per user, so
decisions of one user are not independent: intervals are somewhat optimistic when users have
many decisions. Beside the estimates: the effective sample size of the weights, and per slot
the candidate's choice there against the logged one (``SlotEvaluation``).

Candidates give, per logged decision, the probability of serving the upstream response and a
distribution over each slot's logged candidates: ``UniformCandidate`` (the rules alone,
uniform over what they leave), ``UpstreamCandidate`` (never personalise), ``FixedCandidate``
(always these variants), ``ModelCandidate`` (a saved model, as it would serve or greedy),
``ProbabilitiesCandidate`` (slotwise.lab.target_policy: probabilities from a file).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from slotwise.lab.intervals import (
    UNDEFINED,
    Z95,
    Bootstrap,
    Estimate,
    Interval,
    effective_sample_size,
    is_binary,
    normal_interval,
    rate_or_mean,
    wilson_interval,
)
from slotwise.proxy.bandit.campaign import BanditCampaign, action_slot
from slotwise.proxy.bandit.engine import CampaignModel
from slotwise.proxy.bandit.features import FeatureMap
from slotwise.proxy.decision_log import DecisionRecord, SlotRecord, choice_sets, signals_of
from slotwise.proxy.learn.log import JoinedRecord

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
class SlotEvaluation:
    """One slot: the candidate's choice there against the logged one, the other slots as
    logged, over the decisions that served the slot with a real choice (two candidates or
    more). The weight is the slot's own: the candidate's probability of the logged variant
    over the logging probability."""

    slot: str
    decisions: int
    ips: Estimate
    snips: Estimate
    ess: float
    support: float
    max_weight: float
    logged: Estimate  # the logging policy's own mean reward on those decisions

    def as_dict(self) -> dict[str, object]:
        return {
            "slot": self.slot,
            "decisions": self.decisions,
            "ips": self.ips.as_dict(),
            "snips": self.snips.as_dict(),
            "intervals": {"ips": self.ips.method, "snips": self.snips.method},
            "ess": self.ess,
            "support": self.support,
            "max_weight": self.max_weight,
            "logged": {**self.logged.as_dict(), "interval": self.logged.method},
        }


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
    ess: float = 0.0  # Kish's effective sample size of the weights
    slots: tuple[SlotEvaluation, ...] = ()
    bootstrap: Mapping[str, Interval] | None = None  # ips, snips, dr percentile intervals

    def as_dict(self) -> dict[str, object]:
        return {
            "candidate": self.candidate,
            "decisions": self.decisions,
            "ips": self.ips.as_dict(),
            "snips": self.snips.as_dict(),
            "dr": self.dr.as_dict(),
            "intervals": {"ips": self.ips.method, "snips": self.snips.method, "dr": self.dr.method},
            "bootstrap": (
                {name: interval.as_dict() for name, interval in self.bootstrap.items()}
                if self.bootstrap is not None
                else None
            ),
            "mean_weight": self.mean_weight,
            "max_weight": self.max_weight,
            "support": self.support,
            "ess": self.ess,
            "slots": [slot.as_dict() for slot in self.slots],
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


def evaluate(
    candidate: Candidate, records: Sequence[JoinedRecord], bootstrap: Bootstrap | None = None
) -> Evaluation:
    """IPS, SNIPS and DR estimates of the candidate's mean reward per decision, per slot, with
    the effective sample size and, given ``bootstrap``, percentile intervals beside the normal
    ones."""
    if not records:
        raise ValueError("no decisions to evaluate")
    model = RewardModel(records)
    weights: list[float] = []
    ips_terms: list[float] = []
    dr_terms: list[float] = []
    unknown_context: list[int] = []  # holdout records logged without their choice sets
    personalised_dm: list[float] = []
    per_slot: dict[str, _SlotTerms] = {}
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
                    chance = distribution.get(slot.variant, 0.0)
                    probability *= chance
                    if upstream < 1.0:
                        terms = per_slot.setdefault(slot.slot, _SlotTerms())
                        terms.add(chance / slot.probability, joined.reward)
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
    rewards = [j.reward for j in records]
    return Evaluation(
        candidate=candidate.name,
        decisions=n,
        ips=normal_interval(ips_terms),
        snips=_snips(weights, rewards),
        dr=normal_interval(dr_terms),
        mean_weight=math.fsum(weights) / n,
        max_weight=max(weights),
        support=sum(1 for w in weights if w > 0) / n,
        ess=effective_sample_size(weights),
        slots=tuple(terms.result(name) for name, terms in sorted(per_slot.items())),
        bootstrap=(
            _bootstrap(bootstrap, weights, ips_terms, dr_terms) if bootstrap is not None else None
        ),
    )


@dataclass(slots=True)
class _SlotTerms:
    weights: list[float] = field(default_factory=list)
    rewards: list[float] = field(default_factory=list)

    def add(self, weight: float, reward: float) -> None:
        self.weights.append(weight)
        self.rewards.append(reward)

    def result(self, slot: str) -> SlotEvaluation:
        n = len(self.weights)
        return SlotEvaluation(
            slot=slot,
            decisions=n,
            ips=normal_interval([w * r for w, r in zip(self.weights, self.rewards, strict=True)]),
            snips=_snips(self.weights, self.rewards),
            ess=effective_sample_size(self.weights),
            support=sum(1 for w in self.weights if w > 0) / n,
            max_weight=max(self.weights),
            logged=rate_or_mean(self.rewards),
        )


def _snips(weights: Sequence[float], rewards: Sequence[float]) -> Estimate:
    """Self-normalised IPS with its delta-method interval; a plain proportion (0/1 rewards,
    equal weights wherever the candidate is supported) gets its Wilson interval instead."""
    total_weight = math.fsum(weights)
    if total_weight <= 0:
        return UNDEFINED  # no decision the candidate supports
    supported = [(w, r) for w, r in zip(weights, rewards, strict=True) if w > 0]
    first = supported[0][0]
    if all(math.isclose(w, first, rel_tol=1e-12) for w, _ in supported) and is_binary(
        [r for _, r in supported]
    ):
        return wilson_interval(sum(r for _, r in supported), len(supported))
    n = len(weights)
    value = math.fsum(w * r for w, r in zip(weights, rewards, strict=True)) / total_weight
    mean_weight = total_weight / n
    residuals = [w * (r - value) for w, r in zip(weights, rewards, strict=True)]
    spread = math.sqrt(math.fsum(e * e for e in residuals) / max(n - 1, 1) / n) / mean_weight
    return Estimate(value, value - Z95 * spread, value + Z95 * spread, "delta")


def _bootstrap(
    bootstrap: Bootstrap, weights: list[float], ips_terms: list[float], dr_terms: list[float]
) -> dict[str, Interval]:
    n = len(weights)
    ips, snips, dr = bootstrap.intervals(
        [ips_terms, weights, dr_terms],
        [
            lambda s: s[0] / n,
            lambda s: s[0] / s[1] if s[1] > 0 else math.nan,
            lambda s: s[2] / n,
        ],
    )
    return {"ips": ips, "snips": snips, "dr": dr}


def logged_value(records: Sequence[JoinedRecord]) -> Estimate:
    """The logging policy's own mean reward per decision (on-policy, for comparison): a Wilson
    interval when rewards are 0/1 (a rate), else a normal one."""
    return rate_or_mean([j.reward for j in records])


def logged_bootstrap(records: Sequence[JoinedRecord], bootstrap: Bootstrap) -> Interval:
    """The bootstrap interval of the logging policy's own mean reward."""
    n = len(records)
    return bootstrap.interval([[j.reward for j in records]], lambda s: s[0] / n)
