"""Lark parse tree to the frozen syntax tree of dsl/ast.py: one method per grammar rule."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

from lark import Token, Transformer

from slotwise.dsl import ast


class BadValue(Exception):
    """A token the grammar accepts but the language does not (a time of 25:00)."""

    def __init__(self, token: Token, message: str) -> None:
        super().__init__(message)
        self.token = token
        self.message = message


def _token_span(token: Token) -> ast.Span:
    return ast.Span(token.line or 0, token.column or 0, token.end_line or 0, token.end_column or 0)


_ESCAPES = {"n": "\n", "t": "\t", '"': '"', "\\": "\\"}
_ESCAPE = re.compile(r"\\(.)")


def _string(token: Token) -> str:
    """A STRING token's text: quotes removed, \\n \\t \\" \\\\ decoded (others kept as is)."""
    inner = str(token)[1:-1]
    if "\\" not in inner:
        return inner
    return _ESCAPE.sub(lambda m: _ESCAPES.get(m.group(1), m.group(1)), inner)


def _number(token: Token) -> int | float:
    text = str(token)
    # every number ends up a float somewhere (matchers, boosts): one past the float range
    # would overflow there, so it is refused here, where its position is known
    if not math.isfinite(float(text)):
        raise BadValue(token, f"{text[:12]}... is too large a number")
    return int(text) if text.isdigit() else float(text)


def _duration(token: Token) -> ast.Duration:
    text = str(token)
    if len(text) > 10:  # a billion units of anything is no window a policy means
        raise BadValue(token, f"{text[:12]}... is too long a duration")
    return ast.Duration(int(text[:-1]), text[-1])


# Rules written with `!` in the grammar: their keyword tokens are their value.
_KEEP_TOKENS = frozenset(
    {
        "metric",
        "goal_op",
        "range_op",
        "quantifier",
        "arm_kind",
        "offer_verdict",
        "trigger_verdict",
        "offer_text",
    }
)
# Named string terminals: kept like any named terminal (anonymous keywords are dropped).
_NAMED = frozenset({"NEG", "NOT"})
_ANONYMOUS: set[str] = set()


def _position(child: Any, first: bool) -> tuple[int, int] | None:
    if type(child) is Token:
        if first:
            return (child.line or 0, child.column or 0)
        return (child.end_line or 0, child.end_column or 0)
    span = getattr(child, "span", None)
    if span is not None and span.line:
        return (span.line, span.column) if first else (span.end_line, span.end_column)
    if isinstance(child, tuple) and child:
        return _position(child[0] if first else child[-1], first)
    return None


def _span(children: list[Any]) -> ast.Span:
    # the common case first: a rule that starts with a keyword token (kept by the parser)
    if not children:
        return ast.NO_SPAN
    first, last = children[0], children[-1]
    if first.__class__ is Token:
        start: tuple[int, int] | None = (first.line or 0, first.column or 0)
    else:
        start = None
        for child in children:
            start = _position(child, True)
            if start is not None:
                break
    if last.__class__ is Token:
        end: tuple[int, int] | None = (last.end_line or 0, last.end_column or 0)
    else:
        end = None
        for child in reversed(children):
            end = _position(child, False)
            if end is not None:
                break
    if start is None or end is None:
        return ast.NO_SPAN
    return ast.Span(start[0], start[1], end[0], end[1])


def _rule(name: str, method: Callable[..., Any]) -> Callable[..., Any]:
    keep = name in _KEEP_TOKENS
    anonymous = _ANONYMOUS  # filled once the grammar's terminals are known

    def callback(self: Any, children: list[Any]) -> Any:
        span = _span(children)
        if not keep:
            children = [c for c in children if c.__class__ is not Token or c.type not in anonymous]
        return method(self, span, children)

    return callback


def set_anonymous_terminals(names: set[str]) -> None:
    """Tell the transformer which token types are grammar keywords/punctuation to drop."""
    _ANONYMOUS.clear()
    _ANONYMOUS.update(names - _NAMED)


class ToAst(Transformer[Token, Any]):
    """Builds ``ast.PolicyFile`` (path left empty) while the LALR parser reduces; stateless."""

    def __init__(self) -> None:
        super().__init__(visit_tokens=False)

    def _bad(self, token: Token, message: str) -> BadValue:
        return BadValue(token, message)

    def _int(self, token: Token, what: str) -> int:
        if not str(token).isdigit():
            raise self._bad(token, f"{what} must be a whole number, not {token}")
        return int(str(token))

    # ------------------------------------------------------------ file
    def start(self, span: ast.Span, children: list[Any]) -> ast.PolicyFile:
        header, *items = children
        return ast.PolicyFile("", header, tuple(items))

    def header(self, span: ast.Span, children: list[Token]) -> ast.Header:
        name, version = children
        return ast.Header(span, _string(name), self._int(version, "the version"))

    def segment(self, span: ast.Span, children: list[Any]) -> ast.Segment:
        name, condition = children
        return ast.Segment(span, str(name), condition)

    # ------------------------------------------------------------ campaigns
    def campaign(self, span: ast.Span, children: list[Any]) -> ast.Campaign:
        name, *members = children
        return ast.Campaign(span, str(name), tuple(members))

    def applies(self, span: ast.Span, children: list[Any]) -> ast.Applies:
        return ast.Applies(span, children[0])

    def slot(self, span: ast.Span, children: list[Any]) -> ast.Slot:
        name, location, *variants = children
        return ast.Slot(span, str(name), _string(location), _token_span(location), tuple(variants))

    def offer_creative(self, span: ast.Span, children: list[Any]) -> ast.Slot:
        name, location, offers, *text = children
        return ast.Slot(
            span,
            str(name),
            _string(location),
            _token_span(location),
            (),
            str(offers),
            _token_span(offers),
            str(text[0]) if text else "label",
        )

    def offer_text(self, span: ast.Span, children: list[Token]) -> str:
        return str(children[0])

    def variant(self, span: ast.Span, children: list[Any]) -> ast.Variant:
        name, value, *rest = children
        attributes: tuple[ast.Attribute, ...] = rest[0] if rest else ()
        return ast.Variant(span, str(name), _string(value), attributes)

    def attributes(
        self, span: ast.Span, children: list[ast.Attribute]
    ) -> tuple[ast.Attribute, ...]:
        return tuple(children)

    def attribute(self, span: ast.Span, children: list[Token]) -> ast.Attribute:
        return ast.Attribute(span, str(children[0]), _string(children[1]))

    def rule(self, span: ast.Span, children: list[Any]) -> ast.Rule:
        name, condition, *actions = children
        return ast.Rule(span, _string(name), condition, tuple(actions))

    def pin(self, span: ast.Span, children: list[Token]) -> ast.Pin:
        return ast.Pin(span, str(children[0]), str(children[1]))

    def prefer(self, span: ast.Span, children: list[Any]) -> ast.Prefer:
        return ast.Prefer(span, str(children[0]), children[1])

    def exclude(self, span: ast.Span, children: list[Any]) -> ast.Exclude:
        return ast.Exclude(span, str(children[0]), children[1])

    def boost(self, span: ast.Span, children: list[Token]) -> ast.Boost:
        slot, variant, factor = children
        return ast.Boost(span, str(slot), str(variant), float(_number(factor)))

    def names(self, span: ast.Span, children: list[Token]) -> tuple[str, ...]:
        return tuple(str(c) for c in children)

    def optimize(self, span: ast.Span, children: list[Any]) -> ast.Optimize:
        return ast.Optimize(span, children[0])

    def goal(self, span: ast.Span, children: list[Any]) -> tuple[ast.GoalTerm, ...]:
        terms: list[ast.GoalTerm] = [children[0]]
        for op, term in zip(children[1::2], children[2::2], strict=True):
            sign = -1.0 if op == "-" else 1.0
            terms.append(ast.GoalTerm(term.span, sign * term.weight, term.metric))
        return tuple(terms)

    def goal_term(self, span: ast.Span, children: list[Any]) -> ast.GoalTerm:
        weight = float(_number(children[0])) if len(children) == 2 else 1.0
        return ast.GoalTerm(span, weight, children[-1])

    def metric(self, span: ast.Span, children: list[Token]) -> str:
        return str(children[0])

    def goal_op(self, span: ast.Span, children: list[Token]) -> str:
        return str(children[0])

    def explore(self, span: ast.Span, children: list[Any]) -> ast.Explore:
        kind = str(children[0])
        parameter: float | ast.Percent | None = None
        if len(children) > 1:
            raw = children[1]
            parameter = raw if isinstance(raw, ast.Percent) else float(_number(raw))
        return ast.Explore(span, kind, parameter)

    def holdout(self, span: ast.Span, children: list[ast.Percent]) -> ast.Holdout:
        return ast.Holdout(span, children[0])

    def guardrail(self, span: ast.Span, children: list[Any]) -> ast.Guardrail:
        minimum = float(_number(children[1])) if len(children) > 1 else None
        return ast.Guardrail(span, str(children[0]), minimum)

    # ------------------------------------------------------------ triggers
    def cap(self, span: ast.Span, children: list[Token]) -> ast.Cap:
        return ast.Cap(span, self._int(children[0], "a cap"), _duration(children[1]))

    def trigger(self, span: ast.Span, children: list[Any]) -> ast.Trigger:
        name, *members = children
        return ast.Trigger(span, str(name), tuple(members))

    def on_event(self, span: ast.Span, children: list[Token]) -> ast.OnEvent:
        return ast.OnEvent(span, str(children[0]))

    def unless_event(self, span: ast.Span, children: list[Token]) -> ast.UnlessEvent:
        return ast.UnlessEvent(span, str(children[0]), _duration(children[1]))

    def wait(self, span: ast.Span, children: list[Token]) -> ast.Wait:
        return ast.Wait(span, _duration(children[0]))

    def window(self, span: ast.Span, children: list[Token]) -> ast.Window:
        return ast.Window(span, _duration(children[0]))

    def trigger_when(self, span: ast.Span, children: list[Any]) -> ast.TriggerWhen:
        return ast.TriggerWhen(span, children[0])

    def ladder(self, span: ast.Span, children: list[Any]) -> ast.Ladder:
        signal, *steps = children
        return ast.Ladder(span, str(signal), tuple(steps))

    def ladder_step(self, span: ast.Span, children: list[Any]) -> ast.LadderStep:
        return ast.LadderStep(span, children[0], children[1])

    def show(self, span: ast.Span, children: list[Token]) -> ast.Show:
        return ast.Show(span, str(children[0]))

    def notify(self, span: ast.Span, children: list[Any]) -> ast.Notify:
        channel, template, *quiet = children
        return ast.Notify(span, str(channel), _string(template), *quiet or [None])

    def quiet(self, span: ast.Span, children: list[Token]) -> ast.Quiet:
        for token in children:
            hours, minutes = int(str(token)[:2]), int(str(token)[3:])
            if hours > 23 or minutes > 59:
                raise self._bad(token, f"{token} is not a time of day (00:00 to 23:59)")
        return ast.Quiet(span, str(children[0]), str(children[1]))

    # ------------------------------------------------------------ offers
    def offers(self, span: ast.Span, children: list[Any]) -> ast.Offers:
        name, *members = children
        return ast.Offers(span, str(name), tuple(members))

    def offer_slot(self, span: ast.Span, children: list[Token]) -> ast.OfferSlot:
        return ast.OfferSlot(span, _string(children[0]), _token_span(children[0]))

    def arms(self, span: ast.Span, children: list[Any]) -> ast.Arms:
        return ast.Arms(span, tuple(children))

    def discount_range(self, span: ast.Span, children: list[ast.Percent]) -> ast.DiscountRange:
        return ast.DiscountRange(span, *children)

    def no_offer(self, span: ast.Span, children: list[Any]) -> ast.NoOffer:
        return ast.NoOffer(span)

    def discount(self, span: ast.Span, children: list[ast.Percent]) -> ast.Discount:
        return ast.Discount(span, children[0])

    def free_shipping(self, span: ast.Span, children: list[Any]) -> ast.FreeShipping:
        return ast.FreeShipping(span)

    def bundle(self, span: ast.Span, children: list[Token]) -> ast.Bundle:
        return ast.Bundle(span, _string(children[0]) if children else None)

    def bogo(self, span: ast.Span, children: list[Any]) -> ast.Bogo:
        return ast.Bogo(span)

    def guard(self, span: ast.Span, children: list[Any]) -> ast.Guard:
        limit, *condition = children
        return ast.Guard(span, limit, condition[0] if condition else None)

    def discount_cap(self, span: ast.Span, children: list[Any]) -> ast.DiscountCap:
        return ast.DiscountCap(span, str(children[0]), children[1])

    def arm_ban(self, span: ast.Span, children: list[str]) -> ast.ArmBan:
        return ast.ArmBan(span, children[0])

    def arm_kind(self, span: ast.Span, children: list[Token]) -> str:
        return str(children[0])

    # ------------------------------------------------------------ recommendations
    def recommend(self, span: ast.Span, children: list[Any]) -> ast.Recommend:
        name, location, *rest = children
        block = bool(rest) and isinstance(rest[0], tuple)
        members = rest[0] if block else tuple(rest)
        return ast.Recommend(
            span, str(name), _string(location), _token_span(location), members, block
        )

    def rec_block(self, span: ast.Span, children: list[Any]) -> tuple[Any, ...]:
        return tuple(children)

    def rec_use(self, span: ast.Span, children: list[Any]) -> ast.RecUse:
        return ast.RecUse(span, children[0])

    def rec_new_users(self, span: ast.Span, children: list[Any]) -> ast.RecNewUsers:
        return ast.RecNewUsers(span, children[0])

    def rec_otherwise(self, span: ast.Span, children: list[Any]) -> ast.RecOtherwise:
        return ast.RecOtherwise(span, children[0])

    def rec_limit(self, span: ast.Span, children: list[Token]) -> ast.RecLimit:
        return ast.RecLimit(span, self._int(children[0], "a limit"))

    def rec_exclude(self, span: ast.Span, children: list[Token]) -> ast.RecExclude:
        return ast.RecExclude(span, tuple(str(c) for c in children))

    def rec_diversity(self, span: ast.Span, children: list[Token]) -> ast.RecDiversity:
        return ast.RecDiversity(span, self._int(children[0], "a count"), str(children[1]))

    def similar(self, span: ast.Span, children: list[Token]) -> ast.Similar:
        return ast.Similar(span, str(children[0]))

    def hybrid(self, span: ast.Span, children: list[Token]) -> ast.Hybrid:
        return ast.Hybrid(span, str(children[0]))

    def trending(self, span: ast.Span, children: list[Token]) -> ast.Trending:
        return ast.Trending(span, _duration(children[0]))

    def last_visit(self, span: ast.Span, children: list[Token]) -> ast.LastVisit:
        return ast.LastVisit(span, self._int(children[0], "the number of views"))

    def also_bought(self, span: ast.Span, children: list[Token]) -> ast.AlsoBought:
        return ast.AlsoBought(span, str(children[0]))

    def also_viewed(self, span: ast.Span, children: list[Token]) -> ast.AlsoViewed:
        return ast.AlsoViewed(span, str(children[0]))

    def rerank(self, span: ast.Span, children: list[Any]) -> ast.Rerank:
        name, location, metric, *rest = children
        holdout = rest.pop() if rest and isinstance(rest[-1], ast.Holdout) else None
        limit = rest.pop() if rest and isinstance(rest[-1], ast.RecLimit) else None
        return ast.Rerank(
            span,
            str(name),
            _string(location),
            _token_span(location),
            str(metric),
            tuple(str(f) for f in rest),
            limit,
            holdout,
        )

    # ------------------------------------------------------------ tests
    def test(self, span: ast.Span, children: list[Any]) -> ast.Test:
        name, *statements = children
        return ast.Test(span, _string(name), tuple(statements))

    def given(self, span: ast.Span, children: list[Any]) -> ast.Given:
        return ast.Given(span, tuple(children))

    def given_signal(self, span: ast.Span, children: list[Any]) -> ast.GivenSignal:
        return ast.GivenSignal(span, str(children[0]), children[1])

    def given_event(self, span: ast.Span, children: list[Token]) -> ast.GivenEvent:
        return ast.GivenEvent(span, str(children[0]), _duration(children[1]))

    def expect_variant(self, span: ast.Span, children: list[Token]) -> ast.ExpectVariant:
        target, op, variant = children
        if str(op) not in ("==", "!="):
            raise self._bad(op, f"expect a variant with == or !=, not {op}")
        campaign, slot = str(target).split(".", 1)
        return ast.ExpectVariant(span, campaign, slot, str(op), str(variant))

    def expect_variants(self, span: ast.Span, children: list[Any]) -> ast.ExpectVariants:
        target, *rest = children
        negated = len(rest) == 2
        campaign, slot = str(target).split(".", 1)
        return ast.ExpectVariants(span, campaign, slot, negated, rest[-1])

    def expect_campaign(self, span: ast.Span, children: list[Token]) -> ast.ExpectCampaign:
        return ast.ExpectCampaign(span, str(children[0]))

    def expect_no_campaign(self, span: ast.Span, children: list[Any]) -> ast.ExpectNoCampaign:
        return ast.ExpectNoCampaign(span)

    def expect_offer(self, span: ast.Span, children: list[Any]) -> ast.ExpectOffer:
        return ast.ExpectOffer(span, str(children[0]), children[1], children[2])

    def offer_verdict(self, span: ast.Span, children: list[Token]) -> str:
        return str(children[0])

    def expect_trigger(self, span: ast.Span, children: list[Any]) -> ast.ExpectTrigger:
        name, verdict, *arm = children
        return ast.ExpectTrigger(span, str(name), verdict, arm[0] if arm else None)

    def trigger_verdict(self, span: ast.Span, children: list[Token]) -> str:
        return str(children[0])

    # ------------------------------------------------------------ conditions
    def atom(self, span: ast.Span, children: list[Any]) -> Any:
        # only "(" cond ")" reaches here (every other atom is a single child, inlined)
        return children[0]

    def or_(self, span: ast.Span, children: list[ast.Condition]) -> ast.Or:
        return ast.Or(span, tuple(children))

    def and_(self, span: ast.Span, children: list[ast.Condition]) -> ast.And:
        return ast.And(span, tuple(children))

    def negation(self, span: ast.Span, children: list[Any]) -> ast.Negation:
        return ast.Negation(span, children[-1])

    def compare(self, span: ast.Span, children: list[Any]) -> ast.Compare:
        signal, op, value = children
        return ast.Compare(span, str(signal), str(op), value)

    def member(self, span: ast.Span, children: list[Any]) -> ast.Member:
        return ast.Member(span, str(children[0]), len(children) == 3, children[-1])

    def in_range(self, span: ast.Span, children: list[Any]) -> ast.InRange:
        return ast.InRange(span, str(children[0]), len(children) == 3, children[-1])

    def has(self, span: ast.Span, children: list[Any]) -> ast.Has:
        signal, quantifier, values = children
        return ast.Has(span, str(signal), quantifier, values)

    def quantifier(self, span: ast.Span, children: list[Token]) -> str:
        return str(children[0])

    def contains(self, span: ast.Span, children: list[Token]) -> ast.Contains:
        return ast.Contains(span, _string(children[0]), str(children[1]))

    def flag(self, span: ast.Span, children: list[Token]) -> ast.Flag:
        return ast.Flag(span, str(children[0]))

    def segment_ref(self, span: ast.Span, children: list[Token]) -> ast.SegmentRef:
        return ast.SegmentRef(span, str(children[0]))

    def event_within(self, span: ast.Span, children: list[Token]) -> ast.EventWithin:
        return ast.EventWithin(span, str(children[0]), _duration(children[1]))

    def event_count(self, span: ast.Span, children: list[Token]) -> ast.EventCount:
        event, within, op, count = children
        return ast.EventCount(span, str(event), _duration(within), str(op), float(_number(count)))

    # ------------------------------------------------------------ values
    def range(self, span: ast.Span, children: list[Any]) -> ast.Range:
        if isinstance(children[0], str):  # `..<50` / `..50`
            op, high = children
            return ast.Range(span, None, float(high), op == "..")
        low, op, *high = children
        if not high:
            return ast.Range(span, float(low), None, True)
        return ast.Range(span, float(low), float(high[0]), op == "..")

    def range_op(self, span: ast.Span, children: list[Token]) -> Token:
        # a token (a str) keeps the range's position; renamed so that the parent rule does
        # not drop it as a keyword
        return children[0].update(type="RANGE_OP")

    def string(self, span: ast.Span, children: list[Token]) -> str:
        return _string(children[0])

    def true(self, span: ast.Span, children: list[Any]) -> bool:
        return True

    def false(self, span: ast.Span, children: list[Any]) -> bool:
        return False

    def literals(self, span: ast.Span, children: list[ast.Scalar]) -> tuple[ast.Scalar, ...]:
        return tuple(children)

    def number(self, span: ast.Span, children: list[Token]) -> int | float:
        value = _number(children[-1])
        return -value if len(children) == 2 else value

    def percent(self, span: ast.Span, children: list[Token]) -> ast.Percent:
        return ast.Percent(float(_number(children[0])))


# Every rule method gets its span computed from the raw children, then the keywords dropped.
for _name, _method in list(vars(ToAst).items()):
    if callable(_method) and not _name.startswith("_"):
        setattr(ToAst, _name, _rule(_name, _method))
