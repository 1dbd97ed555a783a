"""The rule matcher: roaring bitmaps over a campaign's rules, plus residual checks.

Rules are numbered 0..n-1 in policy order. Each rule's condition is split into its top-level
AND parts (conjuncts). A conjunct that reads exactly one *feature* (a signal, ``event X within
W`` or ``count of X within W``) with indexable operators is answered by the index; every other
conjunct (OR across signals, ``not`` over several signals, a type the index cannot bucket)
becomes a residual check, run only for the rules that survive the index.

Per feature the index holds, for every value the rules mention (strings, booleans), every
numeric bucket between the range end points the rules use, plus "some other value" and
"missing", the bitmap of rules that accept it, as DESIGN.md describes:
"rules that accept the value merged with the rules that do not mention the attribute". These
bitmaps are dense, so roaring keeps them as bitset containers and a match, the intersection of
one bitmap per feature (a dozen or so, whatever the rule count), runs word by word.

The bucket tables are filled by evaluating each distinct conjunct (rules that share a conjunct
share the work) on one representative value per bucket, with the same compiled closures the
residual checks use, so the index cannot disagree with the closures.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pyroaring import BitMap

from slotwise.dsl import ast
from slotwise.dsl.conditions import (
    MISSING,
    Feature,
    Predicate,
    atoms,
    compile_condition,
    conjuncts,
    feature_of,
)
from slotwise.plugins.schema import Context

FeatureKind = Literal["discrete", "numeric", "list"]
_OTHER = "\x00another value"  # equal to no literal a policy can write


class RuleIndex:
    """Matches a request against n rules: index lookups, one intersection, residual checks."""

    __slots__ = (
        "_all",
        "_extras",
        "_features",
        "_layers",
        "_lists",
        "_padding",
        "_residual_ids",
        "_residuals",
        "ids",
        "size",
        "stats",
    )

    def __init__(
        self,
        ids: TermIds,
        terms: BitMap,
        layers: int,
        features: Sequence[_Lookup],
        lists: Sequence[_ListLookup],
        residuals: Mapping[int, Predicate],
        stats: IndexStats,
    ) -> None:
        self.ids = ids
        self.size = ids.size
        self._all = terms
        self._features = tuple(features)
        self._lists = tuple(lists)
        self._residuals = dict(residuals)
        self._residual_ids = BitMap(sorted(residuals), optimize=False) if residuals else None
        # OR terms: the j-th extra term of rule r has the id term(r) + j * layer_offset, so
        # that a layer maps back to its rules with one shift
        offset = ids.layer_offset
        self._layers = tuple(
            (terms & BitMap(range(j * offset, (j + 1) * offset), optimize=False), j * offset)
            for j in range(1, layers + 1)
        )
        self._extras = (
            terms & BitMap(range(offset, (layers + 1) * offset), optimize=False) if layers else None
        )
        self._padding = ids.padding_ranges()
        self.stats = stats

    def match(self, ctx: Context) -> BitMap:
        """The term ids (``self.ids``) of the rules whose condition holds for ctx (a fresh
        bitmap; ``ids.rule_of`` turns one into the rule's index in policy order)."""
        accepted = [a for f in self._features if (a := f.accepted(ctx)) is not None]
        if not accepted:
            matched = self._all & self._all
        elif len(accepted) == 1:
            matched = accepted[0] & self._all
        else:
            # the densest first: dense bitset containers AND word by word, and the running
            # result turns into (element-wise, slower) array containers only at the last
            # steps; measured 1.3x (10,000 rules) to 1.7x (100,000) faster than the most
            # selective first. `a & b` builds a new bitmap, which pyroaring does several times
            # faster than copy() or `&=`.
            accepted.sort(key=len, reverse=True)
            matched = accepted[0] & accepted[1]
            for more in accepted[2:]:
                matched = matched & more
        for lookup in self._lists:
            for barred in lookup.barred(ctx):
                matched = matched - barred
        if self._residual_ids is not None and matched.intersect(self._residual_ids):
            residuals = self._residuals
            for term in (matched & self._residual_ids).to_array():
                if not residuals[term](ctx):
                    matched.discard(term)
        # pyroaring's in-place remove_range/update are cheap, unlike `&=`/`|=`/copy()
        if self._extras is not None and matched.intersect(self._extras):
            found = [(matched & layer).shift(-offset) for layer, offset in self._layers]
            matched.remove_range(
                self.ids.layer_offset, self.ids.layer_offset * len(found) + self.ids.layer_offset
            )
            for rules in found:
                matched.update(rules)
        for start, end in self._padding:
            matched.remove_range(start, end)
        return matched


def _without_runs(bitmap: BitMap) -> BitMap:
    """The same set without run containers: intersections with runs are several times slower
    in pyroaring than with array or bitset containers, and roaring sometimes produces runs."""
    if bitmap.get_statistics()["n_run_containers"]:
        return BitMap(bitmap.to_array(), optimize=False)
    return bitmap


CHUNK = 1 << 16  # roaring's container width
PADDING = 4097  # one more than roaring's array-container limit


@dataclass(frozen=True, slots=True)
class TermIds:
    """Where rules live in the bitmaps' id space.

    Roaring stores a 65536-wide chunk holding at most 4096 ids as a sorted array, and pyroaring
    intersects arrays element by element, several times slower than the word-by-word AND of
    dense bitset containers. With padding, every chunk starts with PADDING ids that every
    accepting bitmap holds: the running intersection stays dense however few rules survive, and
    the padding is removed from the final result. Measured on the `slotwise bench match`
    workload (same process, interleaved), padding made matching 1.2x (100,000 rules) to 1.4x
    (10,000 rules) slower: the saved array work is smaller than the extra dense work and range
    removals. It is therefore off by default (``pad=True`` builds it; the tests check both
    layouts agree), kept because the trade-off may turn with other workloads.
    """

    size: int
    padding: int

    @property
    def per_chunk(self) -> int:
        return CHUNK - self.padding

    @property
    def chunks(self) -> int:
        return max(1, -(-self.size // self.per_chunk))

    @property
    def layer_offset(self) -> int:
        return self.chunks * CHUNK if self.padding else max(self.size, 1)

    def term(self, rule: int) -> int:
        if not self.padding:
            return rule
        chunk, within = divmod(rule, self.per_chunk)
        return chunk * CHUNK + self.padding + within

    def rule_of(self, term: int) -> int:
        if not self.padding:
            return term
        return (term >> 16) * self.per_chunk + (term & 0xFFFF) - self.padding

    def padding_ranges(self, layers: int = 0) -> tuple[tuple[int, int], ...]:
        if not self.padding:
            return ()
        total_chunks = self.chunks * (layers + 1)
        return tuple((c * CHUNK, c * CHUNK + self.padding) for c in range(total_chunks))


def term_ids(size: int, pad: bool = False) -> TermIds:
    return TermIds(size, PADDING if pad else 0)


def _full(size: int) -> BitMap:
    # built from a list so that roaring stores dense bitset containers, which intersect word by
    # word (a run container from range() turns every intersection into a slow conversion)
    return BitMap(list(range(size)), optimize=False)


@dataclass(frozen=True, slots=True)
class IndexStats:
    """How a campaign's rules were indexed (shown by `slotwise bench` and explain)."""

    rules: int
    terms: int
    features: int
    buckets: int
    residual_rules: int


class _Lookup:
    """Anything that gives the accepted-terms bitmap for a request (None: every term)."""

    __slots__ = ()

    def accepted(self, ctx: Context) -> BitMap | None:  # pragma: no cover - abstract
        raise NotImplementedError


class _Bucketer:
    """Maps a request to a bucket number of one feature; ``accepts[bucket]`` are its terms."""

    __slots__ = ("accepts",)

    def __init__(self, accepts: list[BitMap | None]) -> None:
        self.accepts = accepts

    def bucket(self, ctx: Context) -> int:  # pragma: no cover - abstract
        raise NotImplementedError


class _DiscreteBucketer(_Bucketer):
    """Buckets: each value the rules mention, then "another value", then "missing"."""

    __slots__ = ("missing", "name", "other", "table")

    def __init__(
        self, name: str, table: dict[tuple[bool, Any], int], accepts: list[BitMap | None]
    ) -> None:
        super().__init__(accepts)
        self.name, self.table = name, table
        self.other, self.missing = len(table), len(table) + 1

    def bucket(self, ctx: Context) -> int:
        value = ctx.signals.get(self.name, MISSING)
        if value is MISSING:
            return self.missing
        try:
            return self.table.get((value.__class__ is bool, value), self.other)
        except TypeError:  # an unhashable value from a misbehaving provider
            return self.other


class _NumericBucketer(_Bucketer):
    """Buckets: below/at/between/above the end points, then "not a number", then "missing"."""

    __slots__ = ("missing", "name", "other", "points")

    def __init__(self, name: str, points: list[float], accepts: list[BitMap | None]) -> None:
        super().__init__(accepts)
        self.name, self.points = name, points
        self.other, self.missing = 2 * len(points) + 1, 2 * len(points) + 2

    def bucket(self, ctx: Context) -> int:
        value = ctx.signals.get(self.name, MISSING)
        if value is MISSING:
            return self.missing
        if (value.__class__ is int or value.__class__ is float) and value == value:
            points = self.points
            i = bisect_left(points, value)
            return 2 * i + 1 if i < len(points) and points[i] == value else 2 * i
        return self.other


class _CountBucketer(_Bucketer):
    __slots__ = ("event", "points", "seconds")

    def __init__(
        self, event: str, seconds: float, points: list[float], accepts: list[BitMap | None]
    ) -> None:
        super().__init__(accepts)
        self.event, self.seconds, self.points = event, seconds, points

    def bucket(self, ctx: Context) -> int:
        value = ctx.history.count(self.event, ctx.now - self.seconds)
        points = self.points
        i = bisect_left(points, value)
        return 2 * i + 1 if i < len(points) and points[i] == value else 2 * i


class _EventBucketer(_Bucketer):
    __slots__ = ("event", "seconds")

    def __init__(self, event: str, seconds: float, accepts: list[BitMap | None]) -> None:
        super().__init__(accepts)
        self.event, self.seconds = event, seconds

    def bucket(self, ctx: Context) -> int:
        return 1 if ctx.history.count(self.event, ctx.now - self.seconds) > 0 else 0


class _Group(_Lookup):
    """Several features looked up together: one precomputed bitmap per combination of their
    buckets, so a request pays one bitmap intersection for the group instead of one per
    feature."""

    __slots__ = ("members", "table")

    def __init__(self, members: Sequence[_Bucketer], everything: BitMap) -> None:
        strides = []
        stride = 1
        for member in members:
            strides.append(stride)
            stride *= len(member.accepts)
        self.members = tuple(zip(members, strides, strict=True))
        table: list[BitMap | None] = []
        for combination in range(stride):
            parts = [
                accepts
                for member, step in self.members
                if (accepts := member.accepts[(combination // step) % len(member.accepts)])
                is not None
            ]
            if not parts:
                table.append(None)
            elif len(parts) == 1:
                table.append(parts[0])
            else:
                cell = parts[0] & parts[1]
                for more in parts[2:]:
                    cell = cell & more
                table.append(_without_runs(cell))
        self.table = table

    def accepted(self, ctx: Context) -> BitMap | None:
        index = 0
        for member, stride in self.members:
            index += member.bucket(ctx) * stride
        return self.table[index]


class _ListLookup(_Lookup):
    """``has any`` / ``not has any`` over a list signal. Accepted: the terms that need no
    element, plus those needing one the request's list has (precomputed per element, so a
    one-element list costs nothing and each further element one union with a small bitmap).
    Terms forbidding an element the list has are removed after the intersection."""

    __slots__ = ("forbidding", "name", "needing", "unconstrained", "with_element")

    def __init__(
        self,
        name: str,
        unconstrained: BitMap,
        needing: dict[str, BitMap],
        forbidding: dict[str, BitMap],
    ) -> None:
        self.name, self.unconstrained = name, unconstrained
        self.needing, self.forbidding = needing, forbidding
        self.with_element = {
            element: _without_runs(unconstrained | rules) for element, rules in needing.items()
        }

    def accepted(self, ctx: Context) -> BitMap | None:
        value = ctx.signals.get(self.name)
        if value.__class__ is not tuple:
            return self.unconstrained
        needing = self.needing
        met = [e for e in value if e in needing]
        if not met:
            return self.unconstrained
        result = self.with_element[met[0]]
        for element in met[1:]:
            # binary operators: pyroaring's n-ary named methods are several times slower
            result = result | needing[element]
        return result

    def barred(self, ctx: Context) -> list[BitMap]:
        value = ctx.signals.get(self.name)
        if value.__class__ is not tuple:
            return []
        forbidding = self.forbidding
        return [forbidding[e] for e in value if e in forbidding]


# ---------------------------------------------------------------- building


class _FixedHistory:
    """A history in which every event type occurred ``count`` times in any window."""

    def __init__(self, count: float) -> None:
        self._count = count

    def count(self, event: str, since: float) -> int:
        return self._count  # type: ignore[return-value]

    def last(self, event: str) -> float | None:
        return 0.0 if self._count else None


MAX_OR_TERMS = 8


def build_rule_index(
    conditions: Sequence[ast.Condition],
    segments: Mapping[str, ast.Segment],
    kind_of: Callable[[str], FeatureKind],
    pad: bool = False,
) -> RuleIndex:
    """Index the conditions of rules 0..n-1 (policy order).

    A rule whose condition has an OR across signals, each branch indexable, is split into
    terms (its disjunctive form, at most MAX_OR_TERMS): the first term keeps the rule's id,
    the j-th further one gets ``j * n + rule`` and maps back to it after matching.
    """
    size = len(conditions)
    mapping = term_ids(size, pad)
    builder = _Builder(segments, kind_of)
    ids = [mapping.term(rule) for rule in range(size)]
    layers = 0
    for rule, condition in enumerate(conditions):
        terms = _terms(list(conjuncts(condition, segments)), builder)
        builder.add(ids[rule], terms[0])
        for layer, extra in enumerate(terms[1:], start=1):
            term = ids[rule] + layer * mapping.layer_offset
            builder.add(term, extra)
            ids.append(term)
            layers = max(layers, layer)
    total = len(ids)
    for start, end in mapping.padding_ranges(layers):
        ids.extend(range(start, end))
    everything = _without_runs(BitMap(sorted(ids), optimize=False))
    bucketers = [
        _build_bucketer(feature, by_key, builder.literals[feature], segments, kind_of, everything)
        for feature, by_key in builder.groups.items()
    ]
    buckets = sum(len(b.accepts) for b in bucketers)
    lookups: list[_Lookup] = list(_groups(bucketers, everything))
    lists: list[_ListLookup] = []
    for name in sorted(builder.lists_any.keys() | builder.lists_none.keys()):
        needing = {e: BitMap(r, optimize=False) for e, r in builder.lists_any[name].items()}
        forbidding = {e: BitMap(r, optimize=False) for e, r in builder.lists_none[name].items()}
        mentioning = BitMap.union(BitMap(optimize=False), *needing.values())
        lookup = _ListLookup(name, everything - mentioning, needing, forbidding)
        lookups.append(lookup)
        if forbidding:
            lists.append(lookup)
        buckets += len(needing) + len(forbidding)
    residuals: dict[int, Predicate] = {}
    for term, parts in builder.residual_parts.items():
        if parts:
            residuals[term] = compile_condition(
                parts[0] if len(parts) == 1 else ast.And(ast.NO_SPAN, tuple(parts)), segments
            )
    stats = IndexStats(size, total, len(lookups), buckets, len(residuals))
    return RuleIndex(mapping, everything, layers, lookups, lists, residuals, stats)


class _Builder:
    def __init__(
        self, segments: Mapping[str, ast.Segment], kind_of: Callable[[str], FeatureKind]
    ) -> None:
        self.segments = segments
        self.kind_of = kind_of
        # feature -> structural key of a term's conjuncts on it -> (term ids, the conjuncts)
        self.groups: dict[Feature, dict[object, tuple[list[int], list[ast.Condition]]]] = (
            defaultdict(dict)
        )
        self.lists_any: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
        self.lists_none: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
        self.residual_parts: dict[int, list[ast.Condition]] = defaultdict(list)
        self.literals: dict[Feature, list[ast.Condition]] = defaultdict(list)

    def single_feature(self, part: ast.Condition) -> Feature | None:
        """The one feature an indexable conjunct reads, or None."""
        found = list(atoms(part, self.segments))
        features = {feature_of(a) for a in found}
        if len(features) != 1:
            return None
        feature = features.pop()
        kind = "numeric" if feature[0] == "count" else _kind(feature, self.kind_of)
        return feature if _indexable(part, found, kind, feature) else None

    def add(self, term: int, parts: list[ast.Condition]) -> None:
        per_feature: dict[Feature, list[ast.Condition]] = defaultdict(list)
        for part in parts:
            feature = self.single_feature(part)
            if feature is None:
                self.residual_parts[term].append(part)
            else:
                per_feature[feature].append(part)
        for feature, group in per_feature.items():
            if feature[0] == "signal" and self.kind_of(feature[1]) == "list":
                self._add_list(term, feature[1], group)
                continue
            key = tuple(group)  # nodes compare by content (spans aside): alike rules share
            entry = self.groups[feature].setdefault(key, ([], group))
            entry[0].append(term)
            self.literals[feature].extend(group)

    def _add_list(self, term: int, name: str, group: list[ast.Condition]) -> None:
        # index one positive `has any` exactly; a negated one too; everything else is checked
        # on the survivors
        positive = negative = False
        for part in group:
            inner = part.operand if isinstance(part, ast.Negation) else part
            elements = _any_elements(inner)
            exact = elements and (
                isinstance(inner, ast.Contains)
                or (isinstance(inner, ast.Has) and inner.quantifier == "any")
            )
            if isinstance(part, ast.Negation) and exact and not negative:
                negative = True
                for element in elements:
                    self.lists_none[name][element].append(term)
            elif not isinstance(part, ast.Negation) and elements and not positive:
                positive = True
                for element in elements:  # for `has all`, a necessary condition only
                    self.lists_any[name][element].append(term)
                if not exact:
                    self.residual_parts[term].append(part)
            else:
                self.residual_parts[term].append(part)


def _terms(parts: list[ast.Condition], builder: _Builder) -> list[list[ast.Condition]]:
    """The rule as a disjunction of conjunct lists, when its ORs can be indexed branch-wise."""
    terms: list[list[ast.Condition]] = [[]]
    for part in parts:
        if isinstance(part, ast.Or) and builder.single_feature(part) is None:
            branches = part.operands
            if len(terms) * len(branches) <= MAX_OR_TERMS and all(
                builder.single_feature(b) is not None for b in branches
            ):
                terms = [term + [branch] for term in terms for branch in branches]
                continue
        for term in terms:
            term.append(part)
    return terms


def _kind(feature: Feature, kind_of: Callable[[str], FeatureKind]) -> str:
    if feature[0] == "event":
        return "event"
    return kind_of(feature[1])


_DISCRETE_ATOMS = (ast.Member, ast.Flag)
_NUMERIC_ATOMS = (ast.Member, ast.InRange)


def _indexable(
    part: ast.Condition, found: list[ast.Condition], kind: str, feature: Feature
) -> bool:
    if kind == "event":
        return all(isinstance(a, ast.EventWithin) for a in found)
    if feature[0] == "count":
        return all(isinstance(a, ast.EventCount) for a in found)
    if kind == "discrete":
        return all(
            isinstance(a, _DISCRETE_ATOMS) or (isinstance(a, ast.Compare) and a.op in ("==", "!="))
            for a in found
        )
    if kind == "numeric":
        return all(
            (isinstance(a, ast.Compare) and _number(a.value))
            or (isinstance(a, ast.Member) and all(_number(v) for v in a.values))
            or isinstance(a, ast.InRange)
            for a in found
        )
    if kind == "list":
        # only a plain positive `has any` / `has all` / `"x" in` conjunct: anything wrapped in
        # not/or stays residual
        inner = part.operand if isinstance(part, ast.Negation) else part
        return isinstance(inner, ast.Has | ast.Contains)
    return False


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _any_elements(part: ast.Condition) -> tuple[str, ...]:
    if isinstance(part, ast.Contains):
        return (part.value,)
    assert isinstance(part, ast.Has)
    values = tuple(str(v) for v in part.values)
    return values if part.quantifier == "any" else values[:1]


MAX_GROUP_CELLS = 1024
GROUP_MEMORY_BYTES = 48 * 1024 * 1024


def _groups(bucketers: list[_Bucketer], everything: BitMap) -> Iterator[_Group]:
    """Pack features into groups whose bucket combinations stay few (fewest buckets first),
    within a memory budget for the combined bitmaps."""
    cell_bytes = max(1, len(everything)) / 8 + 64
    budget = GROUP_MEMORY_BYTES / cell_bytes
    group: list[_Bucketer] = []
    cells = 1
    for bucketer in sorted(bucketers, key=lambda b: len(b.accepts)):
        size = len(bucketer.accepts)
        if group and (cells * size > MAX_GROUP_CELLS or cells * size > budget):
            yield _Group(group, everything)
            budget -= cells if len(group) > 1 else 0
            group, cells = [], 1
        group.append(bucketer)
        cells *= size
    if group:
        yield _Group(group, everything)


def _build_bucketer(
    feature: Feature,
    by_key: dict[object, tuple[list[int], list[ast.Condition]]],
    parts: list[ast.Condition],
    segments: Mapping[str, ast.Segment],
    kind_of: Callable[[str], FeatureKind],
    everything: BitMap,
) -> _Bucketer:
    compiled = [
        (
            BitMap(rules, optimize=False),
            compile_condition(
                conds[0] if len(conds) == 1 else ast.And(ast.NO_SPAN, tuple(conds)), segments
            ),
        )
        for rules, conds in by_key.values()
    ]

    def accepting(ctx: Context) -> BitMap | None:
        """The terms the representative ctx satisfies (None: all of them)."""
        rejecters = [rules for rules, accepts in compiled if not accepts(ctx)]
        if not rejecters:
            return None
        return _without_runs(everything - BitMap.union(*rejecters))

    if feature[0] == "event":
        event, seconds = str(feature[1]), float(feature[2])  # type: ignore[misc]
        absent = accepting(Context({}, 0.0, _FixedHistory(0)))
        present = accepting(Context({}, 0.0, _FixedHistory(1)))
        return _EventBucketer(event, seconds, [absent, present])
    points = sorted(_end_points(parts, segments))
    representatives = _representatives(points)
    if feature[0] == "count":
        event, seconds = str(feature[1]), float(feature[2])  # type: ignore[misc]
        regions = [accepting(Context({}, 0.0, _FixedHistory(r))) for r in representatives]
        return _CountBucketer(event, seconds, points, regions)
    name = feature[1]
    missing = accepting(Context({}, 0.0))
    other = accepting(Context({name: _OTHER}, 0.0))
    if kind_of(name) == "numeric":
        regions = [accepting(Context({name: r}, 0.0)) for r in representatives]
        return _NumericBucketer(name, points, [*regions, other, missing])
    table: dict[tuple[bool, Any], int] = {}
    accepts: list[BitMap | None] = []
    for value in _discrete_values(parts, segments):
        table[(value.__class__ is bool, value)] = len(accepts)
        accepts.append(accepting(Context({name: value}, 0.0)))
    return _DiscreteBucketer(name, table, [*accepts, other, missing])


def _end_points(parts: list[ast.Condition], segments: Mapping[str, ast.Segment]) -> set[float]:
    points: set[float] = set()
    for part in parts:
        for atom in atoms(part, segments):
            if isinstance(atom, ast.Compare) and _number(atom.value):
                points.add(float(atom.value))
            elif isinstance(atom, ast.Member):
                points.update(float(v) for v in atom.values if _number(v))
            elif isinstance(atom, ast.InRange):
                points.update(p for p in (atom.range.low, atom.range.high) if p is not None)
            elif isinstance(atom, ast.EventCount):
                points.add(float(atom.count))
    return points


def _representatives(points: list[float]) -> list[float]:
    """One value per region: below the first point, each point, between points, above."""
    if not points:
        return [0.0]
    result = [points[0] - 1.0]
    for i, point in enumerate(points):
        result.append(point)
        result.append(point + 1.0 if i + 1 == len(points) else (point + points[i + 1]) / 2)
    return result


def _discrete_values(
    parts: list[ast.Condition], segments: Mapping[str, ast.Segment]
) -> list[ast.Scalar]:
    # keyed by (is_bool, value): in a plain set True and 1 would be one element
    values: dict[tuple[bool, ast.Scalar], ast.Scalar] = {}
    for part in parts:
        for atom in atoms(part, segments):
            found: tuple[ast.Scalar, ...] = ()
            if isinstance(atom, ast.Compare):
                found = (atom.value,)
            elif isinstance(atom, ast.Member):
                found = atom.values
            elif isinstance(atom, ast.Flag):
                found = (True,)
            for value in found:
                values[(value.__class__ is bool, value)] = value
    return list(values.values())
