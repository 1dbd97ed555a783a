"""Conditions compiled to closures, and the features (signals, behaviours) they read.

A compiled condition is a plain ``Callable[[Context], bool]``: no parser, no interpretation of
syntax on the request path. Segment references are inlined at compile time.

Semantics (the reference evaluator in evaluate.py implements the same rules independently):

- A missing signal makes every comparison on it false (``!=`` and ``not in`` too); ``not``
  of such a comparison is then true.
- ``==``/``in`` compare like values: booleans only equal booleans, numbers equal numbers
  (1 == 1.0), strings equal strings. ``!=``/``not in`` are their negation for a present value.
- ``<``, ``<=``, ``>``, ``>=`` and ranges hold only for numbers (not booleans, not NaN).
- ``has any``/``has all``/``"x" in list`` hold only for list values; a bare signal (a flag)
  holds only when its value is ``true``.
- ``event X within W`` holds when at least one X happened in the last W;
  ``count of X within W OP N`` compares that count.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterator, Mapping
from dataclasses import fields, is_dataclass
from typing import Any

from slotwise.dsl import ast
from slotwise.types import Context

Predicate = Callable[[Context], bool]
MISSING: Any = object()

ORDERING: Mapping[str, Callable[[Any, Any], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
}

# A feature is what one indexable conjunct reads: a signal, an event-within or an event-count.
SignalFeature = tuple[str, str]  # ("signal", name)
EventFeature = tuple[str, str, float]  # ("event" | "count", event, seconds)
Feature = SignalFeature | EventFeature


def is_number(value: object) -> bool:
    """A real number: int or float, not a bool, not NaN."""
    return isinstance(value, int | float) and not isinstance(value, bool) and value == value


def equal(left: object, right: object) -> bool:
    """Equality across the language's value kinds (booleans never equal numbers)."""
    if isinstance(left, bool) or isinstance(right, bool):
        return type(left) is bool and type(right) is bool and left == right
    if isinstance(left, int | float) and isinstance(right, int | float):
        return left == right
    return type(left) is type(right) and left == right


def compile_condition(cond: ast.Condition, segments: Mapping[str, ast.Segment]) -> Predicate:
    """A closure that evaluates ``cond`` for a request context."""
    if isinstance(cond, ast.And):
        parts = tuple(compile_condition(c, segments) for c in cond.operands)
        return lambda ctx: all(p(ctx) for p in parts)
    if isinstance(cond, ast.Or):
        parts = tuple(compile_condition(c, segments) for c in cond.operands)
        return lambda ctx: any(p(ctx) for p in parts)
    if isinstance(cond, ast.Negation):
        inner = compile_condition(cond.operand, segments)
        return lambda ctx: not inner(ctx)
    if isinstance(cond, ast.SegmentRef):
        return compile_condition(segments[cond.name].condition, segments)
    if isinstance(cond, ast.EventWithin):
        event, seconds = cond.event, cond.within.seconds
        return lambda ctx: _event_count(ctx, event, seconds) > 0
    if isinstance(cond, ast.EventCount):
        event, seconds = cond.event, cond.within.seconds
        check, count = ORDERING[cond.op], cond.count
        return lambda ctx: bool(check(_event_count(ctx, event, seconds), count))
    return _compile_signal_atom(cond)


def _event_count(ctx: Context, event: str, seconds: float) -> Any:
    # Any, not int: the matcher's bucketer probes between integer counts with a float
    # (compiled, the History protocol's `-> int` would reject it at run time)
    history: Any = ctx.history
    return history.count(event, ctx.now - seconds)


def _compile_signal_atom(cond: ast.Condition) -> Predicate:
    if isinstance(cond, ast.Compare):
        return _compile_compare(cond)
    if isinstance(cond, ast.Member):
        return _compile_member(cond)
    if isinstance(cond, ast.InRange):
        name, span, negated = cond.signal, cond.range, cond.negated

        def in_range(ctx: Context) -> bool:
            value = ctx.signals.get(name, MISSING)
            if value is MISSING:
                return False
            inside = is_number(value) and span.contains(value)
            return not inside if negated else inside

        return in_range
    if isinstance(cond, ast.Has):
        name, wanted = cond.signal, cond.values
        every = cond.quantifier == "all"

        def has(ctx: Context) -> bool:
            value = ctx.signals.get(name)
            if not isinstance(value, tuple):
                return False
            if every:
                return all(x in value for x in wanted)
            return any(x in value for x in wanted)

        return has
    if isinstance(cond, ast.Contains):
        name, element = cond.signal, cond.value

        def contains(ctx: Context) -> bool:
            value = ctx.signals.get(name)
            return isinstance(value, tuple) and element in value

        return contains
    if isinstance(cond, ast.Flag):
        name = cond.signal
        return lambda ctx: ctx.signals.get(name) is True
    raise TypeError(f"not a condition: {cond!r}")  # pragma: no cover - the grammar has no more


def _compile_compare(cond: ast.Compare) -> Predicate:
    name, literal = cond.signal, cond.value
    if cond.op in ("==", "!="):
        want = cond.op == "=="
        if type(literal) is str:

            def string_equality(ctx: Context) -> bool:
                value = ctx.signals.get(name, MISSING)
                if value is MISSING:
                    return False
                return (type(value) is str and value == literal) is want

            return string_equality

        def equality(ctx: Context) -> bool:
            value = ctx.signals.get(name, MISSING)
            if value is MISSING:
                return False
            return equal(value, literal) is want

        return equality
    check = ORDERING[cond.op]
    if not is_number(literal):
        return lambda ctx: False

    def ordering(ctx: Context) -> bool:
        value = ctx.signals.get(name, MISSING)
        return is_number(value) and bool(check(value, literal))

    return ordering


def _compile_member(cond: ast.Member) -> Predicate:
    name, values, negated = cond.signal, cond.values, cond.negated
    if all(type(v) is str for v in values):
        strings = frozenset(values)

        def string_member(ctx: Context) -> bool:
            value = ctx.signals.get(name, MISSING)
            if value is MISSING:
                return False
            return (type(value) is str and value in strings) is not negated

        return string_member

    def member(ctx: Context) -> bool:
        value = ctx.signals.get(name, MISSING)
        if value is MISSING:
            return False
        return any(equal(value, v) for v in values) is not negated

    return member


# ---------------------------------------------------------------- structure helpers


def conjuncts(cond: ast.Condition, segments: Mapping[str, ast.Segment]) -> Iterator[ast.Condition]:
    """The top-level AND parts of a condition, with segment references opened up."""
    if isinstance(cond, ast.And):
        for operand in cond.operands:
            yield from conjuncts(operand, segments)
    elif isinstance(cond, ast.SegmentRef):
        yield from conjuncts(segments[cond.name].condition, segments)
    else:
        yield cond


def atoms(cond: ast.Condition, segments: Mapping[str, ast.Segment]) -> Iterator[ast.Condition]:
    """Every comparison and behaviour predicate inside a condition (segments opened up)."""
    if isinstance(cond, ast.And | ast.Or):
        for operand in cond.operands:
            yield from atoms(operand, segments)
    elif isinstance(cond, ast.Negation):
        yield from atoms(cond.operand, segments)
    elif isinstance(cond, ast.SegmentRef):
        yield from atoms(segments[cond.name].condition, segments)
    else:
        yield cond


def feature_of(atom: ast.Condition) -> Feature:
    if isinstance(atom, ast.EventWithin):
        return ("event", atom.event, atom.within.seconds)
    if isinstance(atom, ast.EventCount):
        return ("count", atom.event, atom.within.seconds)
    signal = getattr(atom, "signal", None)
    assert isinstance(signal, str), atom
    return ("signal", signal)


def structure(node: object) -> object:
    """A node's content without source positions: equal for equal conditions anywhere."""
    if isinstance(node, ast.Span):
        return None
    if is_dataclass(node) and not isinstance(node, type):
        return (type(node).__name__,) + tuple(
            structure(getattr(node, f.name)) for f in fields(node) if f.name != "span"
        )
    if isinstance(node, tuple):
        return tuple(structure(item) for item in node)
    if isinstance(node, bool | int | float):
        return (type(node) is bool, node)
    return node
