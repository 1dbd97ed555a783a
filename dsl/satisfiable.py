"""Can a condition ever hold? A sound, cheap test used by the checker's warnings.

``can_hold`` answers False only when it is sure: it splits the condition into its top-level AND
parts, groups the parts that read a single signal or behaviour, and tries every value that can
make a difference for that group (the schema's closed set of values, the literals the parts
mention, the integers around numeric end points within the signal's declared bounds, "missing").
Parts that read several signals are assumed satisfiable.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping

from slotwise.dsl import ast
from slotwise.dsl.conditions import Feature, atoms, compile_condition, conjuncts, feature_of
from slotwise.types import Context, SignalSchema, SignalSpec, SignalType

_OTHER = "\x00another value"


class _Counts:
    def __init__(self, count: int) -> None:
        self._count = count

    def count(self, event: str, since: float) -> int:
        return self._count

    def last(self, event: str) -> float | None:
        return 0.0 if self._count else None


def can_hold(
    cond: ast.Condition,
    segments: Mapping[str, ast.Segment],
    schema: SignalSchema,
    cache: dict[object, bool] | None = None,
) -> bool:
    """False when no request can satisfy ``cond``; True when it may.

    ``cache`` (one per policy set: it depends on the segments and the schema) remembers the
    answer per feature group, which large rule sets repeat a great deal."""
    groups: dict[Feature, list[ast.Condition]] = defaultdict(list)
    try:
        for part in conjuncts(cond, segments):
            features = {feature_of(a) for a in atoms(part, segments)}
            if len(features) == 1:
                groups[features.pop()].append(part)
    except KeyError:  # an unknown segment: reported elsewhere
        return True
    for feature, parts in groups.items():
        key = (feature, tuple(parts))
        known = cache.get(key) if cache is not None else None
        if known is None:
            check = compile_condition(ast.And(ast.NO_SPAN, tuple(parts)), segments)
            known = any(check(ctx) for ctx in _contexts(feature, parts, segments, schema))
            if cache is not None:
                cache[key] = known
        if not known:
            return False
    return True


def _contexts(
    feature: Feature,
    parts: list[ast.Condition],
    segments: Mapping[str, ast.Segment],
    schema: SignalSchema,
) -> Iterable[Context]:
    found = [a for p in parts for a in atoms(p, segments)]
    if feature[0] == "event":
        yield Context({}, 0.0, _Counts(0))
        yield Context({}, 0.0, _Counts(1))
        return
    if feature[0] == "count":
        for count in _integers(_points(found), 0.0, None):
            yield Context({}, 0.0, _Counts(count))
        return
    name = feature[1]
    assert isinstance(name, str)
    yield Context({}, 0.0)  # missing
    spec = schema.get(name)
    if spec is None:
        return
    for value in _values(spec, found):
        yield Context({name: value}, 0.0)


def _values(spec: SignalSpec, found: list[ast.Condition]) -> Iterable[ast.Scalar | tuple[str, ...]]:
    kind = spec.type
    if kind is SignalType.BOOL:
        yield from (True, False)
    elif kind is SignalType.STRING:
        literals = {v for a in found for v in _literals(a) if isinstance(v, str)}
        if spec.values is not None:
            yield from sorted(spec.values)
        else:
            yield from sorted(literals)
            yield _OTHER
    elif kind is SignalType.STRING_LIST:
        elements = sorted({v for a in found for v in _literals(a) if isinstance(v, str)})
        yield ()
        yield tuple(elements)
        yield from ((e,) for e in elements)
    elif kind is SignalType.INT:
        yield from _integers(_points(found), spec.minimum, spec.maximum)
    else:
        yield from _reals(_points(found), spec.minimum, spec.maximum)


def _literals(atom: ast.Condition) -> tuple[ast.Scalar, ...]:
    if isinstance(atom, ast.Compare):
        return (atom.value,)
    if isinstance(atom, ast.Member | ast.Has):
        return atom.values
    if isinstance(atom, ast.Contains):
        return (atom.value,)
    return ()


def _points(found: list[ast.Condition]) -> set[float]:
    points: set[float] = set()
    for atom in found:
        if isinstance(atom, ast.InRange):
            points.update(p for p in (atom.range.low, atom.range.high) if p is not None)
        elif isinstance(atom, ast.EventCount):
            points.add(atom.count)
        else:
            points.update(
                float(v)
                for v in _literals(atom)
                if isinstance(v, int | float) and not isinstance(v, bool)
            )
    return points


def _integers(points: set[float], low: float | None, high: float | None) -> list[int]:
    values: set[int] = set()
    for p in points:
        base = math.floor(p)
        values.update((base - 1, base, base + 1, math.ceil(p) + 1))
    if low is not None:
        values.add(math.ceil(low))
    if high is not None:
        values.add(math.floor(high))
    if not values:
        values.add(0)
    return sorted(v for v in values if _within(v, low, high))


def _reals(points: set[float], low: float | None, high: float | None) -> list[float]:
    ordered = sorted(points | {p for p in (low, high) if p is not None})
    values: set[float] = set(ordered)
    if ordered:
        values.update((ordered[0] - 1.0, ordered[-1] + 1.0))
        values.update((a + b) / 2 for a, b in zip(ordered, ordered[1:], strict=False))
    else:
        values.add(0.0)
    return sorted(v for v in values if _within(v, low, high))


def _within(value: float, low: float | None, high: float | None) -> bool:
    return (low is None or value >= low) and (high is None or value <= high)
