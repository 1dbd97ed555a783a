"""Checked syntax trees to a ``CompiledPolicySet``: the compiler's stages, each testable.

Stages: ``index names`` (segments across the set), then per item ``campaign`` (slots, goal,
explore, holdout, applies closure, rule matcher, per-slot action bitmaps), ``trigger``,
``offers``, ``recommend``/``rerank``. The input must have passed dsl/check.py: the compiler
trusts names and types and only asserts what the checker guarantees.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Mapping, Sequence
from types import MappingProxyType

from slotwise.dsl import ast, compiled
from slotwise.dsl.conditions import atoms, compile_condition
from slotwise.dsl.errors import Diagnostic
from slotwise.dsl.fmt import guard_text
from slotwise.dsl.location import parse_location
from slotwise.dsl.matcher import FeatureKind, RuleIndex, bits_of, build_rule_index
from slotwise.types import EXPLORE_KINDS, SignalSchema, SignalType

RESPONSE_PREFIX = "ad."  # what response adapters set (docs/signals.md, "Upstream")


def policy_version(sources: Sequence[tuple[str, str]]) -> str:
    """A content hash of the files (path and text) that make up a policy set."""
    digest = hashlib.sha256()
    for path, text in sources:
        digest.update(path.encode("utf-8") + b"\0" + text.encode("utf-8") + b"\0")
    return digest.hexdigest()[:16]


def segments_of(files: Sequence[ast.PolicyFile]) -> dict[str, ast.Segment]:
    return {item.name: item for f in files for item in f.items if isinstance(item, ast.Segment)}


def feature_kinds(schema: SignalSchema) -> dict[str, FeatureKind]:
    kinds: dict[str, FeatureKind] = {}
    for spec in schema:
        if spec.type is SignalType.STRING_LIST:
            kinds[spec.name] = "list"
        elif spec.type.is_numeric:
            kinds[spec.name] = "numeric"
        else:
            kinds[spec.name] = "discrete"
    return kinds


def compile_policy_set(
    files: Sequence[ast.PolicyFile],
    schema: SignalSchema,
    version: str,
    warnings: Sequence[Diagnostic] = (),
) -> compiled.CompiledPolicySet:
    """Compile checked files (in the order given) into one immutable policy set."""
    segments = segments_of(files)
    kinds = feature_kinds(schema)

    def kind_of(name: str) -> FeatureKind:
        return kinds.get(name, "discrete")

    items = [item for f in files for item in f.items]
    offers = tuple(compile_offers(i, segments) for i in items if isinstance(i, ast.Offers))
    by_name = {o.name: o for o in offers}
    return compiled.CompiledPolicySet(
        version=version,
        campaigns=tuple(
            compile_campaign(i, segments, kind_of, by_name)
            for i in items
            if isinstance(i, ast.Campaign)
        ),
        triggers=tuple(compile_trigger(i, segments) for i in items if isinstance(i, ast.Trigger)),
        offers=offers,
        recommendations=tuple(compile_recommend(i) for i in items if isinstance(i, ast.Recommend)),
        reranks=tuple(compile_rerank(i) for i in items if isinstance(i, ast.Rerank)),
        tests=tuple(
            compiled.PolicyTest(f.path, i)
            for f in files
            for i in f.items
            if isinstance(i, ast.Test)
        ),
        warnings=tuple(warnings),
        files=tuple(f.path for f in files),
        segments=tuple(
            compiled.CompiledSegment(name, compile_condition(segment.condition, segments))
            for name, segment in segments.items()
        ),
    )


def compile_campaign(
    campaign: ast.Campaign,
    segments: Mapping[str, ast.Segment],
    kind_of: object,
    offers: Mapping[str, compiled.CompiledOffers],
) -> compiled.CompiledCampaign:
    """``offers``: the policy set's compiled offer sets by name, for slots that take their
    text from one (``slot ... from offers NAME``; checked to exist)."""
    variant_slots = [slot for slot in campaign.slots if slot.offers is None]
    offer_slots = tuple(
        compiled.OfferCreative(
            slot.name, parse_location(slot.location), offers[slot.offers], slot.text
        )
        for slot in campaign.slots
        if slot.offers is not None
    )
    slots = tuple(
        compiled.Slot(
            slot.name,
            parse_location(slot.location),
            tuple(
                compiled.Variant(
                    v.name, v.value, MappingProxyType({a.name: a.value for a in v.attributes})
                )
                for v in slot.variants
            ),
        )
        for slot in variant_slots
    )
    rules = campaign.rules
    applies = campaign.first(ast.Applies)
    index = build_rule_index(
        [rule.condition for rule in rules],
        segments,
        kind_of,  # type: ignore[arg-type]
    )
    return compiled.CompiledCampaign(
        name=campaign.name,
        slots=slots,
        goal=compile_goal(campaign.first(ast.Optimize)),
        explore=compile_explore(campaign.first(ast.Explore)),
        holdout=_holdout(campaign.first(ast.Holdout)),
        guardrail=_guardrail(campaign.first(ast.Guardrail)),
        rules=tuple(rule.name for rule in rules),
        _applies=compile_condition(applies.condition, segments)
        if applies is not None
        else compiled._always,
        _index=index,
        _plans=tuple(_slot_plan(slot, rules, index) for slot in variant_slots),
        selects_on_response=applies is None or _reads_only_response(applies.condition, segments),
        cap=_cap(campaign.first(ast.Cap)),
        offer_slots=offer_slots,
    )


def _cap(cap: ast.Cap | None) -> compiled.FrequencyCap | None:
    return None if cap is None else compiled.FrequencyCap(cap.count, cap.per.seconds)


def _reads_only_response(cond: ast.Condition, segments: Mapping[str, ast.Segment]) -> bool:
    """Whether a condition reads nothing but the response's ``ad.*`` signals (no providers,
    no behaviour history)."""
    return all(
        str(getattr(atom, "signal", "")).startswith(RESPONSE_PREFIX)
        for atom in atoms(cond, segments)
    )


def _slot_plan(slot: ast.Slot, rules: Sequence[ast.Rule], index: RuleIndex) -> compiled._SlotPlan:
    """The action bitmaps of one slot, in the index's term ids."""
    ids = index.ids
    pins: dict[int, str] = {}
    excludes: dict[str, list[int]] = defaultdict(list)
    prefers: dict[str, list[int]] = defaultdict(list)
    boosts: dict[tuple[str, float], list[int]] = defaultdict(list)
    for number, rule in enumerate(rules):
        rule_id = ids.term(number)
        for action in rule.actions:
            if action.slot != slot.name:
                continue
            if isinstance(action, ast.Pin):
                pins.setdefault(rule_id, action.variant)
            elif isinstance(action, ast.Exclude):
                for name in action.variants:
                    excludes[name].append(rule_id)
            elif isinstance(action, ast.Prefer):
                for name in action.variants:
                    prefers[name].append(rule_id)
            else:
                boosts[(action.variant, action.factor)].append(rule_id)
    order = [v.name for v in slot.variants]
    acting = [*pins]
    for group in (excludes, prefers, boosts):
        for rule_ids in group.values():
            acting.extend(rule_ids)
    # what reads the match before its extra terms are folded back: a split rule's extras too
    extras = index.extras
    acting = _with_extras(acting, extras)
    for term, variant in list(pins.items()):
        for extra in extras.get(term, ()):
            pins[extra] = variant

    # excludes and prefers are read before the fold (``_SlotPlan.decide``): extras too
    named_excludes = [(v, _with_extras(excludes[v], extras)) for v in order if v in excludes]
    named_prefers = [(v, _with_extras(prefers[v], extras)) for v in order if v in prefers]
    named_boosts = [
        (variant, factor, terms)
        for (variant, factor), terms in sorted(
            boosts.items(), key=lambda kv: (order.index(kv[0][0]), kv[0][1])
        )
    ]
    return compiled._SlotPlan(
        name=slot.name,
        variants=tuple(order),
        pin_rules=bits_of(pins),
        pinned=MappingProxyType(
            {term: compiled.SlotEligibility((v,), (), v) for term, v in pins.items()}
        ),
        split=ids.split_end,
        first_extra=index.first_extra,
        pin_order=MappingProxyType({term: ids.rules_of([term])[0] for term in pins}),
        acting=bits_of(acting),
        unconstrained=compiled.SlotEligibility(tuple(order)),
        excludes=tuple((v, bits_of(terms)) for v, terms in named_excludes),
        prefers=tuple((v, bits_of(terms)) for v, terms in named_prefers),
        boosts=tuple((v, f, bits_of(terms)) for v, f, terms in named_boosts),
    )


def _with_extras(terms: list[int], extras: Mapping[int, tuple[int, ...]]) -> list[int]:
    """The terms and every extra term of those that belong to split rules."""
    return terms + [extra for term in terms for extra in extras.get(term, ())]


def compile_goal(optimize: ast.Optimize | None) -> compiled.Goal:
    if optimize is None:
        return compiled.DEFAULT_GOAL
    return compiled.Goal(tuple(compiled.GoalTerm(t.metric, t.weight) for t in optimize.terms))


def compile_explore(explore: ast.Explore | None) -> compiled.Explore:
    if explore is None:
        return compiled.DEFAULT_EXPLORE
    parameter = explore.parameter
    if isinstance(parameter, ast.Percent):
        return compiled.Explore(explore.kind, parameter.fraction)
    if parameter is None:
        default = EXPLORE_KINDS.get(explore.kind)
        return compiled.Explore(explore.kind, 0.0 if default is None else default)
    return compiled.Explore(explore.kind, float(parameter))


def _guardrail(guardrail: ast.Guardrail | None) -> compiled.GuardrailSetting:
    if guardrail is None:
        return compiled.GuardrailSetting()
    if guardrail.setting == "off":
        return compiled.GuardrailSetting(enabled=False)
    minimum = int(guardrail.minimum) if guardrail.minimum is not None else None
    return compiled.GuardrailSetting(enabled=True, min_decisions=minimum)


def _holdout(holdout: ast.Holdout | None) -> float:
    return 0.0 if holdout is None else holdout.percent.fraction


def compile_arm(arm: ast.Arm) -> compiled.OfferArm:
    if isinstance(arm, ast.Discount):
        return compiled.OfferArm("discount", arm.percent.fraction)
    if isinstance(arm, ast.Bundle):
        return compiled.OfferArm("bundle", sku=arm.sku)
    if isinstance(arm, ast.NoOffer):
        return compiled.OfferArm("none")
    if isinstance(arm, ast.FreeShipping):
        return compiled.OfferArm("free_shipping")
    return compiled.OfferArm("bogo")


def expand_arms(spec: ast.Arm | ast.DiscountRange) -> list[compiled.OfferArm]:
    if not isinstance(spec, ast.DiscountRange):
        return [compile_arm(spec)]
    arms = []
    low, high, step = spec.low.value, spec.high.value, spec.step.value
    count = int(round((high - low) / step)) if step > 0 else 0
    for i in range(count + 1):
        value = low + i * step
        if value > high + 1e-9:
            break
        arms.append(compiled.OfferArm("discount", round(value, 9) / 100.0))
    return arms


def compile_offers(
    offers: ast.Offers, segments: Mapping[str, ast.Segment]
) -> compiled.CompiledOffers:
    location = None
    arms: list[compiled.OfferArm] = []
    guards: list[compiled.OfferGuard] = []
    goal = explore = holdout = None
    for member in offers.members:
        if isinstance(member, ast.OfferSlot):
            location = parse_location(member.location)
        elif isinstance(member, ast.Arms):
            for spec in member.arms:
                for arm in expand_arms(spec):
                    if arm not in arms:
                        arms.append(arm)
        elif isinstance(member, ast.Guard):
            condition = (
                compile_condition(member.condition, segments)
                if member.condition is not None
                else compiled._always
            )
            text = guard_text(member)
            if isinstance(member.limit, ast.ArmBan):
                guards.append(
                    compiled.OfferGuard(condition, banned_kind=member.limit.kind, text=text)
                )
            else:
                guards.append(
                    compiled.OfferGuard(
                        condition,
                        cap_op=member.limit.op,
                        cap=member.limit.percent.fraction,
                        text=text,
                    )
                )
        elif isinstance(member, ast.Optimize):
            goal = member
        elif isinstance(member, ast.Explore):
            explore = member
        else:
            holdout = member
    return compiled.CompiledOffers(
        name=offers.name,
        location=location,
        arms=tuple(arms),
        goal=compile_goal(goal),
        explore=compile_explore(explore),
        holdout=_holdout(holdout),
        guards=tuple(guards),
    )


def _minutes(clock: str) -> int:
    return int(clock[:2]) * 60 + int(clock[3:])


def compile_trigger(
    trigger: ast.Trigger, segments: Mapping[str, ast.Segment]
) -> compiled.CompiledTrigger:
    on_event = ""
    unless: ast.UnlessEvent | None = None
    wait = 0.0
    window = float("inf")
    ladder: ast.Ladder | None = None
    show = None
    notify = None
    cap = None
    condition: compiled.Predicate = compiled._always
    for member in trigger.members:
        if isinstance(member, ast.OnEvent):
            on_event = member.event
        elif isinstance(member, ast.UnlessEvent):
            unless = member
        elif isinstance(member, ast.Wait):
            wait = member.duration.seconds
        elif isinstance(member, ast.Window):
            window = member.duration.seconds
        elif isinstance(member, ast.TriggerWhen):
            condition = compile_condition(member.condition, segments)
        elif isinstance(member, ast.Ladder):
            ladder = member
        elif isinstance(member, ast.Show):
            show = member.campaign
        elif isinstance(member, ast.Cap):
            cap = _cap(member)
        else:
            quiet = member.quiet
            notify = compiled.Notify(
                member.channel,
                member.template,
                _minutes(quiet.start) if quiet else None,
                _minutes(quiet.end) if quiet else None,
            )
    return compiled.CompiledTrigger(
        name=trigger.name,
        on_event=on_event,
        unless_event=unless.event if unless else None,
        unless_within=unless.within.seconds if unless else 0.0,
        wait=wait,
        window=window,
        ladder_signal=ladder.signal if ladder else None,
        ladder=tuple(
            compiled.LadderStep(
                s.range.low, s.range.high, s.range.high_inclusive, compile_arm(s.arm)
            )
            for s in (ladder.steps if ladder else ())
        ),
        show_campaign=show,
        notify=notify,
        _condition=condition,
        cap=cap,
    )


def compile_strategy(strategy: ast.Strategy) -> compiled.Strategy:
    if isinstance(strategy, ast.Trending):
        return compiled.Strategy("trending", strategy.window.seconds)
    if isinstance(strategy, ast.LastVisit):
        return compiled.Strategy("last_visit", float(strategy.views))
    if isinstance(strategy, ast.AlsoBought):
        return compiled.Strategy("also_bought", strategy.signal)
    if isinstance(strategy, ast.Similar):
        return compiled.Strategy("similar", strategy.signal)
    if isinstance(strategy, ast.Hybrid):
        return compiled.Strategy("hybrid", strategy.signal)
    return compiled.Strategy("also_viewed", strategy.signal)


DEFAULT_RECOMMEND_LIMIT = 12


def compile_recommend(recommend: ast.Recommend) -> compiled.CompiledRecommendation:
    use = new_users = otherwise = None
    limit = DEFAULT_RECOMMEND_LIMIT
    exclude: list[str] = []
    diversity: tuple[int, str] | None = None
    holdout = None
    for member in recommend.members:
        if isinstance(member, ast.RecUse):
            use = compile_strategy(member.strategy)
        elif isinstance(member, ast.RecNewUsers):
            new_users = compile_strategy(member.strategy)
        elif isinstance(member, ast.RecOtherwise):
            otherwise = compile_strategy(member.strategy)
        elif isinstance(member, ast.RecLimit):
            limit = member.count
        elif isinstance(member, ast.RecDiversity):
            diversity = (member.count, member.field)
        elif isinstance(member, ast.Holdout):
            holdout = member
        else:
            exclude.extend(n for n in member.names if n not in exclude)
    return compiled.CompiledRecommendation(
        name=recommend.name,
        location=parse_location(recommend.location),
        strategy=use,
        new_users=new_users,
        otherwise=otherwise,
        limit=limit,
        exclude=tuple(exclude),
        diversity=diversity,
        holdout=_holdout(holdout),
    )


def compile_rerank(rerank: ast.Rerank) -> compiled.CompiledRerank:
    return compiled.CompiledRerank(
        name=rerank.name,
        location=parse_location(rerank.location),
        metric=rerank.metric,
        fields=rerank.fields,
        limit=rerank.limit.count if rerank.limit else None,
        holdout=_holdout(rerank.holdout),
    )
