"""The reference evaluator: the language's semantics, straight from the syntax tree, with a trace.

It is deliberately simple and slow (every rule, every time) and shares no matching code with
the compiled matcher, so that running both on the conformance cases checks one against the
other. It also powers ``slotwise explain``: with a ``Trace`` it records typed events (enter a
campaign or rule, evaluate a comparison with the value it saw, match, fail, note); without one
it records nothing and costs nothing extra.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from slotwise.dsl import ast
from slotwise.dsl.compiled import SlotEligibility
from slotwise.dsl.fmt import condition_text
from slotwise.types import Context


@dataclass(frozen=True, slots=True)
class TraceEvent:
    """One step of an evaluation: kind is enter, eval, match, fail or note."""

    kind: str
    subject: str
    detail: str
    span: ast.Span
    depth: int
    result: bool | None = None

    def to_json(self) -> dict[str, object]:
        return {
            "kind": self.kind,
            "subject": self.subject,
            "detail": self.detail,
            "line": self.span.line,
            "column": self.span.column,
            "depth": self.depth,
            "result": self.result,
        }


@dataclass
class Trace:
    events: list[TraceEvent] = field(default_factory=list)

    def add(
        self,
        kind: str,
        subject: str,
        detail: str,
        span: ast.Span,
        depth: int,
        result: bool | None = None,
    ) -> None:
        self.events.append(TraceEvent(kind, subject, detail, span, depth, result))


@dataclass(frozen=True, slots=True)
class CampaignResult:
    """What a campaign's rules decide for one request, by the reference semantics."""

    name: str
    applies: bool
    slots: Mapping[str, SlotEligibility]
    matched_rules: tuple[str, ...]


_MISSING = object()


def _kind(value: object) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, tuple):
        return "list"
    return "other"


def _same(left: object, right: object) -> bool:
    return _kind(left) == _kind(right) and left == right


def _real(value: object) -> bool:
    return _kind(value) == "number" and not math.isnan(value)  # type: ignore[arg-type]


def _ordered(left: float, op: str, right: float) -> bool:
    return {
        "<": left < right,
        "<=": left <= right,
        ">": left > right,
        ">=": left >= right,
        "==": left == right,
        "!=": left != right,
    }[op]


def _shown(value: object) -> str:
    if value is _MISSING:
        return "missing"
    if isinstance(value, tuple):
        return "[" + ", ".join(ast.literal_text(v) for v in value) + "]"
    if isinstance(value, str | int | float):
        return ast.literal_text(value)
    return repr(value)


def holds(
    cond: ast.Condition,
    ctx: Context,
    segments: Mapping[str, ast.Segment],
    trace: Trace | None = None,
    depth: int = 0,
) -> bool:
    """Does ``cond`` hold for ``ctx``? Records eval events into ``trace`` when given."""
    if isinstance(cond, ast.And):
        return all(holds(c, ctx, segments, trace, depth) for c in cond.operands)
    if isinstance(cond, ast.Or):
        return any(holds(c, ctx, segments, trace, depth) for c in cond.operands)
    if isinstance(cond, ast.Negation):
        result = not holds(cond.operand, ctx, segments, trace, depth + 1)
        if trace is not None:
            trace.add("eval", condition_text(cond), "", cond.span, depth, result)
        return result
    if isinstance(cond, ast.SegmentRef):
        if trace is not None:
            trace.add("enter", f"segment {cond.name}", "", cond.span, depth)
        result = holds(segments[cond.name].condition, ctx, segments, trace, depth + 1)
        if trace is not None:
            trace.add("eval", f"segment {cond.name}", "", cond.span, depth, result)
        return result
    result, seen = _atom(cond, ctx)
    if trace is not None:
        trace.add("eval", condition_text(cond), seen, cond.span, depth, result)
    return result


def _atom(cond: ast.Condition, ctx: Context) -> tuple[bool, str]:
    if isinstance(cond, ast.EventWithin | ast.EventCount):
        count = ctx.history.count(cond.event, ctx.now - cond.within.seconds)
        seen = f"{count} {cond.event} event(s) in the last {cond.within}"
        if isinstance(cond, ast.EventWithin):
            return count >= 1, seen
        return _ordered(count, cond.op, cond.count), seen
    name = getattr(cond, "signal", "")
    value = ctx.signals.get(name, _MISSING)
    seen = f"{name} = {_shown(value)}"
    if value is _MISSING:
        return False, seen
    if isinstance(cond, ast.Compare):
        if cond.op == "==":
            return _same(value, cond.value), seen
        if cond.op == "!=":
            return not _same(value, cond.value), seen
        if not (_real(value) and _real(cond.value)):
            return False, seen
        return _ordered(value, cond.op, cond.value), seen  # type: ignore[arg-type]
    if isinstance(cond, ast.Member):
        found = any(_same(value, v) for v in cond.values)
        return found != cond.negated, seen
    if isinstance(cond, ast.InRange):
        span = cond.range
        inside = _real(value)
        if inside and span.low is not None:
            inside = value >= span.low  # type: ignore[operator]
        if inside and span.high is not None:
            inside = value <= span.high if span.high_inclusive else value < span.high  # type: ignore[operator]
        return inside != cond.negated, seen
    if isinstance(cond, ast.Has):
        if not isinstance(value, tuple):
            return False, seen
        test = any if cond.quantifier == "any" else all
        return test(v in value for v in cond.values), seen
    if isinstance(cond, ast.Contains):
        return isinstance(value, tuple) and cond.value in value, seen
    if isinstance(cond, ast.Flag):
        return value is True, seen
    raise TypeError(f"not a condition: {cond!r}")  # pragma: no cover


def evaluate_campaign(
    campaign: ast.Campaign,
    ctx: Context,
    segments: Mapping[str, ast.Segment],
    trace: Trace | None = None,
) -> CampaignResult:
    """Every rule of the campaign, in order, and the eligibility that follows."""
    if trace is not None:
        trace.add("enter", f"campaign {campaign.name}", "", campaign.span, 0)
    applies_member = campaign.first(ast.Applies)
    applies = True
    if applies_member is not None:
        applies = holds(applies_member.condition, ctx, segments, trace, 1)
        if trace is not None:
            trace.add(
                "match" if applies else "fail",
                "applies when",
                condition_text(applies_member.condition),
                applies_member.span,
                1,
                applies,
            )
    matched: list[ast.Rule] = []
    for rule in campaign.rules:
        if trace is not None:
            trace.add("enter", f'rule "{rule.name}"', condition_text(rule.condition), rule.span, 1)
        result = holds(rule.condition, ctx, segments, trace, 2)
        if trace is not None:
            trace.add(
                "match" if result else "fail", f'rule "{rule.name}"', "", rule.span, 1, result
            )
        if result:
            matched.append(rule)
    slots = {  # a slot from an offer set has no variants: its offer set decides it
        slot.name: _slot_outcome(slot, matched) for slot in campaign.slots if slot.offers is None
    }
    if trace is not None:
        for name, outcome in slots.items():
            trace.add("note", f"slot {name}", _outcome_text(outcome), campaign.span, 1)
    return CampaignResult(campaign.name, applies, slots, tuple(r.name for r in matched))


def _slot_outcome(slot: ast.Slot, matched: Sequence[ast.Rule]) -> SlotEligibility:
    for rule in matched:
        for action in rule.actions:
            if isinstance(action, ast.Pin) and action.slot == slot.name:
                return SlotEligibility((action.variant,), (), action.variant)
    excluded: set[str] = set()
    preferred: set[str] = set()
    factors: dict[str, float] = {}
    for rule in matched:
        boosts_of_rule: set[tuple[str, float]] = set()
        for action in rule.actions:
            if action.slot != slot.name:
                continue
            if isinstance(action, ast.Exclude):
                excluded.update(action.variants)
            elif isinstance(action, ast.Prefer):
                preferred.update(action.variants)
            elif isinstance(action, ast.Boost):
                boosts_of_rule.add((action.variant, action.factor))
        for variant, factor in boosts_of_rule:
            factors[variant] = factors.get(variant, 1.0) * factor
    allowed = tuple(v.name for v in slot.variants if v.name not in excluded)
    return SlotEligibility(
        allowed,
        tuple(v for v in allowed if v in preferred),
        None,
        {v: f for v, f in factors.items() if v in allowed},
    )


def _outcome_text(outcome: SlotEligibility) -> str:
    if outcome.pinned is not None:
        return f"pinned to {outcome.pinned}"
    text = "allowed: " + (", ".join(outcome.variants) or "none (the slot is left as is)")
    if outcome.preferred:
        text += "; preferred: " + ", ".join(outcome.preferred)
    if outcome.boosts:
        text += "; boosts: " + ", ".join(f"{v} x{f:g}" for v, f in outcome.boosts.items())
    return text


def select_campaign(
    campaigns: Sequence[ast.Campaign],
    ctx: Context,
    segments: Mapping[str, ast.Segment],
) -> str | None:
    """The first campaign whose `applies when` holds (or that has none)."""
    for campaign in campaigns:
        applies = campaign.first(ast.Applies)
        if applies is None or holds(applies.condition, ctx, segments):
            return campaign.name
    return None
