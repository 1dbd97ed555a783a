"""Policy tests (``test "..." { given ...; expect ... }``) run against the compiled policy set.

Each test builds one request context from its ``given`` lines (signals, and events that
happened some time ``ago``) at a fixed time, then checks every ``expect`` against the compiled
objects the proxy would serve. Variant expectations evaluate the named campaign's rules
whether or not its ``applies when`` holds (``expect campaign NAME`` tests that part).
"""

from __future__ import annotations

import re
from bisect import bisect_left, insort
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from slotwise.dsl import ast
from slotwise.dsl.compile import compile_arm
from slotwise.dsl.compiled import CompiledPolicySet, PolicyTest
from slotwise.dsl.fmt import arm_text
from slotwise.types import Context, SignalValue

TEST_NOW = 1_767_225_600.0  # 2026-01-01T00:00:00Z: tests must not depend on the wall clock


class ListHistory:
    """An event history from (event, time) pairs: immutable once built."""

    def __init__(self, events: Iterable[tuple[str, float]] = ()) -> None:
        self._times: dict[str, list[float]] = {}
        for event, at in events:
            insort(self._times.setdefault(event, []), at)

    def count(self, event: str, since: float) -> int:
        times = self._times.get(event, [])
        return len(times) - bisect_left(times, since)

    def last(self, event: str) -> float | None:
        times = self._times.get(event)
        return times[-1] if times else None


@dataclass
class TestResult:
    """The outcome of one policy test; ``failures`` says what differed."""

    name: str
    path: str
    line: int
    failures: list[str] = field(default_factory=list)
    checked: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.failures


def context_for(test: ast.Test, now: float = TEST_NOW) -> Context:
    signals: dict[str, SignalValue] = {}
    events: list[tuple[str, float]] = []
    for statement in test.statements:
        if isinstance(statement, ast.Given):
            for item in statement.items:
                if isinstance(item, ast.GivenEvent):
                    events.append((item.event, now - item.ago.seconds))
                elif isinstance(item.value, tuple):
                    signals[item.signal] = tuple(str(v) for v in item.value)
                else:
                    signals[item.signal] = item.value
    return Context(signals, now, ListHistory(events))


def run_tests(policy: CompiledPolicySet, pattern: str | None = None) -> list[TestResult]:
    """Run the policy's tests whose name matches ``pattern`` (a regular expression)."""
    wanted = re.compile(pattern) if pattern else None
    results = []
    for entry in policy.tests:
        if wanted is not None and not wanted.search(entry.test.name):
            continue
        results.append(run_test(policy, entry))
    return results


def run_test(policy: CompiledPolicySet, entry: PolicyTest) -> TestResult:
    test = entry.test
    result = TestResult(test.name, entry.path, test.span.line)
    ctx = context_for(test)
    for statement in test.statements:
        if isinstance(statement, ast.Given):
            continue
        description = _describe(statement)
        problem = _check(policy, ctx, statement)
        if problem is None:
            result.checked.append(description)
        else:
            result.failures.append(f"line {statement.span.line}: {description}: {problem}")
    return result


def _check(policy: CompiledPolicySet, ctx: Context, statement: ast.Expectation) -> str | None:
    if isinstance(statement, ast.ExpectVariant | ast.ExpectVariants):
        campaign = policy.campaign(statement.campaign)
        eligibility = campaign.eligible(ctx)
        choices = eligibility[statement.slot].choices
        rules = ", ".join(f'"{r}"' for r in eligibility.matched_rules) or "none"
        got = f"got {_names(choices)} (matched rules: {rules})"
        if isinstance(statement, ast.ExpectVariant):
            if statement.op == "==":
                return None if choices == (statement.variant,) else got
            return None if statement.variant not in choices else got
        if statement.negated:
            return None if not set(choices) & set(statement.variants) else got
        ok = bool(choices) and set(choices) <= set(statement.variants)
        return None if ok else got
    if isinstance(statement, ast.ExpectCampaign | ast.ExpectNoCampaign):
        selected = policy.select(ctx)
        name = selected.name if selected is not None else None
        want = statement.name if isinstance(statement, ast.ExpectCampaign) else None
        return None if name == want else f"got {name or 'no campaign'}"
    if isinstance(statement, ast.ExpectOffer):
        arms = policy.offer_set(statement.offers).eligible(ctx)
        present = compile_arm(statement.arm) in arms
        if present == (statement.verdict == "allows"):
            return None
        return "got arms " + (", ".join(str(a) for a in arms) or "none")
    trigger = policy.trigger(statement.trigger)
    due = trigger.due(ctx)
    if statement.verdict == "waits":
        return None if not due else "the trigger fires"
    if not due:
        return "the trigger does not fire"
    if statement.arm is None:
        return None
    offer = trigger.offer_for(ctx)
    if offer == compile_arm(statement.arm):
        return None
    return f"it offers {offer if offer is not None else 'nothing'}"


def _names(choices: Sequence[str]) -> str:
    return "[" + ", ".join(choices) + "]" if choices else "no variant"


def _describe(statement: ast.Expectation) -> str:
    if isinstance(statement, ast.ExpectVariant):
        return f"{statement.campaign}.{statement.slot} {statement.op} {statement.variant}"
    if isinstance(statement, ast.ExpectVariants):
        keyword = "not in" if statement.negated else "in"
        return f"{statement.campaign}.{statement.slot} {keyword} [{', '.join(statement.variants)}]"
    if isinstance(statement, ast.ExpectCampaign):
        return f"campaign {statement.name}"
    if isinstance(statement, ast.ExpectNoCampaign):
        return "no campaign"
    if isinstance(statement, ast.ExpectOffer):
        return f"offer {statement.offers} {statement.verdict} {arm_text(statement.arm)}"
    text = f"trigger {statement.trigger} {statement.verdict}"
    return text + (f" {arm_text(statement.arm)}" if statement.arm is not None else "")
