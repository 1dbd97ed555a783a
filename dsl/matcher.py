"""The rule matcher: roaring bitmaps over a campaign's rules, plus residual checks.

Rules are numbered 0..n-1 in policy order (``TermIds`` lays out their ids in the bitmaps, the
terms). Each rule's condition is put in disjunctive normal form over *literals* that read one
feature each (a signal, or the count of an event type within a window): named segments are
opened up, negations pushed down to the literals by De Morgan (``not (a and b)`` is ``not a or
not b``), and ORs spread into terms, at most MAX_OR_TERMS per rule. A rule split into several
terms holds when any of them holds (its extra terms map back to it after matching). Within a
term, the literals on one feature are answered by the index; a literal it cannot answer (an OR
of more terms than that, a list condition past MAX_LIST_SLOTS lookups) becomes a residual
check, compiled to one Python function (dsl/condition_code.py) shared by every term with the
same check, and run only for the terms that survive the index.

Per feature the index holds, for every value the rules mention (strings, booleans), every
numeric bucket between the range end points the rules use, plus "some other value" and
"missing", the bitmap of rules that accept it, as DESIGN.md describes:
"rules that accept the value merged with the rules that do not mention the attribute". These
bitmaps are dense, so roaring keeps them as bitset containers (built with ``optimize=False``:
no run containers, which intersect several times slower) and a match, the intersection of one
bitmap per feature or group of features (a dozen or so, whatever the rule count), runs word by
word in CRoaring, into a bitmap of the request's own (``Match``: the first AND makes it, the
rest run in place). List signals are looked up per element the request's list holds; the
behaviour features of one event type sit behind a gate that skips every count when the user
has no such event in the longest window. Nothing on the request path iterates a bitmap in
Python: the first pinning rule is ``max()`` (see ``TermIds``), the actions are ``intersect``
and ``intersection_cardinality``; only the residual checks list their few surviving terms.

The bucket tables are filled by evaluating each distinct group of literals (terms that share
one share the work) on one representative value per bucket, with the compiled closures of
conditions.py, so the index cannot disagree with them.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations_with_replacement, product
from math import comb
from types import MappingProxyType
from typing import Any, Final, Literal

from pyroaring import BitMap, FrozenBitMap

from slotwise.dsl import ast
from slotwise.dsl.condition_code import compile_code
from slotwise.dsl.conditions import (
    MISSING,
    Feature,
    Predicate,
    atoms,
    compile_condition,
    conjuncts,
    feature_of,
    structure,
)
from slotwise.types import Context, NoHistory

FeatureKind = Literal["discrete", "numeric", "list"]
_OTHER = "\x00another value"  # equal to no literal a policy can write


Bits = FrozenBitMap
"""A set of term ids: an immutable roaring bitmap, shared by any number of requests.

Commit 3f0aa3d used Python ints as bit sets instead. They are faster when a pin settles every
slot (pyroaring spends ~0.3 us of call and object overhead per operation: eligible() p50 15 us
on ints, 23 us here, at 100,000 rules) but slower when boosts must be counted (no hardware
popcount in CPython: 49 us against 31 us), and roaring needs no second representation; see
docs/benchmarks.md, "Policy matching"."""

EMPTY: Bits = FrozenBitMap()

Match = BitMap
"""One request's match: a mutable bitmap made for that request alone and then only read.
The ANDs after the first run in place (``&=``), which allocates no 8 KiB container and no
Python object per operand: 11 ANDs took 6.3 us as ``a & b`` and 3.9 us as ``&=`` at 10,000
rules (docs/benchmarks.md, "The matcher's targets, third pass")."""


def bits_of(ids: Iterable[int]) -> Bits:
    """The set of the given ids (duplicates allowed), without run containers."""
    return FrozenBitMap(sorted(set(ids)), optimize=False)


def _union(sets: Sequence[Bits]) -> Bits:
    if not sets:
        return EMPTY
    return sets[0].union(*sets[1:]) if len(sets) > 1 else sets[0]


class RuleIndex:
    """Matches a request against n rules: index lookups, one intersection, residual checks."""

    __slots__ = (
        "_accepted",
        "_all",
        "_checks",
        "_extras",
        "_features",
        "first_extra",
        "_layers",
        "_lists",
        "_padding",
        "_residual_ids",
        "_residuals",
        "_seed",
        "_several",
        "extras",
        "ids",
        "rule_terms",
        "size",
        "stats",
    )

    def __init__(
        self,
        ids: TermIds,
        terms: Bits,
        features: Sequence[_Lookup],
        lists: Sequence[_ListLookup],
        residuals: Mapping[int, int],
        checks: Sequence[Predicate],
        stats: IndexStats,
        extras: Mapping[int, tuple[int, ...]] = MappingProxyType({}),
    ) -> None:
        self.ids = ids
        self.size = ids.size
        self._all = terms  # every term, with the padding
        self._seed = BitMap(terms, optimize=False)  # never changed: each match starts as a copy
        self._padding = len(ids.padding())
        self._features = tuple(features)
        # behaviour and list lookups AND several sets into the match themselves (``narrow``)
        several = (_Behaviour, _ListLookup)
        self._accepted = tuple(
            f.lookup if isinstance(f, _Group) else f.accepted
            for f in features
            if not isinstance(f, several)
        )
        self._several = tuple(f.narrow for f in features if isinstance(f, several))
        self._lists = tuple(lists)
        self._residuals = dict(residuals)  # term -> the number of its check
        self._checks = tuple(checks)
        self._residual_ids = bits_of(residuals)
        self.rule_terms = bits_of(ids.term(rule) for rule in range(ids.size))
        split_terms = [ids.term(rule) for rule in range(ids.size) if ids.term(rule) < ids.split_end]
        # OR terms: each layer's ids, and the shift that maps them back to their rules' terms
        self._layers = tuple(
            (bits_of(t + shift for t in split_terms), -shift) for shift in ids.shifts
        )
        self._extras = _union([layer for layer, _ in self._layers])
        self.first_extra = self._extras.min() if self._extras else ids.end
        # a split rule's term -> its extra terms
        self.extras: Mapping[int, tuple[int, ...]] = MappingProxyType(dict(extras))
        self.stats = stats

    def match(self, ctx: Context) -> Match:
        """The terms (``ids``) of the rules whose condition holds for ctx, plus the padding
        and any OR terms that held (``ids.rules_of`` lists the rules, ``count`` counts them).
        """
        return self.fold(self.match_terms(ctx))

    def match_terms(self, ctx: Context) -> Match:
        """The terms that hold for ctx, each split rule's extra terms not yet mapped back to
        its own (``fold``): what pins, excludes and prefers read, whose bitmaps list a split
        rule's extra terms too (only counting needs one term per rule)."""
        # the request's own bitmap, then ANDed in place: every operand and result is a bitset
        # per chunk (padding, TermIds), so the order of the ANDs does not change their cost
        matched: Match | None = None
        for accepted_by in self._accepted:
            accepted = accepted_by(ctx)
            if accepted is not None:
                if matched is None:
                    matched = self._seed & accepted
                else:
                    matched &= accepted
        if matched is None:
            matched = self._seed & self._all
        for narrow in self._several:
            narrow(matched, ctx)
        if len(matched) == self._padding:  # no rule left
            return matched
        for lookup in self._lists:
            # a few terms each: clearing their bits, where ANDing their complement would read
            # a second whole bitmap
            for barred in lookup.barred(ctx):
                matched -= barred
        if self._residuals:
            survivors = matched & self._residual_ids
            if survivors:
                residuals, checks = self._residuals, self._checks
                # the few rules left with a residual check: each distinct check runs once
                held: dict[int, bool] = {}
                failed = []
                for term in survivors.to_array():
                    number = residuals[term]
                    result = held.get(number)
                    if result is None:
                        result = held[number] = checks[number](ctx)
                    if not result:
                        failed.append(term)
                if failed:
                    matched -= FrozenBitMap(failed)
        return matched

    def fold(self, matched: Match) -> Match:
        """``match_terms`` with every extra term that held adding its rule's term, in place
        (the same bitmap, returned): what pins, excludes and prefers read gives the same
        outcome either way, as their bitmaps hold every term of a split rule."""
        if self._layers:
            # OR terms to their rules' terms: one shift per layer, in C; the extra terms that
            # held are few (no padding), so only the final OR touches the whole match
            extras = matched & self._extras
            if extras:
                if len(self._layers) == 1:
                    matched |= extras.shift(self._layers[0][1])
                else:
                    for layer, shift in self._layers:
                        matched |= (extras & layer).shift(shift)
        return matched

    def count(self, matched: Match) -> int:
        """How many rules a ``match`` result holds."""
        return matched.intersection_cardinality(self.rule_terms)


CHUNK = 1 << 16  # the ids one roaring container holds
PADDING = 4097  # one more than a container keeps as a sorted array
PER_CHUNK = CHUNK - PADDING


def _term(position: int) -> int:
    """The id of the term at ``position`` (0, 1, ...): past the padding of its chunk."""
    return (position // PER_CHUNK << 16) + PADDING + position % PER_CHUNK


def _position(term: int) -> int:
    return (term >> 16) * PER_CHUNK + (term & 0xFFFF) - PADDING


@dataclass(frozen=True, slots=True)
class TermIds:
    """Where rules live in the bitmaps' id space.

    Padding: every 65,536-id chunk (one roaring container) starts with PADDING ids that are in
    every accepting bitmap and in no action bitmap. Roaring keeps a container with at most
    4,096 ids as a sorted array; the ~6% of rules a request matches would be one, and CRoaring
    would write out every surviving id (and then intersect element by element): 21 of 36 us
    per match at 100,000 rules. With the padding every running intersection stays a bitset
    container, ANDed word by word (6 us). The padding never reaches an outcome: pins, actions
    and residual checks are bitmaps of rule terms, and ``rules_of`` skips it.

    Rule positions: the ``split`` rules split at an OR into several terms take positions
    split-1..0, the other rules n-1..split, each group in policy order, reversed: the first
    rule in policy order among a set of one group is its highest id, which roaring's ``max()``
    reads in constant time from the last container. Position p is term ``_term(p)``.

    OR layers: the j-th extra term of the split rule with term t is ``t + shifts[j - 1]``.
    A layer takes as many ids as there are split rules (not n), after the rules, in the free
    tail of their last chunk when it fits, and maps back to its rules with one ``shift``.
    """

    size: int
    split: int = 0
    rules: tuple[int, ...] = ()  # position -> rule, when some rules are split
    positions: tuple[int, ...] = ()  # rule -> position, when some rules are split
    shifts: tuple[int, ...] = ()  # per OR layer: extra term = the rule's term + shift

    def term(self, rule: int) -> int:
        return _term(self.positions[rule] if self.split else self.size - 1 - rule)

    def rule_of(self, term: int) -> int:
        position = _position(term)
        return self.rules[position] if self.split else self.size - 1 - position

    def extra(self, layer: int, term: int) -> int:
        """The id of a split rule's ``layer``-th extra term (layer 1, 2, ...)."""
        return term + self.shifts[layer - 1]

    @property
    def split_end(self) -> int:
        """Terms below this id belong to split rules."""
        return _term(self.split - 1) + 1 if self.split else 0

    @property
    def end(self) -> int:
        """One past the highest id a term of this layout can have."""
        ends = [_term(self.size - 1) + 1 if self.size else 0]
        ends += [shift + self.split_end for shift in self.shifts]
        return max(ends)

    def padding(self) -> list[int]:
        """The padding ids of every chunk that holds terms."""
        return [
            i for c in range(-(-self.end // CHUNK)) for i in range(c << 16, (c << 16) + PADDING)
        ]

    def rules_of(self, matched: Iterable[int]) -> list[int]:
        """The rules (policy order numbers) with a term in ``matched``, extra terms included,
        ascending; padding skipped (for names and tests, not for the request path)."""
        size, rule_of = self.size, self.rule_of
        found: set[int] = set()
        for term in matched:
            if term & 0xFFFF < PADDING:
                continue
            if _position(term) < size:
                found.add(rule_of(term))
            else:
                found.update(rule_of(first) for first in self._firsts_of(term))
        return sorted(found)

    def _firsts_of(self, extra: int) -> list[int]:
        """The split rule's term an extra term belongs to (the layers' ids do not overlap)."""
        first, end = _term(0), self.split_end
        return [
            term
            for shift in self.shifts
            if first <= (term := extra - shift) < end and term & 0xFFFF >= PADDING
        ][:1]


def term_ids(size: int, split: Sequence[int] = (), layers: int = 0) -> TermIds:
    """The id space of ``size`` rules of which the rules ``split`` (ascending) are split into
    at most ``layers`` extra terms each."""
    if not split:
        return TermIds(size)
    chosen = set(split)
    positions = [0] * size
    for number, rule in enumerate(split):
        positions[rule] = len(split) - 1 - number
    others = [rule for rule in range(size) if rule not in chosen]
    for number, rule in enumerate(others):
        positions[rule] = size - 1 - number
    rules = [0] * size
    for rule, position in enumerate(positions):
        rules[position] = rule
    count = len(split)
    cursor = _term(size - 1) + 1
    shifts: list[int] = []
    for _ in range(layers):
        if count <= PER_CHUNK:
            # the split rules are ids PADDING..PADDING+count-1: one run, shifted as a whole
            if cursor & 0xFFFF < PADDING:
                cursor = (cursor >> 16 << 16) + PADDING
            if (cursor & 0xFFFF) + count > CHUNK:
                cursor = ((cursor >> 16) + 1 << 16) + PADDING
            shifts.append(cursor - PADDING)
            cursor += count
        else:  # whole chunks, with the padding where the split rules have it
            start = -(-cursor // CHUNK) * CHUNK
            shifts.append(start)
            cursor = start + _term(count - 1) + 1
    return TermIds(size, count, tuple(rules), tuple(positions), tuple(shifts))


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

    __slots__ = ("missing", "name", "other", "strings", "table")

    def __init__(
        self, name: str, table: dict[tuple[bool, Any], int], accepts: list[Bits | None]
    ) -> None:
        super().__init__(accepts)
        self.name, self.table = name, table
        self.other, self.missing = len(table), len(table) + 1
        # the usual case, a string signal: its value is the key, no (is_bool, value) pair
        self.strings = {value: bucket for (_, value), bucket in table.items()}
        if not all(type(value) is str for value in self.strings):
            self.strings = {}

    def bucket(self, ctx: Context) -> int:
        value = ctx.signals.get(self.name, MISSING)
        if value is MISSING:
            return self.missing
        if value.__class__ is str and (self.strings or not self.table):
            return self.strings.get(value, self.other)
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
        return self.bucket_of(ctx.history.count(self.event, ctx.now - self.seconds))

    def zero_bucket(self) -> int:
        return self.bucket_of(0)

    def bucket_of(self, value: int) -> int:
        points = self.points
        i = bisect_left(points, value)
        return 2 * i + 1 if i < len(points) and points[i] == value else 2 * i


class _Group(_Lookup):
    """Several features looked up together: one precomputed bitmap per combination of their
    buckets, so a request pays one bitmap intersection for the group instead of one per
    feature."""

    __slots__ = (
        "bucket",
        "buckets",
        "by_string",
        "lookup",
        "members",
        "missing",
        "name",
        "other",
        "points",
        "table",
    )

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
        # a group of one feature answers without calling its bucketer (``lookup``)
        self.lookup: Callable[[Context], Bits | None] = self.accepted
        one = members[0]
        self.name, self.points = getattr(one, "name", ""), getattr(one, "points", [])
        self.other = self.missing = 0
        self.by_string: dict[str, Bits | None] = {}
        self.bucket = one.bucket
        if len(members) == 1 and isinstance(one, _DiscreteBucketer | _NumericBucketer):
            self.other, self.missing = one.other, one.missing
            if isinstance(one, _NumericBucketer):
                self.lookup = self._one_numeric
            elif one.strings or not one.table:
                self.by_string = {value: table[bucket] for value, bucket in one.strings.items()}
                self.lookup = self._one_discrete

    def accepted(self, ctx: Context) -> Bits | None:
        buckets = self.buckets
        if len(buckets) == 1:
            return self.table[buckets[0][0](ctx)]
        index = 0
        for bucket, stride in buckets:
            index += bucket(ctx) * stride
        return self.table[index]

    def _one_discrete(self, ctx: Context) -> Bits | None:
        """``accepted`` for one string feature: the value's set at once."""
        value = ctx.signals.get(self.name, MISSING)
        if value.__class__ is str:
            return self.by_string.get(value, self.table[self.other])
        return self.table[self.bucket(ctx)]

    def _one_numeric(self, ctx: Context) -> Bits | None:
        """``accepted`` for one numeric feature, ``_NumericBucketer.bucket`` inline."""
        value = ctx.signals.get(self.name, MISSING)
        if (value.__class__ is int or value.__class__ is float) and value == value:
            points = self.points
            i = bisect_left(points, value)
            if i < len(points) and points[i] == value:
                return self.table[2 * i + 1]
            return self.table[2 * i]
        return self.table[self.missing if value is MISSING else self.other]


class _EventGate:
    """The behaviour features of one event type (``event X within W``, ``count of X within
    W``): when the user has no such event within the longest window, every count is 0 and the
    accepted terms are one precomputed set (``zero``); otherwise only the windows that reach
    back to the user's last such event ask the history for a count. Most requests have no
    recent event of most types, and each count is a call into the history.

    Counts grow with the window, so the combinations a user can have are few (5 windows with
    thresholds up to 5: 462): each one's accepted terms are precomputed (``by_counts``, keyed
    by the counts capped past the highest threshold), one set per event type instead of one
    per group of windows. Past MAX_COUNT_CELLS combinations, the windows are grouped as the
    signals are (``plans``)."""

    __slots__ = (
        "by_counts",
        "event",
        "members",
        "plans",
        "quiet_key",
        "seconds",
        "windows",
        "zero",
    )

    def __init__(self, event: str, members: Sequence[_CountBucketer], budget: list[float]) -> None:
        self.event = event
        self.members = tuple(sorted(members, key=lambda m: m.seconds))
        # per window: its length and the count past which nothing changes
        self.windows = tuple((m.seconds, int(max(m.points, default=0)) + 1) for m in self.members)
        self.seconds = self.windows[-1][0]
        self.by_counts = _count_table(self.members, [cap for _, cap in self.windows], budget)
        groups = [] if self.by_counts is not None else list(_groups(self.members, budget))
        # per group: its table, and per member its window, bucketing, zero bucket and stride
        self.plans = tuple(
            (
                group.table,
                tuple(
                    (m.seconds, m.bucket_of, m.zero_bucket(), stride)
                    for m, stride in group.members
                    if isinstance(m, _CountBucketer)
                ),
            )
            for group in groups
        )
        self.quiet_key = (0,) * len(self.members)
        self.zero = _cell(self.members, self.quiet_key)

    def key(self, ctx: Context) -> tuple[int, ...]:
        """The user's capped counts per window (all 0 without a recent event): a key of
        ``by_counts``."""
        last = ctx.history.last(self.event)
        if last is None or last < ctx.now - self.seconds:
            return self.quiet_key
        return self._counts(ctx, last)

    def _counts(self, ctx: Context, last: float) -> tuple[int, ...]:
        history, now, event = ctx.history, ctx.now, self.event
        # the same arithmetic as the count's own `since`: nothing at or after it, count 0
        return tuple(
            [
                0 if last < (since := now - seconds) else min(history.count(event, since), cap)
                for seconds, cap in self.windows
            ]
        )

    def counted(self, ctx: Context, last: float) -> Bits | None:
        """The accepted terms for a user whose last event of this type was at ``last``."""
        history, now, event = ctx.history, ctx.now, self.event
        by_counts = self.by_counts
        if by_counts is not None:
            # ``_counts`` inline
            key = tuple(
                [
                    0 if last < (since := now - seconds) else min(history.count(event, since), cap)
                    for seconds, cap in self.windows
                ]
            )
            found = by_counts.get(key, _NONE)
            if found is not _NONE:
                return found  # type: ignore[return-value]
            return _cell(self.members, key)  # a history whose counts do not grow
        result: Bits | None = None
        for table, members in self.plans:
            index = 0
            for seconds, bucket_of, zero, stride in members:
                since = now - seconds
                index += (zero if last < since else bucket_of(history.count(event, since))) * stride
            cell = table[index]
            if cell is not None:
                result = cell if result is None else result & cell
        return result


MAX_COUNT_CELLS = 4096
_NONE: Final = object()  # not in a table (a table's value may be None: every term accepted)


def _cell(members: Sequence[_CountBucketer], counts: Sequence[int]) -> Bits | None:
    """The terms the windows accept for these counts."""
    return _intersection(m.accepts[m.bucket_of(c)] for m, c in zip(members, counts, strict=True))


def _count_table(
    members: Sequence[_CountBucketer], caps: list[int], budget: list[float]
) -> dict[tuple[int, ...], Bits | None] | None:
    """Every combination of counts a user can have (non-decreasing with the window, capped),
    with its accepted terms; None when there are too many for the table or the budget."""
    top = max(caps)
    if comb(top + len(caps), len(caps)) > MAX_COUNT_CELLS:
        return None
    by_buckets: dict[tuple[int, ...], Bits | None] = {}
    table: dict[tuple[int, ...], Bits | None] = {}
    for counts in combinations_with_replacement(range(top + 1), len(caps)):
        key = tuple(min(c, cap) for c, cap in zip(counts, caps, strict=True))
        buckets = tuple(m.bucket_of(c) for m, c in zip(members, key, strict=True))
        if buckets not in by_buckets:
            by_buckets[buckets] = _cell(members, key)
        table[key] = by_buckets[buckets]
    if len(by_buckets) > budget[0]:
        return None
    budget[0] -= len(by_buckets)
    return table


class _Behaviour(_Lookup):
    """Several event types' gates as one lookup: the accepted terms of every combination of
    quiet types (no event in their longest window) are precomputed, so a user with few kinds of
    recent events costs one set plus one per type they have."""

    __slots__ = ("all_quiet", "events", "quiet")

    def __init__(self, gates: Sequence[_EventGate]) -> None:
        self.events = tuple((gate.event, gate.seconds, gate) for gate in gates)
        self.quiet = [
            _intersection(gate.zero for bit, gate in enumerate(gates) if mask >> bit & 1)
            for mask in range(1 << len(gates))
        ]
        every = self.quiet[-1]
        self.all_quiet = [every] if every is not None else []

    def narrow(self, matched: Match, ctx: Context) -> None:
        """AND the accepted terms into the request's match, in place: the quiet types' set,
        and each recent type's counted set."""
        history, now = ctx.history, ctx.now
        if history.__class__ is NoHistory:  # no consent: every event type is quiet
            for accepted in self.all_quiet:
                matched &= accepted
            return
        mask = 0
        for bit, (event, seconds, gate) in enumerate(self.events):
            last = history.last(event)
            if last is None or last < now - seconds:
                mask |= 1 << bit
            else:
                counted = gate.counted(ctx, last)
                if counted is not None:
                    matched &= counted
        quiet = self.quiet[mask]
        if quiet is not None:
            matched &= quiet


MAX_QUIET_GATES = 6  # 64 precomputed sets per behaviour lookup


class _CountCombinations(_Lookup):
    """Event types with few count combinations each (one or two windows, low thresholds),
    looked up together: every combination of theirs is one precomputed set, so they cost one
    AND between them, as signal features grouped together do."""

    __slots__ = ("gates", "table")

    def __init__(self, gates: Sequence[_EventGate]) -> None:
        self.gates = tuple(gates)
        tables = [gate.by_counts or {} for gate in gates]
        self.table = {
            keys: _intersection(table[key] for table, key in zip(tables, keys, strict=True))
            for keys in product(*(sorted(table) for table in tables))
        }

    def accepted(self, ctx: Context) -> Bits | None:
        keys = tuple([gate.key(ctx) for gate in self.gates])
        if keys in self.table:
            return self.table[keys]
        # a history whose counts do not grow: no precomputed set
        return _intersection(
            _cell(gate.members, key) for gate, key in zip(self.gates, keys, strict=True)
        )


def _intersection(sets: Iterable[Bits | None]) -> Bits | None:
    result: Bits | None = None
    for bits in sets:
        if bits is not None:
            result = bits if result is None else result & bits
    return result


class _ListLookup(_Lookup):
    """``has any`` / ``not has any`` over a list signal. Per required group ("slot",
    ``_Builder._add_list``), accepted: the terms that need no element of that slot, plus those
    needing one the request's list has (precomputed per element, so a one-element list costs
    nothing and each further element one union of a few terms); the slots' sets are ANDed into
    the match in place (``operands``), the list read once for all of them. Terms forbidding an
    element the list has (a few each) are subtracted after the intersection (``barred``)."""

    __slots__ = ("forbidding", "name", "slots", "unconstrained")

    def __init__(
        self,
        name: str,
        everything: Bits,
        slots: Sequence[dict[str, Bits]],
        forbidding: dict[str, Bits],
    ) -> None:
        self.name = name
        self.forbidding = forbidding
        # per slot: the sets needing each element, the set with each element, and without
        self.slots = []
        for needing in slots:
            unconstrained = everything - _union(list(needing.values()))
            with_element = {e: unconstrained | rules for e, rules in needing.items()}
            self.slots.append((needing, with_element, unconstrained))
        # a request without the list: one set for every slot (half the requests, in the
        # realistic workload, have no segments)
        none_met = _intersection(u for _, _, u in self.slots)
        self.unconstrained = [none_met] if none_met is not None else []

    def narrow(self, matched: Match, ctx: Context) -> None:
        """AND the accepted terms of every slot into the request's match, in place."""
        value = ctx.signals.get(self.name)
        if value.__class__ is not tuple:
            for unconstrained in self.unconstrained:
                matched &= unconstrained
            return
        for needing, with_element, unconstrained in self.slots:
            met = [e for e in value if e in needing]
            if not met:
                matched &= unconstrained
            elif len(met) == 1:
                matched &= with_element[met[0]]
            else:
                # match & (unconstrained | needing) as (match & unconstrained) | (match &
                # needing): the terms needing an element are few (array containers), so no
                # dense bitmap is made; binary operators: pyroaring's n-ary methods are slower
                more = needing[met[0]]
                for element in met[1:]:
                    more = more | needing[element]
                kept = matched & more
                matched &= unconstrained
                matched |= kept

    def barred(self, ctx: Context) -> list[Bits]:
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

    # Any, not int: the bucketer probes between integer counts with a float (a compiled
    # `-> int` would reject it at run time, where `type: ignore` hid it from mypy only)
    def count(self, event: str, since: float) -> Any:
        return self._count

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
    j-th further one gets ``mapping.extra(j, term)`` and maps back to it after matching
    (see TermIds).
    """
    size = len(conditions)
    builder = _Builder(segments, kind_of)
    split_terms = [_terms(c, builder) for c in conditions]
    layers = max((len(terms) - 1 for terms in split_terms), default=0)
    split = [rule for rule, terms in enumerate(split_terms) if len(terms) > 1]
    mapping = term_ids(size, split, layers)
    ids: list[int] = []
    extras: dict[int, tuple[int, ...]] = {}
    for rule, terms in enumerate(split_terms):
        first = mapping.term(rule)
        builder.add(first, terms[0])
        ids.append(first)
        for layer, extra in enumerate(terms[1:], start=1):
            term = mapping.extra(layer, first)
            builder.add(term, extra)
            ids.append(term)
        if len(terms) > 1:
            extras[first] = tuple(mapping.extra(j, first) for j in range(1, len(terms)))
    total = len(ids)
    everything = bits_of([*mapping.padding(), *ids])
    bucketers = [
        _build_bucketer(feature, by_key, builder.literals[feature], segments, kind_of, everything)
        for feature, by_key in builder.groups.items()
    ]
    buckets = sum(len(b.accepts) for b in bucketers)
    lookups: list[_Lookup] = _lookups(bucketers, everything)
    lists: list[_ListLookup] = []
    for name in sorted(builder.lists_any.keys() | builder.lists_none.keys()):
        forbidding = {e: bits_of(r) for e, r in builder.lists_none[name].items()}
        # a slot needing no element accepts every term: no AND
        slots = [
            {e: bits_of(r) for e, r in required.items()} for required in builder.lists_any[name]
        ]
        slots = [needing for needing in slots if needing]
        lookup = _ListLookup(name, everything, slots, forbidding)
        if slots:
            lookups.append(lookup)
        if forbidding:
            lists.append(lookup)
        buckets += sum(len(needing) for needing in slots) + len(forbidding)
    # what the index cannot answer: one compiled function per distinct condition, shared by
    # the terms that need it
    residuals: dict[int, int] = {}
    checks: list[Predicate] = []
    numbers: dict[object, int] = {}
    for term, parts in builder.residual_parts.items():
        if parts:
            condition = parts[0] if len(parts) == 1 else ast.And(ast.NO_SPAN, tuple(parts))
            key = structure(condition)
            if key not in numbers:
                numbers[key] = len(checks)
                checks.append(compile_code(condition, segments))
            residuals[term] = numbers[key]
    stats = IndexStats(size, total, len(lookups), buckets, len(residuals))
    return RuleIndex(mapping, everything, lookups, lists, residuals, checks, stats, extras)


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
        # list signal -> one table per required group ("slot"): element -> terms needing it
        self.lists_any: dict[str, list[dict[str, list[int]]]] = defaultdict(list)
        self.lists_none: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
        self.residual_parts: dict[int, list[ast.Condition]] = defaultdict(list)
        self.literals: dict[Feature, list[ast.Condition]] = defaultdict(list)
        self._features: dict[int, tuple[ast.Condition, Feature | None]] = {}

    def single_feature(self, part: ast.Condition) -> Feature | None:
        """The one feature an indexable conjunct reads, or None (asked again for the same
        node while splitting and adding a rule: remembered by identity)."""
        known = self._features.get(id(part))
        if known is not None and known[0] is part:
            return known[1]
        feature = self._single_feature(part)
        self._features[id(part)] = (part, feature)
        return feature

    def _single_feature(self, part: ast.Condition) -> Feature | None:
        found = list(atoms(part, self.segments))
        features = {_counted(feature_of(a)) for a in found}
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
        """Index a term's conditions on one list signal: each positive group it requires (an
        element of ``has any``, every element of ``has all``, ``"x" in``) takes the next slot
        (one more lookup for the signal, up to MAX_LIST_SLOTS); the elements of negated
        ``has any`` / ``"x" in`` are forbidden. The rest is checked on the survivors."""
        slot = 0
        for part in group:
            negated = isinstance(part, ast.Negation)
            inner = part.operand if isinstance(part, ast.Negation) else part
            elements = _list_elements(inner)
            if not elements:
                self.residual_parts[term].append(part)
            elif negated:
                if isinstance(inner, ast.Has) and inner.quantifier == "all" and len(elements) > 1:
                    self.residual_parts[term].append(part)  # an OR of absences: see _dnf
                    continue
                for element in elements:
                    self.lists_none[name][element].append(term)
            else:
                any_of = not (isinstance(inner, ast.Has) and inner.quantifier == "all")
                required = [elements] if any_of else [(e,) for e in elements]
                if slot + len(required) > MAX_LIST_SLOTS:
                    self.residual_parts[term].append(part)
                    continue
                tables = self.lists_any[name]
                for one_of in required:
                    while len(tables) <= slot:
                        tables.append(defaultdict(list))
                    for element in one_of:
                        tables[slot][element].append(term)
                    slot += 1


MAX_LIST_SLOTS = 4


def _list_elements(part: ast.Condition) -> tuple[str, ...]:
    """The elements a ``has`` / ``"x" in`` names; () when it is not one (or names none)."""
    if isinstance(part, ast.Contains):
        return (part.value,)
    if isinstance(part, ast.Has) and all(type(v) is str for v in part.values):
        return tuple(str(v) for v in part.values)
    return ()


def _terms(cond: ast.Condition, builder: _Builder) -> list[list[ast.Condition]]:
    """The rule as a disjunction of terms, each a list of conjuncts (at most MAX_OR_TERMS
    terms): every top-level conjunct in disjunctive normal form over single-feature literals
    when that stays small, else kept whole (a residual check)."""
    terms: list[list[ast.Condition]] = [[]]
    for part in conjuncts(cond, builder.segments):
        found = _dnf(part, False, builder)
        if found is not None and len(terms) * len(found) <= MAX_OR_TERMS:
            terms = [term + more for term in terms for more in found]
        else:
            for term in terms:
                term.append(part)
    return terms


def _dnf(cond: ast.Condition, negated: bool, builder: _Builder) -> list[list[ast.Condition]] | None:
    """``cond`` (or ``not cond``) as an OR of ANDs of literals, each reading one feature:
    segments opened up, negations pushed down to the literals (De Morgan; every predicate is
    true or false, a missing signal included, so the laws hold), ORs spread over the ANDs.
    None when that takes more than MAX_OR_TERMS terms. A literal the index cannot answer is
    kept as it is (a residual check of its term)."""
    if negated and isinstance(cond, ast.Has) and cond.quantifier == "all" and len(cond.values) > 1:
        # not (has all [a, b]): a or b absent, each an indexed `not "a" in`
        if not _list_elements(cond):
            return [[ast.Negation(ast.NO_SPAN, cond)]]
        return [
            [ast.Negation(ast.NO_SPAN, ast.Contains(ast.NO_SPAN, str(v), cond.signal))]
            for v in cond.values
        ]
    literal = ast.Negation(ast.NO_SPAN, cond) if negated else cond
    if builder.single_feature(literal) is not None:
        return [[literal]]
    if isinstance(cond, ast.Negation):
        return _dnf(cond.operand, not negated, builder)
    if isinstance(cond, ast.SegmentRef):
        return _dnf(builder.segments[cond.name].condition, negated, builder)
    if not isinstance(cond, ast.And | ast.Or):
        return [[literal]]
    branches = [_dnf(operand, negated, builder) for operand in cond.operands]
    if any(branch is None for branch in branches):
        return None
    if isinstance(cond, ast.And) != negated:  # every operand must hold
        terms: list[list[ast.Condition]] = [[]]
        for branch in branches:
            assert branch is not None
            terms = [term + more for term in terms for more in branch]
            if len(terms) > MAX_OR_TERMS:
                return None
        return terms
    terms = [term for branch in branches if branch is not None for term in branch]
    return terms if len(terms) <= MAX_OR_TERMS else None


def _counted(feature: Feature) -> Feature:
    """``event X within W`` reads the count of X within W (it is ``count ... >= 1``): one
    feature, one call into the history, for both forms."""
    if feature[0] == "event":
        return ("count", feature[1], feature[2])  # type: ignore[misc]
    return feature


def _kind(feature: Feature, kind_of: Callable[[str], FeatureKind]) -> str:
    return kind_of(feature[1])


_DISCRETE_ATOMS = (ast.Member, ast.Flag)
_NUMERIC_ATOMS = (ast.Member, ast.InRange)
_BEHAVIOUR_ATOMS = (ast.EventCount, ast.EventWithin)


def _indexable(
    part: ast.Condition, found: list[ast.Condition], kind: str, feature: Feature
) -> bool:
    if feature[0] == "count":
        return all(isinstance(a, _BEHAVIOUR_ATOMS) for a in found)
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


MAX_GROUP_CELLS = 1024
GROUP_MEMORY_BYTES = 48 * 1024 * 1024


def _lookups(bucketers: list[_Bucketer], everything: Bits) -> list[_Lookup]:
    """The signal features packed into groups; the behaviour features grouped per event type
    behind a gate (``_EventGate``)."""
    # a dense bitmap: one 8 KiB bitset container per 65,536 ids
    cell_bytes = (everything.max() + 1 if everything else 1) / 8 + 32
    budget = [GROUP_MEMORY_BYTES / cell_bytes]
    per_event: dict[str, list[_CountBucketer]] = defaultdict(list)
    others: list[_Bucketer] = []
    for bucketer in bucketers:
        if isinstance(bucketer, _CountBucketer):
            per_event[bucketer.event].append(bucketer)
        else:
            others.append(bucketer)
    lookups: list[_Lookup] = list(_groups(others, budget))
    gates = [_EventGate(event, members, budget) for event, members in sorted(per_event.items())]
    # event types with small count tables together (fewest combinations first), as signal
    # features are grouped; the rest behind the quiet-types lookup
    small = sorted(
        (g for g in gates if g.by_counts is not None), key=lambda g: len(g.by_counts or {})
    )
    together: list[_EventGate] = []
    cells = 1
    for gate in small:
        size = len(gate.by_counts or {})
        if cells * size > min(MAX_GROUP_CELLS, budget[0]):
            break
        together.append(gate)
        cells *= size
    if len(together) > 1:
        lookups.append(_CountCombinations(together))
        budget[0] -= cells
        gates = [g for g in gates if g not in together]
    for start in range(0, len(gates), MAX_QUIET_GATES):
        lookups.append(_Behaviour(gates[start : start + MAX_QUIET_GATES]))
    return lookups


def _groups(bucketers: Sequence[_Bucketer], budget: list[float]) -> Iterator[_Group]:
    """Pack features into groups whose bucket combinations stay few (fewest buckets first),
    within a memory budget (in cells, shared by every call) for the combined sets."""
    group: list[_Bucketer] = []
    cells = 1
    for bucketer in sorted(bucketers, key=lambda b: len(b.accepts)):
        size = len(bucketer.accepts)
        if group and (cells * size > MAX_GROUP_CELLS or cells * size > budget[0]):
            yield _Group(group)
            budget[0] -= cells if len(group) > 1 else 0
            group, cells = [], 1
        group.append(bucketer)
        cells *= size
    if group:
        yield _Group(group)
        budget[0] -= cells if len(group) > 1 else 0


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
    # the rejecting keys, whichever lists fewer keys (one n-ary union in CRoaring)
    unmentioned = everything - _union([rules for rules, _ in compiled])

    def accepting(ctx: Context) -> Bits | None:
        """The terms the representative ctx satisfies (None: all of them)."""
        accepted: list[Bits] = []
        rejected: list[Bits] = []
        for rules, accepts in compiled:
            (accepted if accepts(ctx) else rejected).append(rules)
        if not rejected:
            return None
        if len(accepted) <= len(rejected):
            return unmentioned.union(*accepted)
        return everything.difference(*rejected)

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
            elif isinstance(atom, ast.EventWithin):
                points.add(1.0)  # none, or at least one
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
