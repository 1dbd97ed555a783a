"""Per-campaign guardrail statistics and verdicts, fed with joined decisions.

The learner (one process per store) feeds every joined decision: its campaign, arm and goal
value (slotwise.proxy.learn.join). ``check`` runs the always-valid test of each campaign that
has its minimum sample (``min_decisions`` in both arms together, ``MIN_CONTROL`` in control)
and returns the campaigns it finds significantly harmed. Decisions that failed open or were
served generic by a guardrail are in neither arm; a campaign re-enabled by a person starts
afresh from decisions made after that moment (``restart``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from slotwise.proxy.guardrail.sequential import ALPHA, Moments, Sequence, confidence_sequence

#: On by default: a campaign is watched once both arms together have this many joined
#: decisions (the policy's ``guardrail min N`` overrides it) and control has MIN_CONTROL.
MIN_DECISIONS = 2000
MIN_CONTROL = 200


@dataclass(frozen=True, slots=True)
class Rule:
    """A campaign's guardrail: on or off, and its minimum sample."""

    enabled: bool = True
    min_decisions: int = MIN_DECISIONS


@dataclass(frozen=True, slots=True)
class Verdict:
    campaign: str
    sequence: Sequence
    personalised: int
    control: int
    goal: str = ""


@dataclass(slots=True)
class _Campaign:
    personalised: Moments = field(default_factory=Moments)
    control: Moments = field(default_factory=Moments)
    since: float = float("-inf")  # decisions before this moment are not counted


@dataclass(slots=True)
class Monitor:
    """One writer (the learner), not thread-safe."""

    rules: Mapping[str, Rule] = field(default_factory=dict)
    alpha: float = ALPHA
    min_control: int = MIN_CONTROL
    goals: Mapping[str, str] = field(default_factory=dict)
    campaigns: dict[str, _Campaign] = field(default_factory=dict)

    def rule(self, campaign: str) -> Rule:
        return self.rules.get(campaign, Rule())

    def observe(
        self, campaign: str, ts: float, holdout: bool, fail_open: str | None, value: float
    ) -> None:
        if fail_open is not None and not holdout:
            return  # not served personalised: in neither arm
        state = self.campaigns.get(campaign)
        if state is None:
            state = self.campaigns[campaign] = _Campaign()
        if ts < state.since:
            return
        (state.control if holdout else state.personalised).add(value)

    def saved(self, campaign: str) -> dict[str, float]:
        """The campaign's statistics as plain numbers (to store)."""
        state = self.campaigns[campaign]
        p, c = state.personalised, state.control
        return {
            "since": state.since if state.since != float("-inf") else -1.0,
            "p_n": p.n, "p_total": p.total, "p_squares": p.squares,
            "c_n": c.n, "c_total": c.total, "c_squares": c.squares,
        }  # fmt: skip

    def restore(self, campaign: str, saved: dict[str, float]) -> None:
        since = saved.get("since", -1.0)
        self.campaigns[campaign] = _Campaign(
            Moments(int(saved["p_n"]), saved["p_total"], saved["p_squares"]),
            Moments(int(saved["c_n"]), saved["c_total"], saved["c_squares"]),
            since if since >= 0 else float("-inf"),
        )

    def restart(self, campaign: str, since: float) -> None:
        """Forget a campaign's statistics; count only decisions from ``since`` on."""
        self.campaigns[campaign] = _Campaign(since=since)

    def sequence(self, campaign: str) -> Sequence | None:
        state = self.campaigns.get(campaign)
        if state is None:
            return None
        return confidence_sequence(state.personalised, state.control, self.alpha)

    def check(self, skip: frozenset[str] = frozenset()) -> list[Verdict]:
        """The campaigns (not in ``skip``: already reverted) significantly harmed now."""
        harmed = []
        for name, state in self.campaigns.items():
            rule = self.rule(name)
            if name in skip or not rule.enabled:
                continue
            p, c = state.personalised, state.control
            if p.n + c.n < rule.min_decisions or c.n < self.min_control:
                continue
            found = confidence_sequence(p, c, self.alpha)
            if found is not None and found.harm:
                harmed.append(Verdict(name, found, p.n, c.n, self.goals.get(name, "")))
        return harmed
