"""One builder per grammar rule: its children (keywords dropped) to its syntax-tree value.

Compiled with mypyc (slotwise/native.py), like dsl/reader.py, whose ``Node`` calls them with
the rule's span; both Lark's parser (the error path) and the fused loop build with them. A
token child is a Lark ``Token`` or a ``reader.Tok`` (the fused loop's): ``str()`` of either is
its text, and both carry the positions a BadValue reports.
"""

from __future__ import annotations

import math
import re
from typing import Any, Final

from slotwise.dsl import ast
from slotwise.dsl.reader import BadValue, Builder, Node, Tok, new_span

# ---------------------------------------------------------------- values of tokens


def _token_span(token: Any) -> ast.Span:
    return new_span(token.line or 0, token.column or 0, token.end_line or 0, token.end_column or 0)


_ESCAPES: Final = {"n": "\n", "t": "\t", '"': '"', "\\": "\\"}
_ESCAPE: Final = re.compile(r"\\(.)")


def _unescape(found: re.Match[str]) -> str:
    char = found.group(1)
    return _ESCAPES.get(char, char)


def _string(token: Any) -> str:
    """A STRING token's text: quotes removed, \\n \\t \\" \\\\ decoded (others kept as is)."""
    inner = str(token)[1:-1]
    if "\\" not in inner:
        return inner
    return _ESCAPE.sub(_unescape, inner)


def _number(token: Any) -> int | float:
    text = str(token)
    # every number ends up a float somewhere (matchers, boosts): one past the float range
    # would overflow there, so it is refused here, where its position is known
    if not math.isfinite(float(text)):
        raise BadValue(token, f"{text[:12]}... is too large a number")
    return int(text) if text.isdigit() else float(text)


def _duration(token: Any) -> ast.Duration:
    text = str(token)
    if len(text) > 10:  # a billion units of anything is no window a policy means
        raise BadValue(token, f"{text[:12]}... is too long a duration")
    return ast.Duration(int(text[:-1]), text[-1])


def _int(token: Any, what: str) -> int:
    if not str(token).isdigit():
        raise BadValue(token, f"{what} must be a whole number, not {token}")
    return int(str(token))


# ---------------------------------------------------------------- rule builders: file


def _start(span: ast.Span, children: list[Any]) -> Any:
    return ast.PolicyFile("", children[0], tuple(children[1:]))


def _header(span: ast.Span, children: list[Any]) -> Any:
    return ast.Header(span, _string(children[0]), _int(children[1], "the version"))


def _segment(span: ast.Span, children: list[Any]) -> Any:
    name, condition = children
    return ast.Segment(span, str(name), condition)


# ---------------------------------------------------------------- campaigns


def _campaign(span: ast.Span, children: list[Any]) -> Any:
    return ast.Campaign(span, str(children[0]), tuple(children[1:]))


def _applies(span: ast.Span, children: list[Any]) -> Any:
    return ast.Applies(span, children[0])


def _slot(span: ast.Span, children: list[Any]) -> Any:
    name: Any = children[0]
    location: Any = children[1]
    return ast.Slot(span, str(name), _string(location), _token_span(location), tuple(children[2:]))


def _offer_creative(span: ast.Span, children: list[Any]) -> Any:
    name: Any = children[0]
    location: Any = children[1]
    offers: Any = children[2]
    return ast.Slot(
        span,
        str(name),
        _string(location),
        _token_span(location),
        (),
        str(offers),
        _token_span(offers),
        str(children[3]) if len(children) > 3 else "label",
    )


def _first_text(span: ast.Span, children: list[Any]) -> Any:
    # the `!` rules whose value is their keyword (offer_text, metric, goal_op, ...)
    return str(children[0])


def _variant(span: ast.Span, children: list[Any]) -> Any:
    attributes: Any = children[2] if len(children) > 2 else ()
    return ast.Variant(span, str(children[0]), _string(children[1]), attributes)


def _tuple_of(span: ast.Span, children: list[Any]) -> Any:
    return tuple(children)


def _attribute(span: ast.Span, children: list[Any]) -> Any:
    return ast.Attribute(span, str(children[0]), _string(children[1]))


def _rule(span: ast.Span, children: list[Any]) -> Any:
    return ast.Rule(span, _string(children[0]), children[1], tuple(children[2:]))


def _pin(span: ast.Span, children: list[Any]) -> Any:
    return ast.Pin(span, str(children[0]), str(children[1]))


def _prefer(span: ast.Span, children: list[Any]) -> Any:
    return ast.Prefer(span, str(children[0]), children[1])


def _exclude(span: ast.Span, children: list[Any]) -> Any:
    return ast.Exclude(span, str(children[0]), children[1])


def _boost(span: ast.Span, children: list[Any]) -> Any:
    slot, variant, factor = children
    return ast.Boost(span, str(slot), str(variant), float(_number(factor)))


def _names(span: ast.Span, children: list[Any]) -> Any:
    return tuple([str(c) for c in children])


def _optimize(span: ast.Span, children: list[Any]) -> Any:
    return ast.Optimize(span, children[0])


def _goal(span: ast.Span, children: list[Any]) -> Any:
    terms: list[Any] = [children[0]]
    for at in range(1, len(children) - 1, 2):
        op: Any = children[at]
        term: Any = children[at + 1]
        sign = -1.0 if op == "-" else 1.0
        terms.append(ast.GoalTerm(term.span, sign * term.weight, term.metric))
    return tuple(terms)


def _goal_term(span: ast.Span, children: list[Any]) -> Any:
    weight = float(_number(children[0])) if len(children) == 2 else 1.0
    return ast.GoalTerm(span, weight, children[-1])


def _explore(span: ast.Span, children: list[Any]) -> Any:
    kind = str(children[0])
    parameter: Any = None
    if len(children) > 1:
        raw: Any = children[1]
        parameter = raw if isinstance(raw, ast.Percent) else float(_number(raw))
    return ast.Explore(span, kind, parameter)


def _holdout(span: ast.Span, children: list[Any]) -> Any:
    return ast.Holdout(span, children[0])


def _guardrail(span: ast.Span, children: list[Any]) -> Any:
    minimum = float(_number(children[1])) if len(children) > 1 else None
    return ast.Guardrail(span, str(children[0]), minimum)


# ---------------------------------------------------------------- triggers


def _cap(span: ast.Span, children: list[Any]) -> Any:
    return ast.Cap(span, _int(children[0], "a cap"), _duration(children[1]))


def _trigger(span: ast.Span, children: list[Any]) -> Any:
    return ast.Trigger(span, str(children[0]), tuple(children[1:]))


def _on_event(span: ast.Span, children: list[Any]) -> Any:
    return ast.OnEvent(span, str(children[0]))


def _unless_event(span: ast.Span, children: list[Any]) -> Any:
    return ast.UnlessEvent(span, str(children[0]), _duration(children[1]))


def _wait(span: ast.Span, children: list[Any]) -> Any:
    return ast.Wait(span, _duration(children[0]))


def _window(span: ast.Span, children: list[Any]) -> Any:
    return ast.Window(span, _duration(children[0]))


def _trigger_when(span: ast.Span, children: list[Any]) -> Any:
    return ast.TriggerWhen(span, children[0])


def _ladder(span: ast.Span, children: list[Any]) -> Any:
    return ast.Ladder(span, str(children[0]), tuple(children[1:]))


def _ladder_step(span: ast.Span, children: list[Any]) -> Any:
    return ast.LadderStep(span, children[0], children[1])


def _show(span: ast.Span, children: list[Any]) -> Any:
    return ast.Show(span, str(children[0]))


def _notify(span: ast.Span, children: list[Any]) -> Any:
    quiet: Any = children[2] if len(children) > 2 else None
    return ast.Notify(span, str(children[0]), _string(children[1]), quiet)


def _quiet(span: ast.Span, children: list[Any]) -> Any:
    for token in children:
        hours, minutes = int(str(token)[:2]), int(str(token)[3:])
        if hours > 23 or minutes > 59:
            raise BadValue(token, f"{token} is not a time of day (00:00 to 23:59)")
    return ast.Quiet(span, str(children[0]), str(children[1]))


# ---------------------------------------------------------------- offers


def _offers(span: ast.Span, children: list[Any]) -> Any:
    return ast.Offers(span, str(children[0]), tuple(children[1:]))


def _offer_slot(span: ast.Span, children: list[Any]) -> Any:
    return ast.OfferSlot(span, _string(children[0]), _token_span(children[0]))


def _arms(span: ast.Span, children: list[Any]) -> Any:
    return ast.Arms(span, tuple(children))


def _discount_range(span: ast.Span, children: list[Any]) -> Any:
    low, high, step = children
    return ast.DiscountRange(span, low, high, step)


def _no_offer(span: ast.Span, children: list[Any]) -> Any:
    return ast.NoOffer(span)


def _discount(span: ast.Span, children: list[Any]) -> Any:
    return ast.Discount(span, children[0])


def _free_shipping(span: ast.Span, children: list[Any]) -> Any:
    return ast.FreeShipping(span)


def _bundle(span: ast.Span, children: list[Any]) -> Any:
    return ast.Bundle(span, _string(children[0]) if children else None)


def _bogo(span: ast.Span, children: list[Any]) -> Any:
    return ast.Bogo(span)


def _guard(span: ast.Span, children: list[Any]) -> Any:
    return ast.Guard(span, children[0], children[1] if len(children) > 1 else None)


def _discount_cap(span: ast.Span, children: list[Any]) -> Any:
    return ast.DiscountCap(span, str(children[0]), children[1])


def _arm_ban(span: ast.Span, children: list[Any]) -> Any:
    return ast.ArmBan(span, children[0])


# ---------------------------------------------------------------- recommendations


def _recommend(span: ast.Span, children: list[Any]) -> Any:
    name: Any = children[0]
    location: Any = children[1]
    rest = children[2:]
    block = bool(rest) and isinstance(rest[0], tuple)
    members: Any = rest[0] if block else tuple(rest)
    return ast.Recommend(span, str(name), _string(location), _token_span(location), members, block)


def _rec_use(span: ast.Span, children: list[Any]) -> Any:
    return ast.RecUse(span, children[0])


def _rec_new_users(span: ast.Span, children: list[Any]) -> Any:
    return ast.RecNewUsers(span, children[0])


def _rec_otherwise(span: ast.Span, children: list[Any]) -> Any:
    return ast.RecOtherwise(span, children[0])


def _rec_limit(span: ast.Span, children: list[Any]) -> Any:
    return ast.RecLimit(span, _int(children[0], "a limit"))


def _rec_exclude(span: ast.Span, children: list[Any]) -> Any:
    return ast.RecExclude(span, tuple([str(c) for c in children]))


def _rec_diversity(span: ast.Span, children: list[Any]) -> Any:
    return ast.RecDiversity(span, _int(children[0], "a count"), str(children[1]))


def _similar(span: ast.Span, children: list[Any]) -> Any:
    return ast.Similar(span, str(children[0]))


def _hybrid(span: ast.Span, children: list[Any]) -> Any:
    return ast.Hybrid(span, str(children[0]))


def _trending(span: ast.Span, children: list[Any]) -> Any:
    return ast.Trending(span, _duration(children[0]))


def _last_visit(span: ast.Span, children: list[Any]) -> Any:
    return ast.LastVisit(span, _int(children[0], "the number of views"))


def _also_bought(span: ast.Span, children: list[Any]) -> Any:
    return ast.AlsoBought(span, str(children[0]))


def _also_viewed(span: ast.Span, children: list[Any]) -> Any:
    return ast.AlsoViewed(span, str(children[0]))


def _rerank(span: ast.Span, children: list[Any]) -> Any:
    name: Any = children[0]
    location: Any = children[1]
    metric: Any = children[2]
    rest = children[3:]
    holdout: Any = rest.pop() if rest and isinstance(rest[-1], ast.Holdout) else None
    limit: Any = rest.pop() if rest and isinstance(rest[-1], ast.RecLimit) else None
    return ast.Rerank(
        span,
        str(name),
        _string(location),
        _token_span(location),
        str(metric),
        tuple([str(f) for f in rest]),
        limit,
        holdout,
    )


# ---------------------------------------------------------------- tests


def _test(span: ast.Span, children: list[Any]) -> Any:
    return ast.Test(span, _string(children[0]), tuple(children[1:]))


def _given(span: ast.Span, children: list[Any]) -> Any:
    return ast.Given(span, tuple(children))


def _given_signal(span: ast.Span, children: list[Any]) -> Any:
    return ast.GivenSignal(span, str(children[0]), children[1])


def _given_event(span: ast.Span, children: list[Any]) -> Any:
    return ast.GivenEvent(span, str(children[0]), _duration(children[1]))


def _expect_variant(span: ast.Span, children: list[Any]) -> Any:
    target, op, variant = children
    if str(op) not in ("==", "!="):
        raise BadValue(op, f"expect a variant with == or !=, not {op}")
    campaign, slot = str(target).split(".", 1)
    return ast.ExpectVariant(span, campaign, slot, str(op), str(variant))


def _expect_variants(span: ast.Span, children: list[Any]) -> Any:
    negated = len(children) == 3
    campaign, slot = str(children[0]).split(".", 1)
    return ast.ExpectVariants(span, campaign, slot, negated, children[-1])


def _expect_campaign(span: ast.Span, children: list[Any]) -> Any:
    return ast.ExpectCampaign(span, str(children[0]))


def _expect_no_campaign(span: ast.Span, children: list[Any]) -> Any:
    return ast.ExpectNoCampaign(span)


def _expect_offer(span: ast.Span, children: list[Any]) -> Any:
    return ast.ExpectOffer(span, str(children[0]), children[1], children[2])


def _expect_trigger(span: ast.Span, children: list[Any]) -> Any:
    arm: Any = children[2] if len(children) > 2 else None
    return ast.ExpectTrigger(span, str(children[0]), children[1], arm)


# ---------------------------------------------------------------- conditions


def _atom(span: ast.Span, children: list[Any]) -> Any:
    # only "(" cond ")" reaches here (every other atom is a single child, inlined)
    return children[0]


def _or(span: ast.Span, children: list[Any]) -> Any:
    return ast.Or(span, tuple(children))


def _and(span: ast.Span, children: list[Any]) -> Any:
    return ast.And(span, tuple(children))


def _negation(span: ast.Span, children: list[Any]) -> Any:
    return ast.Negation(span, children[-1])


def _compare(span: ast.Span, children: list[Any]) -> Any:
    signal, op, value = children
    return ast.Compare(span, str(signal), str(op), value)


def _member(span: ast.Span, children: list[Any]) -> Any:
    return ast.Member(span, str(children[0]), len(children) == 3, children[-1])


def _in_range(span: ast.Span, children: list[Any]) -> Any:
    return ast.InRange(span, str(children[0]), len(children) == 3, children[-1])


def _has(span: ast.Span, children: list[Any]) -> Any:
    signal, quantifier, values = children
    return ast.Has(span, str(signal), quantifier, values)


def _contains(span: ast.Span, children: list[Any]) -> Any:
    return ast.Contains(span, _string(children[0]), str(children[1]))


def _flag(span: ast.Span, children: list[Any]) -> Any:
    return ast.Flag(span, str(children[0]))


def _segment_ref(span: ast.Span, children: list[Any]) -> Any:
    return ast.SegmentRef(span, str(children[0]))


def _event_within(span: ast.Span, children: list[Any]) -> Any:
    return ast.EventWithin(span, str(children[0]), _duration(children[1]))


def _event_count(span: ast.Span, children: list[Any]) -> Any:
    event, within, op, count = children
    return ast.EventCount(span, str(event), _duration(within), str(op), float(_number(count)))


# ---------------------------------------------------------------- values


def _range(span: ast.Span, children: list[Any]) -> Any:
    first: Any = children[0]
    if isinstance(first, str | Tok):  # `..<50` / `..50`: the range_op's token
        high: Any = children[1]
        return ast.Range(span, None, float(high), str(first) == "..")
    op: Any = children[1]
    if len(children) < 3:
        return ast.Range(span, float(first), None, True)
    return ast.Range(span, float(first), float(children[2]), str(op) == "..")


def _range_op(span: ast.Span, children: list[Any]) -> Any:
    # a token keeps the range's position; renamed so that the parent rule does not drop it
    # as a keyword
    op: Any = children[0]
    if isinstance(op, Tok):
        return Tok("RANGE_OP", op.value, op.start_pos, op.line, op.column, op.end_pos)
    return op.update(type="RANGE_OP")


def _string_value(span: ast.Span, children: list[Any]) -> Any:
    return _string(children[0])


def _true(span: ast.Span, children: list[Any]) -> Any:
    return True


def _false(span: ast.Span, children: list[Any]) -> Any:
    return False


def _number_value(span: ast.Span, children: list[Any]) -> Any:
    value = _number(children[-1])
    return -value if len(children) == 2 else value


def _percent(span: ast.Span, children: list[Any]) -> Any:
    return ast.Percent(float(_number(children[0])))


# Grammar rule (or alias) -> its builder: dsl/transform.py's ToAst answers each name with
# its Node, so Lark's own parser and the fused loop run the same builders.
BUILDERS: Final[dict[str, Builder]] = {
    "start": _start,
    "header": _header,
    "segment": _segment,
    "campaign": _campaign,
    "applies": _applies,
    "slot": _slot,
    "offer_creative": _offer_creative,
    "offer_text": _first_text,
    "variant": _variant,
    "attributes": _tuple_of,
    "attribute": _attribute,
    "rule": _rule,
    "pin": _pin,
    "prefer": _prefer,
    "exclude": _exclude,
    "boost": _boost,
    "names": _names,
    "optimize": _optimize,
    "goal": _goal,
    "goal_term": _goal_term,
    "metric": _first_text,
    "goal_op": _first_text,
    "explore": _explore,
    "holdout": _holdout,
    "guardrail": _guardrail,
    "cap": _cap,
    "trigger": _trigger,
    "on_event": _on_event,
    "unless_event": _unless_event,
    "wait": _wait,
    "window": _window,
    "trigger_when": _trigger_when,
    "ladder": _ladder,
    "ladder_step": _ladder_step,
    "show": _show,
    "notify": _notify,
    "quiet": _quiet,
    "offers": _offers,
    "offer_slot": _offer_slot,
    "arms": _arms,
    "discount_range": _discount_range,
    "no_offer": _no_offer,
    "discount": _discount,
    "free_shipping": _free_shipping,
    "bundle": _bundle,
    "bogo": _bogo,
    "guard": _guard,
    "discount_cap": _discount_cap,
    "arm_ban": _arm_ban,
    "arm_kind": _first_text,
    "recommend": _recommend,
    "rec_block": _tuple_of,
    "rec_use": _rec_use,
    "rec_new_users": _rec_new_users,
    "rec_otherwise": _rec_otherwise,
    "rec_limit": _rec_limit,
    "rec_exclude": _rec_exclude,
    "rec_diversity": _rec_diversity,
    "similar": _similar,
    "hybrid": _hybrid,
    "trending": _trending,
    "last_visit": _last_visit,
    "also_bought": _also_bought,
    "also_viewed": _also_viewed,
    "rerank": _rerank,
    "test": _test,
    "given": _given,
    "given_signal": _given_signal,
    "given_event": _given_event,
    "expect_variant": _expect_variant,
    "expect_variants": _expect_variants,
    "expect_campaign": _expect_campaign,
    "expect_no_campaign": _expect_no_campaign,
    "expect_offer": _expect_offer,
    "offer_verdict": _first_text,
    "expect_trigger": _expect_trigger,
    "trigger_verdict": _first_text,
    "atom": _atom,
    "or_": _or,
    "and_": _and,
    "negation": _negation,
    "compare": _compare,
    "member": _member,
    "in_range": _in_range,
    "has": _has,
    "quantifier": _first_text,
    "contains": _contains,
    "flag": _flag,
    "segment_ref": _segment_ref,
    "event_within": _event_within,
    "event_count": _event_count,
    "range": _range,
    "range_op": _range_op,
    "string": _string_value,
    "true": _true,
    "false": _false,
    "literals": _tuple_of,
    "number": _number_value,
    "percent": _percent,
}


def nodes() -> dict[str, Node]:
    """A Node per rule name of ``BUILDERS`` (dsl/transform.py's ToAst answers with them)."""
    return {name: Node(name, build) for name, build in BUILDERS.items()}
