"""The compiled policy set: immutable objects the request path reads (no parser import).

``slotwise.dsl.loader.load_policy_set(paths, schema)`` builds a ``CompiledPolicySet`` on the
control plane; the proxy swaps it in by reference and reads it from any number of requests at
once. Nothing here mutates after construction, takes a lock, or imports lark.

Contract (see the team brief), with the few additions documented where they are defined:

- ``CompiledPolicySet``: ``version`` (content hash), ``campaigns``, ``triggers``, ``offers``,
  ``recommendations``, ``reranks`` (addition), ``tests`` (``PolicyTest``: the test block and
  its file), ``warnings`` (addition), ``files`` (addition);
  ``campaign(name)``, ``select(ctx)`` (first campaign in policy order whose ``applies when``
  holds; a campaign without ``applies when`` applies to every response).
- ``CompiledCampaign``: ``name``, ``slots``, ``goal``, ``explore``, ``holdout``, ``rules``
  (addition: rule names in policy order); ``applies(ctx)``, ``eligible(ctx)``.
- ``Eligibility``: ``slots`` maps slot name to ``SlotEligibility``; ``eligibility[slot]`` reads
  one; ``matched_rules`` is computed on first access from the matched-rule bitmap, so the hot
  path never turns thousands of matched rules into names unless someone asks.

Eligibility semantics per slot: a matched ``pin`` wins (the first pinning rule in policy order;
``variants == (pinned,)``); otherwise ``exclude`` removes variants, ``prefer`` narrows the choice
to the preferred variants that are still allowed, and ``boost`` multiplies a variant's weight
(several matched boosts multiply). ``variants`` can be empty when every variant is excluded: the
proxy then leaves that slot as the upstream sent it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final

from mypy_extensions import mypyc_attr

from slotwise.dsl.ast import Test

# Eligibility lives in a pure module (a compiled one cannot define a msgspec Struct)
from slotwise.dsl.eligibility import Eligibility
from slotwise.dsl.errors import Diagnostic
from slotwise.dsl.location import Location
from slotwise.dsl.matcher import Bits, Match, RuleIndex
from slotwise.types import DEFAULT_EXPLORE, DEFAULT_GOAL, Context, Explore, Goal, GoalTerm

Predicate = Callable[[Context], bool]


def _always(ctx: Context) -> bool:
    return True


_EMPTY: Final[Mapping[str, float]] = MappingProxyType({})
# outcomes remembered per slot plan (``_SlotPlan.decide``), cleared when full
_OUTCOMES: Final = 1024


@dataclass(frozen=True, slots=True)
class Variant:
    """One alternative for a slot: text or a URL, plus free-form attributes (bandit features)."""

    name: str
    value: str
    attributes: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True, slots=True)
class Slot:
    """A place in the upstream response and the variants that may fill it."""

    name: str
    location: Location
    variants: tuple[Variant, ...]

    def variant(self, name: str) -> Variant:
        for variant in self.variants:
            if variant.name == name:
                return variant
        raise KeyError(f"slot {self.name!r} has no variant {name!r}")


@dataclass(frozen=True, slots=True)
class OfferCreative:
    """A campaign slot that takes its text from an offer set (``slot deal at "native:title"
    from offers NAME``): the chosen offer's ``label`` or ``terms`` (slotwise.proxy.offer_document)
    is written there; it has no variants of its own."""

    name: str
    location: Location
    offers: CompiledOffers
    text: str = "label"  # "label" or "terms"


@dataclass(frozen=True, slots=True)
class SlotEligibility:
    """What the bandit may choose for one slot after the rules ran."""

    variants: tuple[str, ...]
    preferred: tuple[str, ...] = ()
    pinned: str | None = None
    boosts: Mapping[str, float] = field(default_factory=lambda: _EMPTY)

    @property
    def choices(self) -> tuple[str, ...]:
        """The variants to choose among: the pinned one, else the preferred, else all allowed."""
        if self.pinned is not None:
            return (self.pinned,)
        return self.preferred or self.variants


_NONE_ALLOWED: Final = SlotEligibility(())


@dataclass(frozen=True, slots=True)
class _SlotPlan:
    """Per slot, the rules of each action kind as bitmaps of terms (built by the compiler)."""

    name: str
    variants: tuple[str, ...]
    # pins, acting, excludes and prefers list split rules' extra terms too: they read the
    # terms that held before the extra terms are mapped back (``RuleIndex.match_terms``);
    # boosts list rule terms only and are counted on the folded match (``decide``)
    pin_rules: Bits
    pinned: Mapping[int, SlotEligibility]  # pinning term -> its outcome, built once
    split: int  # terms below this are rules split at an OR (``TermIds.split_end``)
    first_extra: int  # extra terms of split rules are at or above this
    pin_order: Mapping[int, int]  # pinning term -> rule number (policy order)
    acting: Bits
    unconstrained: SlotEligibility  # the outcome when no rule acting on the slot matched
    excludes: tuple[tuple[str, Bits], ...]
    prefers: tuple[tuple[str, Bits], ...]
    boosts: tuple[tuple[str, float, Bits], ...]
    # (allowed, preferred, boosts) -> its SlotEligibility: a request's outcome is one of the
    # few the rules can give, and building the frozen dataclass (its generated __init__ runs
    # in Python) costs several times this lookup; bounded, and lock-free as a dict write is
    # atomic (racing writers store equal values)
    _outcomes: dict[
        tuple[tuple[str, ...], tuple[str, ...], tuple[tuple[str, float], ...]], SlotEligibility
    ] = field(default_factory=dict, compare=False, repr=False)

    def settled(self, matched: Match) -> SlotEligibility | None:
        """The outcome when a pin or no rule decides it; None: ``decide`` must look."""
        hits = matched & self.pin_rules
        if hits:
            # the highest term of a group is its first rule in policy order (matcher.TermIds)
            term = hits.max()
            if term >= self.first_extra or hits.min() < self.split:
                # a split pinning rule matched too: the few pins that held, in policy order
                term = min(hits, key=self.pin_order.__getitem__)
            return self.pinned[term]
        if not matched.intersect(self.acting):
            return self.unconstrained
        return None

    def decide(
        self, matched: Match, index: RuleIndex, folded: bool
    ) -> tuple[SlotEligibility, bool]:
        """The outcome without a matched pin, and whether the match is now folded.

        Excludes and prefers read the match as it is (their bitmaps hold every term of a
        split rule); boosts count rules, not terms, so they read it folded (``RuleIndex.fold``,
        in place and at most once per request: the slots after this one settle and decide the
        same on the folded match)."""
        excluded = [v for v, rules in self.excludes if matched.intersect(rules)]
        allowed = self.variants
        if excluded:
            if len(excluded) == len(allowed):  # every variant excluded: nothing to weigh
                return _NONE_ALLOWED, folded
            allowed = tuple(v for v in allowed if v not in excluded)
        preferred = tuple(
            v for v, rules in self.prefers if v in allowed and matched.intersect(rules)
        )
        boosts: dict[str, float] = {}
        for variant, factor, rules in self.boosts:
            if variant in allowed:
                if not folded:
                    index.fold(matched)
                    folded = True
                hits = matched.intersection_cardinality(rules)
                if hits:
                    boosts[variant] = boosts.get(variant, 1.0) * factor**hits
        key = (allowed, preferred, tuple(boosts.items()) if boosts else ())
        outcome = self._outcomes.get(key)
        if outcome is None:
            outcome = SlotEligibility(
                allowed, preferred, None, MappingProxyType(boosts) if boosts else _EMPTY
            )
            if len(self._outcomes) >= _OUTCOMES:
                self._outcomes.clear()
            self._outcomes[key] = outcome
        return outcome, folded


@dataclass(frozen=True, slots=True)
class FrequencyCap:
    """``cap 2 per 1d``: at most ``count`` shows to one user in each ``per`` seconds."""

    count: int
    per: float

    def __str__(self) -> str:
        return f"cap {self.count} per {_num(self.per)}s"


@dataclass(frozen=True, slots=True)
class GuardrailSetting:
    """A campaign's ``guardrail``: on (the default) or off, and its own minimum sample (None:
    the configuration's ``guardrail.min_decisions``)."""

    enabled: bool = True
    min_decisions: int | None = None


# subclassable from Python when compiled with mypyc: the proxy's tests give a campaign their own
# eligibility that way (tests/proxy/policies.py)
@mypyc_attr(allow_interpreted_subclasses=True)
@dataclass(frozen=True, slots=True)
class CompiledCampaign:
    """A campaign ready to serve: slots, goal, exploration, holdout and its rule matcher."""

    name: str
    slots: tuple[Slot, ...]
    goal: Goal
    explore: Explore
    holdout: float
    rules: tuple[str, ...]
    _applies: Predicate
    _index: RuleIndex
    _plans: tuple[_SlotPlan, ...]
    # True when `applies when` reads only what the response says (``ad.*`` signals): whether
    # the campaign applies is then known before any signal provider runs
    selects_on_response: bool = False
    cap: FrequencyCap | None = None  # `cap N per D`: shows per user, enforced by the proxy
    guardrail: GuardrailSetting = GuardrailSetting()
    # slots that take their text from an offer set, in policy order (not in ``slots``: the
    # campaign's chooser never sees them; the offer set decides them, slotwise.proxy.offer_set)
    offer_slots: tuple[OfferCreative, ...] = ()

    def applies(self, ctx: Context) -> bool:
        """Does this campaign rewrite the response described by ctx (its `applies when`)?"""
        return self._applies(ctx)

    def matched(self, ctx: Context) -> Match:
        """The term ids of the rules whose conditions hold for ctx, as a roaring bitmap
        (``matcher.RuleIndex.match``: ``matcher.TermIds.rules_of`` lists the rules)."""
        return self._index.match(ctx)

    def eligible(self, ctx: Context) -> Eligibility:
        """Per slot, the variants the rules allow, prefer, pin and boost for ctx."""
        index = self._index
        matched = index.match_terms(ctx)
        folded = False  # only a slot whose boosts are counted needs it
        slots: dict[str, SlotEligibility] = {}
        for plan in self._plans:
            outcome = plan.settled(matched)
            if outcome is None:
                outcome, folded = plan.decide(matched, index, folded)
            slots[plan.name] = outcome
        return Eligibility(slots, matched, self.rules, index.ids)

    def slot(self, name: str) -> Slot:
        for slot in self.slots:
            if slot.name == name:
                return slot
        raise KeyError(f"campaign {self.name!r} has no slot {name!r}")


@dataclass(frozen=True, slots=True)
class OfferArm:
    """One offer the bandit can make: none, discount (fraction), free_shipping, bundle, bogo."""

    kind: str
    discount: float = 0.0
    sku: str | None = None

    @property
    def name(self) -> str:
        """A stable identifier: ``none``, ``discount_10``, ``free_shipping``, ``bundle``..."""
        if self.kind == "discount":
            return f"discount_{_num(round(self.discount * 100, 6))}"
        if self.kind == "bundle" and self.sku:
            return f"bundle_{self.sku}"
        return self.kind

    def __str__(self) -> str:
        if self.kind == "discount":
            return f"discount {_num(round(self.discount * 100, 6))}%"
        if self.kind == "bundle" and self.sku:
            return f'bundle "{self.sku}"'
        return self.kind


@dataclass(frozen=True, slots=True)
class OfferGuard:
    """Limits the arms when its condition holds: a discount cap or a banned arm kind."""

    condition: Predicate
    banned_kind: str | None = None
    cap_op: str | None = None
    cap: float = 0.0
    text: str = ""  # as written (``guard discount <= 15% when loyal``), for decision records

    def allows(self, arm: OfferArm) -> bool:
        if self.banned_kind is not None:
            return arm.kind != self.banned_kind
        if arm.kind != "discount" or self.cap_op is None:
            return True
        return _compare(arm.discount, self.cap_op, self.cap)


@dataclass(frozen=True, slots=True)
class CompiledOffers:
    """An offer set: where the offer goes, its arms, goal, exploration and guards."""

    name: str
    location: Location | None
    arms: tuple[OfferArm, ...]
    goal: Goal
    explore: Explore
    holdout: float
    guards: tuple[OfferGuard, ...]

    def eligible(self, ctx: Context) -> tuple[OfferArm, ...]:
        """The arms the guards allow for ctx, in declaration order."""
        active = [g for g in self.guards if g.condition(ctx)]
        if not active:
            return self.arms
        return tuple(arm for arm in self.arms if all(g.allows(arm) for g in active))


@dataclass(frozen=True, slots=True)
class LadderStep:
    low: float | None
    high: float | None
    high_inclusive: bool
    arm: OfferArm

    def contains(self, value: float) -> bool:
        if self.low is not None and value < self.low:
            return False
        if self.high is None:
            return True
        return value <= self.high if self.high_inclusive else value < self.high


@dataclass(frozen=True, slots=True)
class Notify:
    channel: str
    template: str
    quiet_start: int | None = None  # minutes after midnight
    quiet_end: int | None = None

    def quiet_at(self, minute_of_day: int) -> bool:
        """Inside quiet hours (which may wrap around midnight, 22:00..08:00)?"""
        if self.quiet_start is None or self.quiet_end is None:
            return False
        if self.quiet_start <= self.quiet_end:
            return self.quiet_start <= minute_of_day < self.quiet_end
        return minute_of_day >= self.quiet_start or minute_of_day < self.quiet_end


@dataclass(frozen=True, slots=True)
class CompiledTrigger:
    """A behavioural trigger: after `on_event`, unless `unless_event` followed within its
    window, once `wait` has passed and while `window` lasts, show a campaign / offer / notify."""

    name: str
    on_event: str
    unless_event: str | None
    unless_within: float
    wait: float
    window: float
    ladder_signal: str | None
    ladder: tuple[LadderStep, ...]
    show_campaign: str | None
    notify: Notify | None
    _condition: Predicate = _always
    cap: FrequencyCap | None = None  # `cap N per D`: shows (and notifications) per user

    def due(self, ctx: Context) -> bool:
        """Is the trigger firing for this user now?"""
        started = ctx.history.last(self.on_event)
        if started is None:
            return False
        elapsed = ctx.now - started
        if elapsed < self.wait or elapsed > self.window:
            return False
        if self.unless_event is not None:
            after = ctx.history.count(self.unless_event, started)
            later = ctx.history.count(self.unless_event, started + self.unless_within)
            if after - later > 0:
                return False
        return self._condition(ctx)

    def condition_holds(self, ctx: Context) -> bool:
        """Its `when` alone, without the time window (true when it has none)."""
        return self._condition(ctx)

    def offer_for(self, ctx: Context) -> OfferArm | None:
        """The ladder step's arm for the ladder signal's value, or None."""
        if self.ladder_signal is None:
            return None
        value = ctx.signals.get(self.ladder_signal)
        if not _is_number(value):
            return None
        assert isinstance(value, int | float)
        for step in self.ladder:
            if step.contains(value):
                return step.arm
        return None


@dataclass(frozen=True, slots=True)
class Strategy:
    """A recommendation source: trending(window s), last_visit(views), also_bought(signal),
    also_viewed(signal), similar(signal), hybrid(signal)."""

    kind: str
    parameter: str | float


@dataclass(frozen=True, slots=True)
class CompiledRecommendation:
    name: str
    location: Location
    strategy: Strategy | None  # `use ...`
    new_users: Strategy | None
    otherwise: Strategy | None
    limit: int
    exclude: tuple[str, ...]
    diversity: tuple[int, str] | None = None  # `at most N per FIELD`
    holdout: float = 0.0  # `holdout P%`: the control share, served the upstream's list

    def strategy_for(self, ctx: Context) -> Strategy | None:
        """`new users:` for a new user (user.is_new), else `otherwise:` / `use`."""
        if self.new_users is not None and ctx.signals.get("user.is_new") is True:
            return self.new_users
        return self.otherwise or self.strategy or self.new_users


@dataclass(frozen=True, slots=True)
class CompiledRerank:
    name: str
    location: Location
    metric: str
    fields: tuple[str, ...]
    limit: int | None
    holdout: float = 0.0  # `holdout P%`: the control share, served the upstream's order


@dataclass(frozen=True, slots=True)
class PolicyTest:
    """A `test "..." { ... }` block and the file it came from (run by dsl/testing.py)."""

    path: str
    test: Test

    @property
    def name(self) -> str:
        return self.test.name


@dataclass(frozen=True, slots=True)
class CompiledSegment:
    """``segment NAME: condition``, kept by name: its users are an audience
    (slotwise.proxy.triggers.audiences)."""

    name: str
    _condition: Predicate = _always

    def holds(self, ctx: Context) -> bool:
        return self._condition(ctx)


@dataclass(frozen=True, slots=True)
class CompiledPolicySet:
    """Everything one policy set compiles to; immutable and safe to share between requests."""

    version: str
    campaigns: tuple[CompiledCampaign, ...]
    triggers: tuple[CompiledTrigger, ...] = ()
    offers: tuple[CompiledOffers, ...] = ()
    recommendations: tuple[CompiledRecommendation, ...] = ()
    reranks: tuple[CompiledRerank, ...] = ()
    tests: tuple[PolicyTest, ...] = ()
    warnings: tuple[Diagnostic, ...] = ()
    files: tuple[str, ...] = ()
    segments: tuple[CompiledSegment, ...] = ()

    def campaign(self, name: str) -> CompiledCampaign:
        for campaign in self.campaigns:
            if campaign.name == name:
                return campaign
        raise KeyError(f"no campaign named {name!r}")

    def offer_set(self, name: str) -> CompiledOffers:
        for offers in self.offers:
            if offers.name == name:
                return offers
        raise KeyError(f"no offer set named {name!r}")

    def trigger(self, name: str) -> CompiledTrigger:
        for trigger in self.triggers:
            if trigger.name == name:
                return trigger
        raise KeyError(f"no trigger named {name!r}")

    @property
    def selects_on_response(self) -> bool:
        """Whether every campaign's `applies when` reads only the response (``ad.*``)."""
        return all(campaign.selects_on_response for campaign in self.campaigns)

    @property
    def has_lists(self) -> bool:
        """Whether the set fills or reorders product lists (recommendations, re-ranks)."""
        return bool(self.recommendations or self.reranks)

    def select(self, ctx: Context) -> CompiledCampaign | None:
        """The first campaign, in policy order, whose `applies when` holds for ctx."""
        for campaign in self.campaigns:
            if campaign._applies(ctx):
                return campaign
        return None

    def __iter__(self) -> Iterator[CompiledCampaign]:
        return iter(self.campaigns)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value == value


def _compare(left: float, op: str, right: float) -> bool:
    if op == "==":
        return left == right
    if op == "!=":
        return left != right
    if op == "<":
        return left < right
    if op == "<=":
        return left <= right
    if op == ">":
        return left > right
    return left >= right


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


__all__ = [
    "CompiledCampaign",
    "CompiledOffers",
    "CompiledPolicySet",
    "CompiledRecommendation",
    "CompiledRerank",
    "CompiledTrigger",
    "DEFAULT_EXPLORE",
    "DEFAULT_GOAL",
    "Eligibility",
    "Explore",
    "Goal",
    "GoalTerm",
    "LadderStep",
    "Notify",
    "PolicyTest",
    "OfferArm",
    "OfferCreative",
    "OfferGuard",
    "Slot",
    "SlotEligibility",
    "Strategy",
    "Variant",
]
