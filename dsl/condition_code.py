"""Conditions compiled to Python functions: one flat function per condition, not a tree of
closures.

The matcher answers almost every condition from its index; what it cannot (an OR of more
terms than it splits, a list condition past its lookups) is checked on the rules that survive
the index. ``compile_code`` turns such a condition into the source of one function over the
request (``ctx.signals.get``, ``ctx.history.count``), segments inlined, and compiles it once
when the policy loads: a check is one call and straight-line comparisons, where
``conditions.compile_condition`` makes a call per node. Literals and names reach the source
as constants bound in the function's namespace, never as text, so nothing a policy says can
change the code. The semantics are those of conditions.py (the property tests compare both
with the reference evaluator).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from slotwise.dsl import ast
from slotwise.dsl.conditions import MISSING, Predicate, equal, is_number
from slotwise.types import Context

_OPERATORS = {"<": "<", "<=": "<=", ">": ">", ">=": ">=", "==": "==", "!=": "!="}


class _Writer:
    """Builds one expression; constants go into ``names`` as c0, c1, ..."""

    def __init__(self, segments: Mapping[str, ast.Segment]) -> None:
        self.segments = segments
        self.names: dict[str, Any] = {"M": MISSING, "_equal": equal, "_number": is_number}
        self._constants: dict[tuple[type, Any], str] = {}

    def constant(self, value: object) -> str:
        key = (type(value), value if _hashable(value) else id(value))
        name = self._constants.get(key)
        if name is None:
            name = self._constants[key] = f"c{len(self._constants)}"
            self.names[name] = value
        return name

    def expression(self, cond: ast.Condition) -> str:
        if isinstance(cond, ast.And | ast.Or):
            joiner = " and " if isinstance(cond, ast.And) else " or "
            return "(" + joiner.join(self.expression(c) for c in cond.operands) + ")"
        if isinstance(cond, ast.Negation):
            return f"(not {self.expression(cond.operand)})"
        if isinstance(cond, ast.SegmentRef):
            return self.expression(self.segments[cond.name].condition)
        if isinstance(cond, ast.EventWithin):
            event, since = self.constant(cond.event), self.constant(cond.within.seconds)
            return f"(h.count({event}, now - {since}) > 0)"
        if isinstance(cond, ast.EventCount):
            event, since = self.constant(cond.event), self.constant(cond.within.seconds)
            count = self.constant(cond.count)
            return f"(h.count({event}, now - {since}) {_OPERATORS[cond.op]} {count})"
        return self._signal_atom(cond)

    def _signal_atom(self, cond: ast.Condition) -> str:
        name = self.constant(getattr(cond, "signal", ""))
        if isinstance(cond, ast.Compare):
            return self._compare(cond, name)
        if isinstance(cond, ast.Member):
            negated = " not" if cond.negated else ""
            if all(type(v) is str for v in cond.values):
                strings = self.constant(frozenset(cond.values))
                test = f"(type(v) is str and v in {strings})"
            else:
                test = f"any(_equal(v, x) for x in {self.constant(cond.values)})"
            return f"((v := s({name}, M)) is not M and ({test}) is{negated} True)"
        if isinstance(cond, ast.InRange):
            span = self.constant(cond.range)
            negated = " not" if cond.negated else ""
            return (
                f"((v := s({name}, M)) is not M and "
                f"(_number(v) and {span}.contains(v)) is{negated} True)"
            )
        if isinstance(cond, ast.Has):
            wanted = self.constant(cond.values)
            quantifier = "all" if cond.quantifier == "all" else "any"
            return f"(isinstance(v := s({name}), tuple) and {quantifier}(x in v for x in {wanted}))"
        if isinstance(cond, ast.Contains):
            return f"(isinstance(v := s({name}), tuple) and {self.constant(cond.value)} in v)"
        if isinstance(cond, ast.Flag):
            return f"(s({name}) is True)"
        raise TypeError(f"not a condition: {cond!r}")  # pragma: no cover - no more in grammar

    def _compare(self, cond: ast.Compare, name: str) -> str:
        literal = self.constant(cond.value)
        if cond.op in ("==", "!="):
            want = "True" if cond.op == "==" else "False"
            if type(cond.value) is str:
                test = f"(type(v) is str and v == {literal})"
            else:
                test = f"_equal(v, {literal})"
            return f"((v := s({name}, M)) is not M and {test} is {want})"
        if not is_number(cond.value):
            return "False"
        return f"(_number(v := s({name}, M)) and v {_OPERATORS[cond.op]} {literal})"


def _hashable(value: object) -> bool:
    try:
        hash(value)
    except TypeError:
        return False
    return True


def compile_code(cond: ast.Condition, segments: Mapping[str, ast.Segment]) -> Predicate:
    """One Python function that evaluates ``cond`` for a request context."""
    writer = _Writer(segments)
    body = writer.expression(cond)
    source = (
        "def check(ctx):\n"
        "    s = ctx.signals.get\n"
        "    h = ctx.history\n"
        "    now = ctx.now\n"
        f"    return bool({body})\n"
    )
    namespace: dict[str, Any] = dict(writer.names)
    exec(compile(source, "<policy condition>", "exec"), namespace)  # noqa: S102 - see above
    check: Callable[[Context], bool] = namespace["check"]
    return check
