"""The canonical layout of a policy file (``slotwise fmt``): idempotent, comments kept.

Every statement goes on one line, blocks indent by two spaces, top-level items are separated by
one blank line (a run of segments may stay together), and a blank line the author left between
statements inside a block is kept (several collapse into one). Comments stay where they were: a
comment on its own line stays before the statement that followed it; a comment at the end of a
line stays at the end of that statement's line.
"""

from __future__ import annotations

from collections.abc import Iterable

from slotwise.dsl import ast

INDENT = "  "
_PRECEDENCE = {ast.Or: 1, ast.And: 2, ast.Negation: 3}


def format_source(text: str, path: str = "<policy>") -> str:
    """Parse and format a policy file's text (raises PolicyError when it does not parse)."""
    from slotwise.dsl.parser import parse_policy

    return format_policy(parse_policy(text, path), text)


def format_policy(policy: ast.PolicyFile, source: str = "") -> str:
    lines: list[tuple[int, str]] = [(policy.header.span.line, _header(policy.header))]
    previous: ast.Item | None = None
    for item in policy.items:
        # a blank line between top-level items, except that consecutive segments stay together
        # unless the author separated them
        if not (isinstance(item, ast.Segment) and isinstance(previous, ast.Segment)):
            lines.append((-1, ""))
        lines.extend(_item(item))
        previous = item
    return _merge(lines, policy.comments, source.splitlines())


def _header(header: ast.Header) -> str:
    return f"policy {ast.literal_text(header.name)} version {header.version}"


# ---------------------------------------------------------------- conditions


def condition_text(cond: ast.Condition, parent: int = 0) -> str:
    """A condition in canonical form, with only the parentheses precedence needs."""
    precedence = _PRECEDENCE.get(type(cond), 4)
    if isinstance(cond, ast.Or):
        text = " or ".join(condition_text(c, 1) for c in cond.operands)
    elif isinstance(cond, ast.And):
        text = " and ".join(condition_text(c, 2) for c in cond.operands)
    elif isinstance(cond, ast.Negation):
        text = "not " + condition_text(cond.operand, 3)
    else:
        text = atom_text(cond)
    # `not` binds tighter than and/or; an and/or under a `not` needs parentheses
    return f"({text})" if precedence < parent or (parent == 3 and precedence < 3) else text


def atom_text(cond: ast.Condition) -> str:
    if isinstance(cond, ast.Compare):
        return f"{cond.signal} {cond.op} {ast.literal_text(cond.value)}"
    if isinstance(cond, ast.Member):
        keyword = "not in" if cond.negated else "in"
        return f"{cond.signal} {keyword} {_list(cond.values)}"
    if isinstance(cond, ast.InRange):
        return f"{cond.signal} {'not in' if cond.negated else 'in'} {cond.range}"
    if isinstance(cond, ast.Has):
        return f"{cond.signal} has {cond.quantifier} {_list(cond.values)}"
    if isinstance(cond, ast.Contains):
        return f"{ast.literal_text(cond.value)} in {cond.signal}"
    if isinstance(cond, ast.Flag):
        return cond.signal
    if isinstance(cond, ast.SegmentRef):
        return cond.name
    if isinstance(cond, ast.EventWithin):
        return f"event {cond.event} within {cond.within}"
    if isinstance(cond, ast.EventCount):
        count = ast.literal_text(int(cond.count) if cond.count.is_integer() else cond.count)
        return f"count of {cond.event} within {cond.within} {cond.op} {count}"
    raise TypeError(f"not an atom: {cond!r}")  # pragma: no cover


def _list(values: Iterable[ast.Scalar]) -> str:
    return "[" + ", ".join(ast.literal_text(v) for v in values) + "]"


def _number(value: float) -> str:
    return ast.literal_text(int(value) if float(value).is_integer() else value)


# ---------------------------------------------------------------- items

Lines = list[tuple[int, str]]


def _item(item: ast.Item) -> Lines:
    if isinstance(item, ast.Segment):
        return [(item.span.line, f"segment {item.name}: {condition_text(item.condition)}")]
    if isinstance(item, ast.Campaign):
        return _block(
            item.span, f"campaign {item.name}", [_campaign_member(m) for m in item.members]
        )
    if isinstance(item, ast.Trigger):
        return _block(item.span, f"trigger {item.name}", [_trigger_member(m) for m in item.members])
    if isinstance(item, ast.Offers):
        return _block(item.span, f"offers {item.name}", [_offers_member(m) for m in item.members])
    if isinstance(item, ast.Recommend):
        head = f"recommend {item.name} at {ast.literal_text(item.location)}"
        if item.block:
            return _block(item.span, head, [[(m.span.line, _rec_member(m))] for m in item.members])
        return [(item.span.line, " ".join([head, *(_rec_member(m) for m in item.members)]))]
    if isinstance(item, ast.Rerank):
        text = (
            f"rerank {item.name} at {ast.literal_text(item.location)} by "
            f"affinity({item.metric}: {', '.join(item.fields)})"
        )
        if item.limit is not None:
            text += f" limit {item.limit.count}"
        if item.holdout is not None:
            text += f" holdout {item.holdout.percent}"
        return [(item.span.line, text)]
    return _block(
        item.span,
        f"test {ast.literal_text(item.name)}",
        [[(s.span.line, _test_statement(s))] for s in item.statements],
    )


def _block(span: ast.Span, head: str, members: list[Lines]) -> Lines:
    lines: Lines = [(span.line, head + " {")]
    for member in members:
        lines.extend((anchor, INDENT + text) for anchor, text in member)
    lines.append((span.end_line, "}"))
    return lines


def _campaign_member(
    member: ast.Applies
    | ast.Slot
    | ast.Rule
    | ast.Optimize
    | ast.Explore
    | ast.Holdout
    | ast.Cap
    | ast.Guardrail,
) -> Lines:
    line = member.span.line
    if isinstance(member, ast.Applies):
        return [(line, f"applies when {condition_text(member.condition)}")]
    if isinstance(member, ast.Slot) and member.offers is not None:
        text = f"slot {member.name} at {ast.literal_text(member.location)} from offers "
        text += member.offers + (" terms" if member.text == "terms" else "")
        return [(line, text)]
    if isinstance(member, ast.Slot):
        variants = [[(v.span.line, _variant(v))] for v in member.variants]
        return _block(
            member.span, f"slot {member.name} at {ast.literal_text(member.location)}", variants
        )
    if isinstance(member, ast.Rule):
        actions = " and ".join(_action(a) for a in member.actions)
        return [
            (
                line,
                f"rule {ast.literal_text(member.name)} when "
                f"{condition_text(member.condition)} then {actions}",
            )
        ]
    return [(line, _setting(member))]


def _setting(
    member: ast.Optimize | ast.Explore | ast.Holdout | ast.Cap | ast.Guardrail,
) -> str:
    if isinstance(member, ast.Cap):
        return f"cap {member.count} per {member.per}"
    if isinstance(member, ast.Guardrail):
        if member.minimum is None:
            return f"guardrail {member.setting}"
        return f"guardrail {member.setting} {_number(member.minimum)}"
    if isinstance(member, ast.Optimize):
        return f"optimize {goal_text(member.terms)}"
    if isinstance(member, ast.Explore):
        if member.parameter is None:
            return f"explore {member.kind}"
        parameter = member.parameter
        shown = str(parameter) if isinstance(parameter, ast.Percent) else _number(parameter)
        return f"explore {member.kind} {shown}"
    return f"holdout {member.percent}"


def goal_text(terms: Iterable[ast.GoalTerm]) -> str:
    parts = []
    for i, term in enumerate(terms):
        weight = abs(term.weight)
        text = term.metric if weight == 1 else f"{_number(weight)} * {term.metric}"
        if i:
            text = ("- " if term.weight < 0 else "+ ") + text
        parts.append(text)
    return " ".join(parts)


def _variant(variant: ast.Variant) -> str:
    text = f"variant {variant.name} {ast.literal_text(variant.value)}"
    if variant.attributes:
        pairs = ", ".join(f"{a.name}: {ast.literal_text(a.value)}" for a in variant.attributes)
        text += f" [{pairs}]"
    return text


def _action(action: ast.Action) -> str:
    if isinstance(action, ast.Pin):
        return f"pin {action.slot} {action.variant}"
    if isinstance(action, ast.Boost):
        return f"boost {action.slot} {action.variant} by {_number(action.factor)}"
    keyword = "prefer" if isinstance(action, ast.Prefer) else "exclude"
    return f"{keyword} {action.slot} {', '.join(action.variants)}"


def arm_text(arm: ast.Arm | ast.DiscountRange) -> str:
    if isinstance(arm, ast.DiscountRange):
        return f"discount {arm.low}..{arm.high} step {arm.step}"
    if isinstance(arm, ast.Discount):
        return f"discount {arm.percent}"
    if isinstance(arm, ast.Bundle):
        return "bundle" + (f" {ast.literal_text(arm.sku)}" if arm.sku is not None else "")
    if isinstance(arm, ast.NoOffer):
        return "none"
    if isinstance(arm, ast.FreeShipping):
        return "free_shipping"
    return "bogo"


def _trigger_member(member: object) -> Lines:
    assert isinstance(
        member,
        ast.OnEvent
        | ast.UnlessEvent
        | ast.Wait
        | ast.Window
        | ast.TriggerWhen
        | ast.Ladder
        | ast.Show
        | ast.Notify
        | ast.Cap,
    )
    line = member.span.line
    if isinstance(member, ast.Cap):
        return [(line, _setting(member))]
    if isinstance(member, ast.OnEvent):
        return [(line, f"on event {member.event}")]
    if isinstance(member, ast.UnlessEvent):
        return [(line, f"unless event {member.event} within {member.within}")]
    if isinstance(member, ast.Wait):
        return [(line, f"wait {member.duration}")]
    if isinstance(member, ast.Window):
        return [(line, f"window {member.duration}")]
    if isinstance(member, ast.TriggerWhen):
        return [(line, f"when {condition_text(member.condition)}")]
    if isinstance(member, ast.Ladder):
        steps = [[(s.span.line, f"{s.range} => {arm_text(s.arm)}")] for s in member.steps]
        return _block(member.span, f"offer by {member.signal}", steps)
    if isinstance(member, ast.Show):
        return [(line, f"show campaign {member.campaign}")]
    text = f"notify {member.channel} {ast.literal_text(member.template)}"
    if member.quiet is not None:
        text += f" quiet {member.quiet.start}..{member.quiet.end}"
    return [(line, text)]


def _offers_member(member: object) -> Lines:
    assert isinstance(
        member, ast.OfferSlot | ast.Arms | ast.Optimize | ast.Explore | ast.Holdout | ast.Guard
    )
    line = member.span.line
    if isinstance(member, ast.OfferSlot):
        return [(line, f"slot at {ast.literal_text(member.location)}")]
    if isinstance(member, ast.Arms):
        return [(line, "arms " + ", ".join(arm_text(a) for a in member.arms))]
    if isinstance(member, ast.Guard):
        return [(line, guard_text(member))]
    return [(line, _setting(member))]


def guard_text(member: ast.Guard) -> str:
    """A guard as written in canonical form: ``guard discount <= 15% when loyal``."""
    limit = member.limit
    text = (
        f"guard discount {limit.op} {limit.percent}"
        if isinstance(limit, ast.DiscountCap)
        else f"guard no {limit.kind}"
    )
    if member.condition is not None:
        text += f" when {condition_text(member.condition)}"
    return text


def strategy_text(strategy: ast.Strategy) -> str:
    if isinstance(strategy, ast.Trending):
        return f"trending({strategy.window})"
    if isinstance(strategy, ast.LastVisit):
        return f"last_visit({strategy.views} views)"
    if isinstance(strategy, ast.AlsoBought):
        return f"also_bought({strategy.signal})"
    if isinstance(strategy, ast.Similar):
        return f"similar({strategy.signal})"
    if isinstance(strategy, ast.Hybrid):
        return f"hybrid({strategy.signal})"
    return f"also_viewed({strategy.signal})"


def _rec_member(member: ast.RecMember) -> str:
    if isinstance(member, ast.RecUse):
        return f"use {strategy_text(member.strategy)}"
    if isinstance(member, ast.RecNewUsers):
        return f"new users: {strategy_text(member.strategy)}"
    if isinstance(member, ast.RecOtherwise):
        return f"otherwise: {strategy_text(member.strategy)}"
    if isinstance(member, ast.RecLimit):
        return f"limit {member.count}"
    if isinstance(member, ast.RecDiversity):
        return f"at most {member.count} per {member.field}"
    if isinstance(member, ast.Holdout):
        return f"holdout {member.percent}"
    return "exclude " + ", ".join(member.names)


def _test_statement(statement: ast.Given | ast.Expectation) -> str:
    if isinstance(statement, ast.Given):
        return "given " + ", ".join(_given(item) for item in statement.items)
    if isinstance(statement, ast.ExpectVariant):
        return f"expect {statement.campaign}.{statement.slot} {statement.op} {statement.variant}"
    if isinstance(statement, ast.ExpectVariants):
        keyword = "not in" if statement.negated else "in"
        return (
            f"expect {statement.campaign}.{statement.slot} {keyword} "
            f"[{', '.join(statement.variants)}]"
        )
    if isinstance(statement, ast.ExpectCampaign):
        return f"expect campaign {statement.name}"
    if isinstance(statement, ast.ExpectNoCampaign):
        return "expect no campaign"
    if isinstance(statement, ast.ExpectOffer):
        return f"expect offer {statement.offers} {statement.verdict} {arm_text(statement.arm)}"
    text = f"expect trigger {statement.trigger} {statement.verdict}"
    return text + (f" {arm_text(statement.arm)}" if statement.arm is not None else "")


def _given(item: ast.GivenSignal | ast.GivenEvent) -> str:
    if isinstance(item, ast.GivenEvent):
        return f"event {item.event} ago {item.ago}"
    value = _list(item.value) if isinstance(item.value, tuple) else ast.literal_text(item.value)
    return f"{item.signal} = {value}"


# ---------------------------------------------------------------- comments and blank lines


def _merge(lines: Lines, comments: Iterable[ast.Comment], source: list[str]) -> str:
    """Place comments and kept blank lines among the formatted lines, by source line."""
    own_line = []
    trailing: dict[int, list[str]] = {}
    anchors = sorted({anchor for anchor, _ in lines if anchor > 0})
    for comment in comments:
        before = source[comment.line - 1][: comment.column - 1] if source else ""
        if before.strip():
            # attach to the last statement that starts at or before the comment's line
            target = max((a for a in anchors if a <= comment.line), default=0)
            trailing.setdefault(target, []).append(comment.text)
        else:
            own_line.append(comment)
    own_line.sort(key=lambda c: c.line)

    out: list[str] = []
    last_anchor = 0
    pending = 0

    def blank_between(previous: int, current: int) -> bool:
        if not source or previous <= 0:
            return False
        return any(not source[i - 1].strip() for i in range(previous + 1, current))

    def emit(anchor: int, text: str, indent: str) -> None:
        nonlocal last_anchor
        if (
            anchor > 0
            and out
            and out[-1] != ""
            and not out[-1].endswith("{")
            and text != "}"
            and blank_between(last_anchor, anchor)
        ):
            out.append("")
        out.append(text)
        if anchor > 0:
            last_anchor = anchor

    for index, (anchor, text) in enumerate(lines):
        if anchor == -1:
            if out and out[-1] != "":
                out.append("")
            continue
        indent = text[: len(text) - len(text.lstrip())]
        while pending < len(own_line) and own_line[pending].line < anchor:
            comment = own_line[pending]
            comment_indent = indent if text != "}" else indent + INDENT
            emit(comment.line, comment_indent + comment.text, comment_indent)
            pending += 1
        tail = ""
        if anchor in trailing and _last_with_anchor(lines, index, anchor):
            tail = "  " + "  ".join(trailing.pop(anchor))
        emit(anchor, text + tail, indent)
    for comment in own_line[pending:]:
        emit(comment.line, comment.text, "")
    for texts in trailing.values():  # anchors that produced no line (should not happen)
        out.extend(texts)
    return "\n".join(out).rstrip("\n") + "\n"


def _last_with_anchor(lines: Lines, index: int, anchor: int) -> bool:
    return all(a != anchor for a, _ in lines[index + 1 :])
