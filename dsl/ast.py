"""The policy language's syntax tree: one frozen dataclass per grammar rule of grammar.lark.

Every node carries the ``Span`` it was parsed from, so the checker, the explain trace and the
formatter can point at the source. Spans take no part in equality and hashing: two conditions
written alike anywhere are equal, which the compiler uses to share work between rules. Nodes
hold plain Python values (names as strings, numbers as int/float); nothing here imports lark.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TypeVar

_M = TypeVar("_M")
Scalar = str | int | float | bool


@dataclass(frozen=True, slots=True)
class Span:
    """A source region: 1-based line and column of the start, and of the end (exclusive)."""

    line: int
    column: int
    end_line: int
    end_column: int


NO_SPAN = Span(0, 0, 0, 0)

DURATION_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


@dataclass(frozen=True, slots=True)
class Duration:
    """``7d``, ``24h``, ``30m``: an amount of a unit (s, m, h, d, w)."""

    amount: int
    unit: str

    @property
    def seconds(self) -> float:
        return float(self.amount * DURATION_SECONDS[self.unit])

    def __str__(self) -> str:
        return f"{self.amount}{self.unit}"


@dataclass(frozen=True, slots=True)
class Percent:
    """``15%``: kept as written (15) so the formatter can print it back."""

    value: float

    @property
    def fraction(self) -> float:
        return self.value / 100.0

    def __str__(self) -> str:
        return f"{_number_text(self.value)}%"


@dataclass(frozen=True, slots=True)
class Range:
    """``18..24`` (inclusive), ``50..<100`` (half-open), ``100..`` and ``..<50`` (open)."""

    span: Span = field(compare=False)
    low: float | None
    high: float | None
    high_inclusive: bool

    def contains(self, value: float) -> bool:
        if self.low is not None and value < self.low:
            return False
        if self.high is None:
            return True
        return value <= self.high if self.high_inclusive else value < self.high

    def __str__(self) -> str:
        low = "" if self.low is None else _number_text(self.low)
        high = "" if self.high is None else _number_text(self.high)
        return f"{low}{'..' if self.high_inclusive or self.high is None else '..<'}{high}"


def _number_text(value: float) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if float(value).is_integer():
        return str(int(value))
    return repr(float(value))


def literal_text(value: Scalar) -> str:
    """A literal as the policy language writes it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        escaped = value.replace("\\", "\\\\").replace('"', '\\"')
        return '"' + escaped.replace("\n", "\\n").replace("\t", "\\t") + '"'
    return _number_text(value)


# ---------------------------------------------------------------- conditions


@dataclass(frozen=True, slots=True)
class Compare:
    """``signal OP literal`` with OP one of == != < <= > >=."""

    span: Span = field(compare=False)
    signal: str
    op: str
    value: Scalar


@dataclass(frozen=True, slots=True)
class Member:
    """``signal in [a, b]`` or ``signal not in [a, b]``."""

    span: Span = field(compare=False)
    signal: str
    negated: bool
    values: tuple[Scalar, ...]


@dataclass(frozen=True, slots=True)
class InRange:
    """``signal in 18..24`` or ``signal not in 18..24``."""

    span: Span = field(compare=False)
    signal: str
    negated: bool
    range: Range


@dataclass(frozen=True, slots=True)
class Has:
    """``list_signal has any [..]`` / ``has all [..]``."""

    span: Span = field(compare=False)
    signal: str
    quantifier: str  # "any" | "all"
    values: tuple[Scalar, ...]


@dataclass(frozen=True, slots=True)
class Contains:
    """``"loyal" in user.segments``: the same as ``has any ["loyal"]``."""

    span: Span = field(compare=False)
    value: str
    signal: str


@dataclass(frozen=True, slots=True)
class Flag:
    """A bare boolean signal: ``user.is_new``."""

    span: Span = field(compare=False)
    signal: str


@dataclass(frozen=True, slots=True)
class SegmentRef:
    """A segment's name used as a condition."""

    span: Span = field(compare=False)
    name: str


@dataclass(frozen=True, slots=True)
class EventWithin:
    """``event add_to_cart within 7d``: at least one such event in the window."""

    span: Span = field(compare=False)
    event: str
    within: Duration


@dataclass(frozen=True, slots=True)
class EventCount:
    """``count of product_view within 24h >= 3``."""

    span: Span = field(compare=False)
    event: str
    within: Duration
    op: str
    count: float


@dataclass(frozen=True, slots=True)
class Negation:
    span: Span = field(compare=False)
    operand: Condition


@dataclass(frozen=True, slots=True)
class And:
    span: Span = field(compare=False)
    operands: tuple[Condition, ...]


@dataclass(frozen=True, slots=True)
class Or:
    span: Span = field(compare=False)
    operands: tuple[Condition, ...]


Condition = (
    Compare
    | Member
    | InRange
    | Has
    | Contains
    | Flag
    | SegmentRef
    | EventWithin
    | EventCount
    | Negation
    | And
    | Or
)

# ---------------------------------------------------------------- campaigns


@dataclass(frozen=True, slots=True)
class Header:
    """``policy "name" version 1``."""

    span: Span = field(compare=False)
    name: str
    version: int


@dataclass(frozen=True, slots=True)
class Segment:
    """``segment NAME: condition``: a reusable, named condition."""

    span: Span = field(compare=False)
    name: str
    condition: Condition


@dataclass(frozen=True, slots=True)
class Applies:
    span: Span = field(compare=False)
    condition: Condition


@dataclass(frozen=True, slots=True)
class Attribute:
    span: Span = field(compare=False)
    name: str
    value: str


@dataclass(frozen=True, slots=True)
class Variant:
    """``variant NAME "value" [key: "value", ...]``."""

    span: Span = field(compare=False)
    name: str
    value: str
    attributes: tuple[Attribute, ...]


@dataclass(frozen=True, slots=True)
class Slot:
    """``slot NAME at "LOCATION" { variant ... }``, or ``slot NAME at "LOCATION" from offers
    SET [label|terms]`` (an offer creative: no variants, the offer set's chosen offer's label
    or terms is the slot's text)."""

    span: Span = field(compare=False)
    name: str
    location: str
    location_span: Span
    variants: tuple[Variant, ...]
    offers: str | None = None  # the offer set the slot takes its text from
    offers_span: Span | None = field(default=None, compare=False)
    text: str = "label"  # which text of the offer: "label" or "terms"


@dataclass(frozen=True, slots=True)
class Pin:
    span: Span = field(compare=False)
    slot: str
    variant: str


@dataclass(frozen=True, slots=True)
class Prefer:
    span: Span = field(compare=False)
    slot: str
    variants: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Exclude:
    span: Span = field(compare=False)
    slot: str
    variants: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Boost:
    span: Span = field(compare=False)
    slot: str
    variant: str
    factor: float


Action = Pin | Prefer | Exclude | Boost


@dataclass(frozen=True, slots=True)
class Rule:
    """``rule "name" when CONDITION then ACTION and ACTION ...``."""

    span: Span = field(compare=False)
    name: str
    condition: Condition
    actions: tuple[Action, ...]


@dataclass(frozen=True, slots=True)
class GoalTerm:
    span: Span = field(compare=False)
    weight: float  # the sign of a subtracted term is folded in
    metric: str


@dataclass(frozen=True, slots=True)
class Optimize:
    """``optimize clicks + 10 * conversions``."""

    span: Span = field(compare=False)
    terms: tuple[GoalTerm, ...]


@dataclass(frozen=True, slots=True)
class Explore:
    """``explore epsilon 5%``, ``explore squarecb 10``, ``explore bag 5``..."""

    span: Span = field(compare=False)
    kind: str
    parameter: float | Percent | None


@dataclass(frozen=True, slots=True)
class Holdout:
    span: Span = field(compare=False)
    percent: Percent


@dataclass(frozen=True, slots=True)
class Cap:
    """``cap 2 per 1d``: at most ``count`` shows to one user per ``per`` (campaign, trigger)."""

    span: Span = field(compare=False)
    count: int
    per: Duration


@dataclass(frozen=True, slots=True)
class Guardrail:
    """``guardrail off``, ``guardrail on`` or ``guardrail min N`` (N joined decisions)."""

    span: Span = field(compare=False)
    setting: str
    minimum: float | None = None


@dataclass(frozen=True, slots=True)
class Campaign:
    span: Span = field(compare=False)
    name: str
    members: tuple[Applies | Slot | Rule | Optimize | Explore | Holdout | Cap | Guardrail, ...]

    @property
    def slots(self) -> tuple[Slot, ...]:
        return tuple(m for m in self.members if isinstance(m, Slot))

    @property
    def rules(self) -> tuple[Rule, ...]:
        return tuple(m for m in self.members if isinstance(m, Rule))

    def first(self, kind: type[_M]) -> _M | None:
        for member in self.members:
            if isinstance(member, kind):
                return member
        return None


# ---------------------------------------------------------------- offers (arms are shared)


@dataclass(frozen=True, slots=True)
class NoOffer:
    span: Span = field(compare=False)


@dataclass(frozen=True, slots=True)
class Discount:
    span: Span = field(compare=False)
    percent: Percent


@dataclass(frozen=True, slots=True)
class FreeShipping:
    span: Span = field(compare=False)


@dataclass(frozen=True, slots=True)
class Bundle:
    span: Span = field(compare=False)
    sku: str | None


@dataclass(frozen=True, slots=True)
class Bogo:
    span: Span = field(compare=False)


Arm = NoOffer | Discount | FreeShipping | Bundle | Bogo


@dataclass(frozen=True, slots=True)
class DiscountRange:
    """``discount 5%..25% step 5%``: one discount arm per step."""

    span: Span = field(compare=False)
    low: Percent
    high: Percent
    step: Percent


@dataclass(frozen=True, slots=True)
class OfferSlot:
    span: Span = field(compare=False)
    location: str
    location_span: Span


@dataclass(frozen=True, slots=True)
class Arms:
    span: Span = field(compare=False)
    arms: tuple[Arm | DiscountRange, ...]


@dataclass(frozen=True, slots=True)
class DiscountCap:
    """``discount <= 15%`` inside a guard."""

    span: Span = field(compare=False)
    op: str
    percent: Percent


@dataclass(frozen=True, slots=True)
class ArmBan:
    """``no bogo`` inside a guard."""

    span: Span = field(compare=False)
    kind: str


@dataclass(frozen=True, slots=True)
class Guard:
    """``guard discount <= 15% when CONDITION``: limits the arms when the condition holds."""

    span: Span = field(compare=False)
    limit: DiscountCap | ArmBan
    condition: Condition | None


@dataclass(frozen=True, slots=True)
class Offers:
    span: Span = field(compare=False)
    name: str
    members: tuple[OfferSlot | Arms | Optimize | Explore | Holdout | Guard, ...]


# ---------------------------------------------------------------- triggers


@dataclass(frozen=True, slots=True)
class OnEvent:
    span: Span = field(compare=False)
    event: str


@dataclass(frozen=True, slots=True)
class UnlessEvent:
    span: Span = field(compare=False)
    event: str
    within: Duration


@dataclass(frozen=True, slots=True)
class Wait:
    span: Span = field(compare=False)
    duration: Duration


@dataclass(frozen=True, slots=True)
class Window:
    span: Span = field(compare=False)
    duration: Duration


@dataclass(frozen=True, slots=True)
class TriggerWhen:
    span: Span = field(compare=False)
    condition: Condition


@dataclass(frozen=True, slots=True)
class LadderStep:
    span: Span = field(compare=False)
    range: Range
    arm: Arm


@dataclass(frozen=True, slots=True)
class Ladder:
    """``offer by cart.value { 50..<100 => discount 10%  100.. => discount 15% }``."""

    span: Span = field(compare=False)
    signal: str
    steps: tuple[LadderStep, ...]


@dataclass(frozen=True, slots=True)
class Show:
    span: Span = field(compare=False)
    campaign: str


@dataclass(frozen=True, slots=True)
class Quiet:
    span: Span = field(compare=False)
    start: str  # "22:00"
    end: str


@dataclass(frozen=True, slots=True)
class Notify:
    span: Span = field(compare=False)
    channel: str
    template: str
    quiet: Quiet | None


@dataclass(frozen=True, slots=True)
class Trigger:
    span: Span = field(compare=False)
    name: str
    members: tuple[
        OnEvent | UnlessEvent | Wait | Window | TriggerWhen | Ladder | Show | Notify | Cap, ...
    ]


# ---------------------------------------------------------------- recommendations


@dataclass(frozen=True, slots=True)
class Trending:
    span: Span = field(compare=False)
    window: Duration


@dataclass(frozen=True, slots=True)
class LastVisit:
    span: Span = field(compare=False)
    views: int


@dataclass(frozen=True, slots=True)
class AlsoBought:
    span: Span = field(compare=False)
    signal: str


@dataclass(frozen=True, slots=True)
class AlsoViewed:
    span: Span = field(compare=False)
    signal: str


@dataclass(frozen=True, slots=True)
class Similar:
    """``similar(cart.items)``: items like these (category, brand, attributes, price)."""

    span: Span = field(compare=False)
    signal: str


@dataclass(frozen=True, slots=True)
class Hybrid:
    """``hybrid(cart.items)``: co-views, co-purchases, similarity and trending, blended."""

    span: Span = field(compare=False)
    signal: str


Strategy = Trending | LastVisit | AlsoBought | AlsoViewed | Similar | Hybrid


@dataclass(frozen=True, slots=True)
class RecUse:
    span: Span = field(compare=False)
    strategy: Strategy


@dataclass(frozen=True, slots=True)
class RecNewUsers:
    span: Span = field(compare=False)
    strategy: Strategy


@dataclass(frozen=True, slots=True)
class RecOtherwise:
    span: Span = field(compare=False)
    strategy: Strategy


@dataclass(frozen=True, slots=True)
class RecLimit:
    span: Span = field(compare=False)
    count: int


@dataclass(frozen=True, slots=True)
class RecExclude:
    span: Span = field(compare=False)
    names: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class RecDiversity:
    """``at most 2 per category``: no more than ``count`` items sharing one ``field``."""

    span: Span = field(compare=False)
    count: int
    field: str


RecMember = RecUse | RecNewUsers | RecOtherwise | RecLimit | RecExclude | RecDiversity | Holdout


@dataclass(frozen=True, slots=True)
class Recommend:
    span: Span = field(compare=False)
    name: str
    location: str
    location_span: Span
    members: tuple[RecMember, ...]
    block: bool  # written with braces


@dataclass(frozen=True, slots=True)
class Rerank:
    """``rerank NAME at "LOC" by affinity(clicks: category, brand) [limit N] [holdout P%]``."""

    span: Span = field(compare=False)
    name: str
    location: str
    location_span: Span
    metric: str
    fields: tuple[str, ...]
    limit: RecLimit | None
    holdout: Holdout | None = None


# ---------------------------------------------------------------- policy tests


@dataclass(frozen=True, slots=True)
class GivenSignal:
    span: Span = field(compare=False)
    signal: str
    value: Scalar | tuple[Scalar, ...]


@dataclass(frozen=True, slots=True)
class GivenEvent:
    span: Span = field(compare=False)
    event: str
    ago: Duration


@dataclass(frozen=True, slots=True)
class Given:
    span: Span = field(compare=False)
    items: tuple[GivenSignal | GivenEvent, ...]


@dataclass(frozen=True, slots=True)
class ExpectVariant:
    """``expect campaign.slot == variant`` (or ``!=``)."""

    span: Span = field(compare=False)
    campaign: str
    slot: str
    op: str
    variant: str


@dataclass(frozen=True, slots=True)
class ExpectVariants:
    """``expect campaign.slot in [a, b]`` or ``not in [a, b]``."""

    span: Span = field(compare=False)
    campaign: str
    slot: str
    negated: bool
    variants: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ExpectCampaign:
    span: Span = field(compare=False)
    name: str


@dataclass(frozen=True, slots=True)
class ExpectNoCampaign:
    span: Span = field(compare=False)


@dataclass(frozen=True, slots=True)
class ExpectOffer:
    """``expect offer checkout allows free_shipping`` / ``denies discount 20%``."""

    span: Span = field(compare=False)
    offers: str
    verdict: str  # "allows" | "denies"
    arm: Arm


@dataclass(frozen=True, slots=True)
class ExpectTrigger:
    """``expect trigger cart_abandon fires [ARM]`` / ``waits``."""

    span: Span = field(compare=False)
    trigger: str
    verdict: str  # "fires" | "waits"
    arm: Arm | None


Expectation = (
    ExpectVariant | ExpectVariants | ExpectCampaign | ExpectNoCampaign | ExpectOffer | ExpectTrigger
)


@dataclass(frozen=True, slots=True)
class Test:
    span: Span = field(compare=False)
    name: str
    statements: tuple[Given | Expectation, ...]


Item = Segment | Campaign | Trigger | Offers | Recommend | Rerank | Test


@dataclass(frozen=True, slots=True)
class Comment:
    line: int
    column: int
    text: str


@dataclass(frozen=True, slots=True)
class PolicyFile:
    """One parsed ``.sw`` file."""

    path: str
    header: Header
    items: tuple[Item, ...]
    comments: tuple[Comment, ...] = ()
