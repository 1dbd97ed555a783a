"""The rule matcher: bit sets over a campaign's rules, plus residual checks.

Rules are numbered 0..n-1 in policy order (``TermIds`` lays out their bit positions, the
terms). Each rule's condition is split into its top-level AND parts (conjuncts). A conjunct
that reads exactly one *feature* (a signal, ``event X within W`` or ``count of X within W``)
with indexable operators is answered by the index; every other conjunct (OR across signals,
``not`` over several signals, a type the index cannot bucket) becomes a residual check, run
only for the rules that survive the index.

Per feature the index holds, for every value the rules mention (strings, booleans), every
numeric bucket between the range end points the rules use, plus "some other value" and
"missing", the set of rules that accept it, as DESIGN.md describes:
"rules that accept the value merged with the rules that do not mention the attribute". These
sets are dense; they are Python ints (see ``Bits``), and a match, the intersection of one set
per feature or group of features (a dozen or so, whatever the rule count), runs word by word.

The bucket tables are filled by evaluating each distinct conjunct (rules that share a conjunct
share the work) on one representative value per bucket, with the same compiled closures the
residual checks use, so the index cannot disagree with the closures.
"""

from __future__ import annotations

import struct
from bisect import bisect_left
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
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


Bits = int
"""A set of term ids as a Python int: bit ``t`` is set when term ``t`` is in the set.

The index used roaring bitmaps first. A match intersects about seven dense sets (each rule
set minus the few rules a request's value rules out), and pyroaring's bitset AND was not the
cost: turning the ~5% result into array containers (roaring keeps a 65,536-id chunk with at
most 4,096 ids as a sorted array) extracted every surviving id, about 2 ns each, and the
actions then had to be intersected with those arrays. CPython's int AND runs word by word over
the whole width with no container logic and never enumerates the result: on the
`slotwise bench match` workload at 100,000 rules the intersections took 7.5 us as ints
against 25 us as roaring bitmaps, and the whole ``eligible()`` call about half the time.
"""


def bits_of(ids: Iterable[int]) -> Bits:
    """The set of the given ids (duplicates allowed)."""
    ids = list(ids)
    if not ids:
        return 0
    buffer = bytearray((max(ids) >> 3) + 1)
    for term in ids:
        buffer[term >> 3] |= 1 << (term & 7)
    return int.from_bytes(buffer, "little")


def set_bits(bits: Bits) -> list[int]:
    """The ids in a set, ascending (for explanations and names, not for the request path)."""
    text = bin(bits)
    top = len(text) - 1
    found = []
    position = text.find("1", 2)
    while position >= 0:
        found.append(top - position)
        position = text.find("1", position + 1)
    found.reverse()
    return found


# Counting the rules of a set that a match holds (boosts) is where ints lose: CPython's
# int.bit_count() has no hardware popcount in this build, 3.6 us at 100,000 rules, so a slot
# with 24 boost sets cost ~90 us. Actions that need more than the pins are therefore decided
# on a roaring copy of the match, made in C from the int's bytes: each 32,768 ids become the
# upper half of a 65,536-id container whose lower half is all set, which keeps every container
# a bitset (a serialised bitset is the raw words; an array would need each id enumerated). The
# lower halves are never removed: the action bitmaps hold only upper-half ids.
#
# Up to DIRECT_DECIDE_MAX rules the ints are narrow enough that deciding on them directly is
# cheaper than the copy (bench at 10,000 rules: eligible() 12 us direct, 15 us with the copy;
# at 100 rules the copy was most of the time).
DIRECT_DECIDE_MAX = 16_384
_HALF = 1 << 15
_HALF_BYTES = _HALF // 8
_PADDING = b"\xff" * _HALF_BYTES
_HEADER = struct.Struct("<II")  # CRoaring's portable format without run containers
_CONTAINER = struct.Struct("<HH")
_OFFSET = struct.Struct("<I")
_NO_RUN_COOKIE = 12346


def roaring_id(term: int) -> int:
    """Where a term sits in the roaring copy of a match (see ``as_roaring``)."""
    return (term >> 15 << 16) | _HALF | (term & (_HALF - 1))


def as_roaring(bits: Bits, width: int) -> BitMap:
    """The terms of ``bits`` (all below ``width``) at their ``roaring_id``s, plus padding."""
    pieces = max(1, -(-width // _HALF))
    buffer = bits.to_bytes(pieces * _HALF_BYTES, "little")
    keys: list[bytes] = []
    data: list[bytes] = []
    for number in range(pieces):
        piece = buffer[number * _HALF_BYTES : (number + 1) * _HALF_BYTES]
        count = int.from_bytes(piece, "little").bit_count()
        if count:
            keys.append(_CONTAINER.pack(number, _HALF + count - 1))
            data.append(_PADDING)
            data.append(piece)
    start = _HEADER.size + (_CONTAINER.size + _OFFSET.size) * len(keys)
    offsets = [_OFFSET.pack(start + 2 * _HALF_BYTES * i) for i in range(len(keys))]
    return BitMap.deserialize(
        b"".join([_HEADER.pack(_NO_RUN_COOKIE, len(keys)), *keys, *offsets, *data])
    )


class RuleIndex:
    """Matches a request against n rules: index lookups, one intersection, residual checks."""

    __slots__ = (
        "_all",
        "_accepted",
        "_features",
        "_layers",
        "_lists",
        "_residual_ids",
        "_residuals",
        "_rule_mask",
        "_split_mask",
        "ids",
        "size",
        "stats",
    )

    def __init__(
        self,
        ids: TermIds,
        terms: Bits,
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
        self._accepted = tuple(feature.accepted for feature in features)
        self._lists = tuple(lists)
        self._residuals = dict(residuals)
        self._residual_ids = bits_of(residuals)
        self._rule_mask = (1 << ids.size) - 1
        self._split_mask = (1 << ids.split) - 1
        self._layers = tuple(ids.layer_base(j) for j in range(1, layers + 1))
        self.stats = stats

    def match(self, ctx: Context) -> Bits:
        """The rules whose condition holds for ctx: bit ``ids.term(r)`` set for rule r."""
        matched = self._all
        for accepted_by in self._accepted:
            accepted = accepted_by(ctx)
            if accepted is not None:
                matched &= accepted
        if not matched:
            return 0
        for lookup in self._lists:
            for kept in lookup.kept(ctx):
                matched &= kept
        survivors = matched & self._residual_ids
        if survivors:
            residuals = self._residuals
            # the top bit, in constant time, then clear it: cheaper than listing the bits
            # while the survivors are few
            while survivors:
                term = survivors.bit_length() - 1
                bit = 1 << term
                survivors ^= bit
                if not residuals[term](ctx):
                    matched ^= bit
        if self._layers:
            split_mask = self._split_mask
            rules = matched & self._rule_mask
            for base in self._layers:
                rules |= (matched >> base) & split_mask
            matched = rules
        return matched


@dataclass(frozen=True, slots=True)
class TermIds:
    """Where rules live in the id space (terms 0..n-1 for n rules, then the extra terms).

    The ``split`` rules split at an OR into several terms take terms split-1..0, the other
    rules n-1..split, each group in policy order, reversed: the first rule in policy order
    among a set of one group is its highest bit, which ``int.bit_length()`` finds in constant
    time (the lowest bit, ``x & -x``, costs two passes over the whole width, about 4 us at
    100,000 rules, for every pinned slot). The j-th extra term of the split rule with term t
    is ``layer_base(j) + t``: the extra terms take as many ids as the split rules, not n per
    layer (every AND runs over the whole width), and a layer folds back with a shift and a
    mask.
    """

    size: int
    split: int = 0
    rules: tuple[int, ...] = ()  # term -> rule, when some rules are split
    terms: tuple[int, ...] = ()  # rule -> term, when some rules are split

    def layer_base(self, layer: int) -> int:
        return self.size + (layer - 1) * self.split

    def term(self, rule: int) -> int:
        return self.terms[rule] if self.split else self.size - 1 - rule

    def rule_of(self, term: int) -> int:
        return self.rules[term] if self.split else self.size - 1 - term


def term_ids(size: int, split: Sequence[int] = ()) -> TermIds:
    """The id space of ``size`` rules of which the rules ``split`` (ascending) are split."""
    if not split:
        return TermIds(size)
    chosen = set(split)
    terms = [0] * size
    for number, rule in enumerate(split):
        terms[rule] = len(split) - 1 - number
    others = [rule for rule in range(size) if rule not in chosen]
    for number, rule in enumerate(others):
        terms[rule] = size - 1 - number
    rules = [0] * size
    for rule, term in enumerate(terms):
        rules[term] = rule
    return TermIds(size, len(split), tuple(rules), tuple(terms))


@dataclass(frozen=True, slots=True)
class IndexStats:
    """How a campaign's rules were indexed (shown by `slotwise bench` and explain)."""

    rules: int
    terms: int
    features: int
    buckets: int
    residual_rules: int


class _Lookup:
    """Anything that gives the accepted terms for a request (None: every term)."""

    __slots__ = ()

    def accepted(self, ctx: Context) -> Bits | None:  # pragma: no cover - abstract
        raise NotImplementedError


class _Bucketer:
    """Maps a request to a bucket number of one feature; ``accepts[bucket]`` are its terms."""

    __slots__ = ("accepts",)

    def __init__(self, accepts: list[Bits | None]) -> None:
        self.accepts = accepts

    def bucket(self, ctx: Context) -> int:  # pragma: no cover - abstract
        raise NotImplementedError


class _DiscreteBucketer(_Bucketer):
    """Buckets: each value the rules mention, then "another value", then "missing"."""

    __slots__ = ("missing", "name", "other", "table")

    def __init__(
        self, name: str, table: dict[tuple[bool, Any], int], accepts: list[Bits | None]
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

    def __init__(self, name: str, points: list[float], accepts: list[Bits | None]) -> None:
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
        self, event: str, seconds: float, points: list[float], accepts: list[Bits | None]
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

    def __init__(self, event: str, seconds: float, accepts: list[Bits | None]) -> None:
        super().__init__(accepts)
        self.event, self.seconds = event, seconds

    def bucket(self, ctx: Context) -> int:
        return 1 if ctx.history.count(self.event, ctx.now - self.seconds) > 0 else 0


class _Group(_Lookup):
    """Several features looked up together: one precomputed bitmap per combination of their
    buckets, so a request pays one bitmap intersection for the group instead of one per
    feature."""

    __slots__ = ("buckets", "members", "table")

    def __init__(self, members: Sequence[_Bucketer]) -> None:
        strides = []
        stride = 1
        for member in members:
            strides.append(stride)
            stride *= len(member.accepts)
        self.members = tuple(zip(members, strides, strict=True))
        table: list[Bits | None] = []
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
                table.append(cell)
        self.table = table
        # bound methods: no attribute lookups per request
        self.buckets = tuple((member.bucket, stride) for member, stride in self.members)

    def accepted(self, ctx: Context) -> Bits | None:
        index = 0
        for bucket, stride in self.buckets:
            index += bucket(ctx) * stride
        return self.table[index]


class _ListLookup(_Lookup):
    """``has any`` / ``not has any`` over a list signal. Accepted: the terms that need no
    element, plus those needing one the request's list has (precomputed per element, so a
    one-element list costs nothing and each further element one union). Terms forbidding an
    element the list has are removed after the intersection (``kept``: their complements)."""

    __slots__ = ("keeping", "name", "needing", "unconstrained", "with_element")

    def __init__(
        self,
        name: str,
        everything: Bits,
        unconstrained: Bits,
        needing: dict[str, Bits],
        forbidding: dict[str, Bits],
    ) -> None:
        self.name, self.unconstrained = name, unconstrained
        self.needing = needing
        # complements stored positive: CPython ANDs with a negative int several times slower
        self.keeping = {element: everything & ~rules for element, rules in forbidding.items()}
        self.with_element = {element: unconstrained | rules for element, rules in needing.items()}

    def accepted(self, ctx: Context) -> Bits | None:
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

    def kept(self, ctx: Context) -> list[Bits]:
        value = ctx.signals.get(self.name)
        if value.__class__ is not tuple:
            return []
        keeping = self.keeping
        return [keeping[e] for e in value if e in keeping]


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
) -> RuleIndex:
    """Index the conditions of rules 0..n-1 (policy order).

    A rule whose condition has an OR across signals, each branch indexable, is split into
    terms (its disjunctive form, at most MAX_OR_TERMS): the first term is the rule's, the
    j-th further one gets ``mapping.layer_base(j) + term`` and maps back to it after matching
    (see TermIds).
    """
    size = len(conditions)
    builder = _Builder(segments, kind_of)
    split_terms = [_terms(list(conjuncts(c, segments)), builder) for c in conditions]
    mapping = term_ids(size, [rule for rule, terms in enumerate(split_terms) if len(terms) > 1])
    ids: list[int] = []
    layers = 0
    for rule, terms in enumerate(split_terms):
        first = mapping.term(rule)
        builder.add(first, terms[0])
        ids.append(first)
        for layer, extra in enumerate(terms[1:], start=1):
            term = mapping.layer_base(layer) + first
            builder.add(term, extra)
            ids.append(term)
            layers = max(layers, layer)
    total = len(ids)
    everything = bits_of(ids)
    bucketers = [
        _build_bucketer(feature, by_key, builder.literals[feature], segments, kind_of, everything)
        for feature, by_key in builder.groups.items()
    ]
    buckets = sum(len(b.accepts) for b in bucketers)
    lookups: list[_Lookup] = list(_groups(bucketers, everything))
    lists: list[_ListLookup] = []
    for name in sorted(builder.lists_any.keys() | builder.lists_none.keys()):
        needing = {e: bits_of(r) for e, r in builder.lists_any[name].items()}
        forbidding = {e: bits_of(r) for e, r in builder.lists_none[name].items()}
        mentioning = 0
        for rules in needing.values():
            mentioning |= rules
        lookup = _ListLookup(name, everything, everything & ~mentioning, needing, forbidding)
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


def _groups(bucketers: list[_Bucketer], everything: Bits) -> Iterator[_Group]:
    """Pack features into groups whose bucket combinations stay few (fewest buckets first),
    within a memory budget for the combined sets."""
    cell_bytes = max(1, everything.bit_length()) / 8 + 32
    budget = GROUP_MEMORY_BYTES / cell_bytes
    group: list[_Bucketer] = []
    cells = 1
    for bucketer in sorted(bucketers, key=lambda b: len(b.accepts)):
        size = len(bucketer.accepts)
        if group and (cells * size > MAX_GROUP_CELLS or cells * size > budget):
            yield _Group(group)
            budget -= cells if len(group) > 1 else 0
            group, cells = [], 1
        group.append(bucketer)
        cells *= size
    if group:
        yield _Group(group)


def _build_bucketer(
    feature: Feature,
    by_key: dict[object, tuple[list[int], list[ast.Condition]]],
    parts: list[ast.Condition],
    segments: Mapping[str, ast.Segment],
    kind_of: Callable[[str], FeatureKind],
    everything: Bits,
) -> _Bucketer:
    compiled = [
        (
            bits_of(rules),
            compile_condition(
                conds[0] if len(conds) == 1 else ast.And(ast.NO_SPAN, tuple(conds)), segments
            ),
        )
        for rules, conds in by_key.values()
    ]

    # a term has one key per feature, so the keys partition the terms that mention it: a
    # bucket's set is either the unmentioning terms plus the accepting keys or everything but
    # the rejecting keys, and the union over fewer keys is the cheaper (int unions cost the
    # full width each)
    mentioning = 0
    for rules, _ in compiled:
        mentioning |= rules
    unmentioned = everything & ~mentioning

    def accepting(ctx: Context) -> Bits | None:
        """The terms the representative ctx satisfies (None: all of them)."""
        accepted: list[Bits] = []
        rejected: list[Bits] = []
        for rules, accepts in compiled:
            (accepted if accepts(ctx) else rejected).append(rules)
        if not rejected:
            return None
        union = 0
        if len(accepted) <= len(rejected):
            for rules in accepted:
                union |= rules
            return unmentioned | union
        for rules in rejected:
            union |= rules
        return everything & ~union

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
    accepts: list[Bits | None] = []
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
