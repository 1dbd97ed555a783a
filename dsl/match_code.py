"""A rule index's lookups and intersection compiled to one Python function.

``RuleIndex.match_terms`` asks a dozen lookups for their accepted terms and intersects them.
Done with objects, each signal feature costs a method call for its group, a loop over the
group's members and a method call per member; the calls were about half the lookup time
(docs/benchmarks.md, "Policy matching"). Here the signal features are read inline, in one
straight-line function built when the policy loads: per feature the signal's value, its
bucket (a dict for strings, ``bisect`` for numbers), per group the precomputed set, then the
ANDs. Lookups of other kinds (behaviour, list signals) stay a call each.

Every table, name and constant reaches the function as a bound variable of the factory that
makes it, never as text: nothing a policy says can change the code. The buckets are the
bucketers' own (``matcher._DiscreteBucketer.bucket``, ``_NumericBucketer.bucket``); a value
the fast path does not know (a string signal holding a number, an unhashable value) is handed
to the bucketer's own method, so both always agree (tests/dsl/test_match_code.py).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from slotwise.dsl.conditions import MISSING
from slotwise.types import Context


@dataclass(frozen=True, slots=True)
class Discrete:
    """A discrete feature: strings by a dict, anything else by the bucketer's method."""

    name: str
    strings: dict[str, int]  # used for a str value when ``strings_first``
    strings_first: bool
    other: int
    missing: int
    bucket: Callable[[Context], int]  # the bucketer's own method, for any other value


@dataclass(frozen=True, slots=True)
class Numeric:
    """A numeric feature: below/at/between/above ``points``, ``other``, ``missing``."""

    name: str
    points: list[float]
    other: int
    missing: int


@dataclass(frozen=True, slots=True)
class Grouped:
    """One precomputed set per combination of its members' buckets (``matcher._Group``)."""

    table: list[Any]  # Bits | None per combination
    members: tuple[tuple[Discrete | Numeric, int], ...]  # (feature, stride)


@dataclass(frozen=True, slots=True)
class Called:
    """Any other lookup: its ``accepted(ctx)``, called."""

    accepted: Callable[[Context], Any]
    may_be_none: bool = True


Plan = Grouped | Called


def compile_match(
    plans: Sequence[Plan],
    everything: Any,
    padding: int,
    rest: Callable[[Context, Any], Any] | None,
) -> Callable[[Context], Any]:
    """``ctx -> the terms that hold``: the AND of every plan's accepted set (``everything``
    when none answers), returned at once when only the padding is left, else passed through
    ``rest(ctx, matched)`` (list exclusions, residual checks) when there is one."""
    values: dict[str, Any] = {"_M": MISSING, "_bisect": bisect_left, "_ALL": everything}
    lines: list[str] = []

    def bind(value: Any) -> str:
        name = f"k{len(values)}"
        values[name] = value
        return name

    state = "none"  # whether `m` is surely unset ("none"), maybe unset ("maybe") or set ("set")

    def intersect(operand: str, may_be_none: bool) -> None:
        nonlocal state
        pad = ""
        if may_be_none:
            lines.append(f"    if {operand} is not None:")
            pad = "    "
        if state == "none":
            lines.append(f"    {pad}m = {operand}")
        elif state == "maybe":
            lines.append(f"    {pad}m = {operand} if m is None else m & {operand}")
        else:
            lines.append(f"    {pad}m = m & {operand}")
        if state == "none":
            state = "maybe" if may_be_none else "set"
        elif state == "maybe" and not may_be_none:
            state = "set"

    # the operands that are never None first: the chain then needs no None test
    order = sorted(range(len(plans)), key=lambda i: _may_be_none(plans[i]))
    lines.append("    m = None")
    lines.append("    s = ctx.signals")
    lines.append("    get = s.get")
    for number in order:
        plan = plans[number]
        operand = f"a{number}"
        if isinstance(plan, Called):
            lines.append(f"    {operand} = {bind(plan.accepted)}(ctx)")
        else:
            terms: list[str] = []
            for feature, stride in plan.members:
                bucket = f"b{number}_{len(terms)}"
                lines.extend(_bucket_lines(feature, bucket, bind))
                terms.append(bucket if stride == 1 else f"{bucket} * {stride}")
            lines.append(f"    {operand} = {bind(plan.table)}[{' + '.join(terms)}]")
        intersect(operand, _may_be_none(plan))
    if state == "set":
        lines += [f"    if len(m) == {int(padding)}:", "        return m"]
    else:  # no lookup answered: every term, and no early return (as match_terms had it)
        lines += ["    if m is None:", "        m = _ALL", f"    elif len(m) == {int(padding)}:"]
        lines += ["        return m"]
    if rest is not None:
        lines.append(f"    return {bind(rest)}(ctx, m)")
    else:
        lines.append("    return m")
    names = list(values)
    source = (
        f"def _make({', '.join(names)}):\n"
        "  def match_terms(ctx):\n"
        + "\n".join("  " + line for line in lines)
        + "\n  return match_terms\n"
    )
    namespace: dict[str, Any] = {}
    exec(compile(source, "<slotwise match>", "exec"), namespace)  # noqa: S102 - constants bound
    made: Callable[[Context], Any] = namespace["_make"](*values.values())
    return made


def _may_be_none(plan: Plan) -> bool:
    if isinstance(plan, Called):
        return plan.may_be_none
    return any(cell is None for cell in plan.table)


def _bucket_lines(
    feature: Discrete | Numeric, bucket: str, bind: Callable[[Any], str]
) -> list[str]:
    name = bind(feature.name)
    lines = [f"    v = get({name}, _M)", "    if v is _M:", f"        {bucket} = {feature.missing}"]
    if isinstance(feature, Discrete):
        if feature.strings_first:
            lines += [
                "    elif v.__class__ is str:",
                f"        {bucket} = {bind(feature.strings)}.get(v, {feature.other})",
            ]
        lines += ["    else:", f"        {bucket} = {bind(feature.bucket)}(ctx)"]
        return lines
    points = bind(feature.points)
    lines += [
        "    elif (v.__class__ is int or v.__class__ is float) and v == v:",
        f"        i = _bisect({points}, v)",
        f"        {bucket} = 2 * i + 1 if i < {len(feature.points)} and {points}[i] == v"
        " else 2 * i",
        "    else:",
        f"        {bucket} = {feature.other}",
    ]
    return lines
