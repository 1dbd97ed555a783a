"""Which personalisation wins a slot location: the declared precedence, and its compile-time check.

One response may be personalised by several personalisations at once: a campaign on each ad
unit of an OpenRTB response, a hero campaign and a cart banner on one storefront page, a
campaign beside a recommendation. The proxy runs them as steps in the order of
:data:`PRECEDENCE` (within a kind, in policy order). The first to decide for an ad unit claims
the slot locations it writes there; a later one that needs a claimed location is skipped on
that unit, so two never write the same place.

``contested_locations`` finds, at compile time, the pairs that could meet that way: two
personalisations writing the same location (the same parsed location, whatever its spelling)
which could apply to the same response. Two campaigns could when their ``applies when``
conditions can both hold (:func:`slotwise.dsl.satisfiable.can_hold`: "cannot" only when sure);
offers, recommendations and re-ranks have no condition, so they always could. Each pair is a
``contested_location`` warning on the location of the one that loses, naming both and the
winner. A campaign that a trigger shows is a triggered campaign here: served only while its
trigger fires, and then before every other personalisation.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from slotwise.dsl import ast
from slotwise.dsl.errors import Diagnostic, Severity
from slotwise.dsl.location import Location, LocationError, parse_location
from slotwise.dsl.satisfiable import can_hold
from slotwise.types import SignalSchema

# The order of the proxy's personalisation steps (slotwise.proxy.personalisers runs them so).
TRIGGERED: Final = "triggered campaign"
CAMPAIGN: Final = "campaign"
OFFERS: Final = "offers"
RECOMMENDATION: Final = "recommendation"
RERANK: Final = "rerank"
PRECEDENCE: Final = (TRIGGERED, CAMPAIGN, OFFERS, RECOMMENDATION, RERANK)
_PLURAL: Final = {
    TRIGGERED: "triggered campaigns",
    CAMPAIGN: "campaigns",
    OFFERS: "offer sets",
    RECOMMENDATION: "recommendations",
    RERANK: "re-ranks",
}


@dataclass(frozen=True, slots=True)
class _Writer:
    """One personalisation writing one location."""

    kind: str
    name: str
    order: int  # position in the policy set (files in order, items in order)
    location: Location
    text: str  # the location as written
    span: ast.Span
    path: str
    applies: ast.Condition | None  # None: no condition (applies to every response)

    @property
    def label(self) -> str:
        noun = "offer set" if self.kind == OFFERS else self.kind
        return f'{noun} "{self.name}"'


def contested_locations(
    files: Sequence[ast.PolicyFile],
    segments: Mapping[str, ast.Segment],
    schema: SignalSchema,
    lines: Mapping[str, Sequence[str]],
    cache: dict[object, bool] | None = None,
) -> list[Diagnostic]:
    """A ``contested_location`` warning per pair that could write one location of a response."""
    by_location: dict[Location, list[_Writer]] = {}
    for writer in _writers(files):
        by_location.setdefault(writer.location, []).append(writer)
    found = []
    for writers in by_location.values():
        ranked = sorted(writers, key=lambda w: (PRECEDENCE.index(w.kind), w.order))
        for i, winner in enumerate(ranked):
            for loser in ranked[i + 1 :]:
                if loser.name == winner.name and loser.kind == winner.kind:
                    continue  # one campaign's own slots: not two personalisations
                if _can_meet(winner, loser, segments, schema, cache):
                    found.append(_warning(winner, loser, lines))
    return found


def _writers(files: Sequence[ast.PolicyFile]) -> Iterator[_Writer]:
    shown = {
        member.campaign
        for f in files
        for item in f.items
        if isinstance(item, ast.Trigger)
        for member in item.members
        if isinstance(member, ast.Show)
    }
    order = 0
    for f in files:
        for item in f.items:
            order += 1
            for kind, text, span, applies in _locations(item, shown):
                try:
                    location = parse_location(text)
                except LocationError:
                    continue  # a bad_location error already
                yield _Writer(kind, item.name, order, location, text, span, f.path, applies)


def _locations(
    item: ast.Item, shown: set[str]
) -> Iterator[tuple[str, str, ast.Span, ast.Condition | None]]:
    if isinstance(item, ast.Campaign):
        applies = item.first(ast.Applies)
        condition = applies.condition if applies is not None else None
        kind = TRIGGERED if item.name in shown else CAMPAIGN
        for slot in item.slots:
            yield kind, slot.location, slot.location_span, condition
    elif isinstance(item, ast.Offers):
        for member in item.members:
            if isinstance(member, ast.OfferSlot):
                yield OFFERS, member.location, member.location_span, None
    elif isinstance(item, ast.Recommend):
        yield RECOMMENDATION, item.location, item.location_span, None
    elif isinstance(item, ast.Rerank):
        yield RERANK, item.location, item.location_span, None


def _can_meet(
    first: _Writer,
    second: _Writer,
    segments: Mapping[str, ast.Segment],
    schema: SignalSchema,
    cache: dict[object, bool] | None,
) -> bool:
    conditions = tuple(w.applies for w in (first, second) if w.applies is not None)
    if not conditions:
        return True
    both = conditions[0] if len(conditions) == 1 else ast.And(ast.NO_SPAN, conditions)
    return can_hold(both, segments, schema, cache)


def _warning(winner: _Writer, loser: _Writer, lines: Mapping[str, Sequence[str]]) -> Diagnostic:
    if winner.kind == loser.kind:
        why = "the first in policy order"
    else:
        why = f"{_PLURAL[winner.kind]} come before {_PLURAL[loser.kind]}"
    message = (
        f'{loser.label} writes "{loser.text}" as {winner.label} does, and both can apply to '
        f"one response: {winner.label} wins ({why}) and {loser.label} is skipped there"
    )
    source = lines.get(loser.path, ())
    span = loser.span
    return Diagnostic(
        "contested_location",
        message,
        loser.path,
        span.line,
        span.column,
        Severity.WARNING,
        span.end_line,
        span.end_column,
        source[span.line - 1] if 0 < span.line <= len(source) else "",
        hint="write to different locations, or give the campaigns conditions that cannot both hold",
    )
