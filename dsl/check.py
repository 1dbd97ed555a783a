"""The checker: names, types and sense of a parsed policy set, against a signal schema.

``check_policy_set(files, schema, lines)`` returns every diagnostic it finds (errors and
warnings), unsorted; callers sort with ``errors.sorted_diagnostics``. It never raises on bad
input. Conditions inside segments are checked once, where the segment is defined.
"""

from __future__ import annotations

import difflib
from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any, TypeVar

from slotwise.dsl import ast
from slotwise.dsl.errors import Diagnostic, Severity
from slotwise.dsl.location import (
    JsonPathLocation,
    Location,
    LocationError,
    NativeLocation,
    VastLocation,
    parse_location,
)
from slotwise.dsl.precedence import contested_locations
from slotwise.dsl.satisfiable import can_hold
from slotwise.dsl.served import not_yet_served
from slotwise.types import (
    EVENT_TYPES,
    EXPLORE_KINDS,
    Explore,
    SignalSchema,
    SignalSpec,
    SignalType,
)

MAX_RULES = 250_000
MAX_RULES_PER_CAMPAIGN = 200_000
MAX_PIN_PAIRS = 20_000  # contradictory-pin analysis is pairwise; beyond this it is skipped
NOTIFY_CHANNELS = ("email", "sms", "push", "webhook")
REC_EXCLUSIONS = ("unavailable", "purchased", "in_cart", "viewed")
AFFINITY_METRICS = ("clicks", "views", "purchases", "carts")
MAX_LIMIT = 100
DIVERSITY_FIELDS = ("category", "brand")


_Named = TypeVar("_Named", ast.Segment, ast.Campaign, ast.Trigger, ast.Offers)


class _Checker:
    def __init__(
        self,
        files: Sequence[ast.PolicyFile],
        schema: SignalSchema,
        lines: Mapping[str, Sequence[str]],
    ) -> None:
        self.files = files
        self.schema = schema
        self.lines = lines
        self.found: list[Diagnostic] = []
        self.satisfiable: dict[object, bool] = {}
        self.path = ""
        items = [item for f in files for item in f.items]
        self.segments = _first_of(items, ast.Segment)
        self.campaigns = _first_of(items, ast.Campaign)
        self.triggers = _first_of(items, ast.Trigger)
        self.offers = _first_of(items, ast.Offers)

    # ------------------------------------------------------------ reporting
    def report(
        self,
        code: str,
        message: str,
        span: ast.Span,
        severity: Severity = Severity.ERROR,
        hint: str = "",
        path: str | None = None,
    ) -> None:
        path = path or self.path
        lines = self.lines.get(path, ())
        source = lines[span.line - 1] if 0 < span.line <= len(lines) else ""
        self.found.append(
            Diagnostic(
                code,
                message,
                path,
                span.line,
                span.column,
                severity,
                span.end_line,
                span.end_column,
                source,
                hint,
            )
        )

    def known(
        self,
        code: str,
        what: str,
        name: str,
        candidates: Collection[str],
        span: ast.Span,
        hint: str = "",
    ) -> bool:
        """True when ``name`` is one of ``candidates``; else report it, with "did you mean"."""
        if name in candidates:
            return True
        message = f'unknown {what} "{name}"' + _did_you_mean(name, candidates)
        self.report(code, message, span, hint=hint)
        return False

    def warn(self, code: str, message: str, span: ast.Span, hint: str = "") -> None:
        self.report(code, message, span, Severity.WARNING, hint)

    # ------------------------------------------------------------ whole set
    def run(self) -> list[Diagnostic]:
        self._check_unique_names()
        self._check_limits()
        self._check_segment_cycles()
        for f in self.files:
            self.path = f.path
            for item in f.items:
                if isinstance(item, ast.Segment):
                    if item.name not in self._cyclic:
                        self.condition(item.condition)
                elif isinstance(item, ast.Campaign):
                    self.campaign(item)
                elif isinstance(item, ast.Trigger):
                    self.trigger(item)
                elif isinstance(item, ast.Offers):
                    self.offer_set(item)
                elif isinstance(item, ast.Recommend):
                    self.recommend(item)
                elif isinstance(item, ast.Rerank):
                    self.rerank(item)
                else:
                    self.test(item)
        if not any(d.severity is Severity.ERROR for d in self.found):
            self.found += contested_locations(
                self.files, self._openable, self.schema, self.lines, self.satisfiable
            )
            self.found += not_yet_served(self.files, self.lines)
        return self.found

    def _check_unique_names(self) -> None:
        kinds = {
            ast.Segment: "segment",
            ast.Campaign: "campaign",
            ast.Trigger: "trigger",
            ast.Offers: "offer set",
            ast.Recommend: "recommendation",
            ast.Rerank: "recommendation",
            ast.Test: "test",
        }
        seen: dict[tuple[str, str], tuple[str, ast.Span]] = {}
        for f in self.files:
            for item in f.items:
                kind = kinds[type(item)]
                key = (kind, item.name)
                if key in seen:
                    first_path, first = seen[key]
                    self.report(
                        "duplicate_name",
                        f'{kind} "{item.name}" is already defined at '
                        f"{first_path}:{first.line}:{first.column}",
                        item.span,
                        hint="names are unique across all files of a policy set",
                        path=f.path,
                    )
                else:
                    seen[key] = (f.path, item.span)

    def _check_limits(self) -> None:
        total = 0
        for f in self.files:
            for item in f.items:
                if isinstance(item, ast.Campaign):
                    rules = item.rules
                    total += len(rules)
                    if len(rules) > MAX_RULES_PER_CAMPAIGN:
                        self.report(
                            "limit_exceeded",
                            f'campaign "{item.name}" has {len(rules)} rules; at most '
                            f"{MAX_RULES_PER_CAMPAIGN} are allowed in one campaign",
                            item.span,
                            path=f.path,
                        )
        if total > MAX_RULES:
            first = self.files[0]
            self.report(
                "limit_exceeded",
                f"the policy set has {total} rules; at most {MAX_RULES} are allowed",
                first.header.span,
                path=first.path,
            )

    def _check_segment_cycles(self) -> None:
        self._cyclic: set[str] = set()
        paths = {
            item.name: f.path
            for f in self.files
            for item in f.items
            if isinstance(item, ast.Segment)
        }
        for name, segment in self.segments.items():
            stack = [(name, iter(_segment_refs(segment.condition)))]
            trail = [name]
            while stack:
                current, refs = stack[-1]
                ref = next(refs, None)
                if ref is None:
                    stack.pop()
                    trail.pop()
                    continue
                if ref.name == name:
                    self._cyclic.add(name)
                    self.report(
                        "segment_cycle",
                        f'segment "{name}" refers back to itself: ' + " -> ".join([*trail, name]),
                        segment.span,
                        path=paths[name],
                    )
                    break
                if ref.name in self.segments and ref.name not in trail and len(trail) < 64:
                    trail.append(ref.name)
                    stack.append((ref.name, iter(_segment_refs(self.segments[ref.name].condition))))
        # what the satisfiability checks may open up: not the cycles, nor what leads into one
        # (opening those never ends); a reference left out counts as "may hold"
        tainted = set(self._cyclic)
        grew = True
        while grew:
            grew = False
            for name, segment in self.segments.items():
                if name not in tainted and any(
                    ref.name in tainted for ref in _segment_refs(segment.condition)
                ):
                    tainted.add(name)
                    grew = True
        self._openable = {n: s for n, s in self.segments.items() if n not in tainted}

    # ------------------------------------------------------------ campaigns
    def campaign(self, campaign: ast.Campaign) -> None:
        self._settings(
            campaign.members,
            campaign.name,
            "campaign",
            (ast.Applies, ast.Optimize, ast.Explore, ast.Holdout, ast.Cap, ast.Guardrail),
        )
        slots: dict[str, ast.Slot] = {}
        for slot in campaign.slots:
            if slot.name in slots:
                self.report(
                    "duplicate_name",
                    f'campaign "{campaign.name}" has two slots named "{slot.name}"',
                    slot.span,
                )
                continue
            slots[slot.name] = slot
            self.location(slot.location, slot.location_span)
            if slot.offers is not None:
                self.offer_creative(slot)
                continue
            names: set[str] = set()
            if not slot.variants:
                self.report(
                    "missing_setting",
                    f'slot "{slot.name}" has no variants',
                    slot.span,
                    hint='add at least one: variant NAME "text or URL"',
                )
            for variant in slot.variants:
                if variant.name in names:
                    self.report(
                        "duplicate_name",
                        f'slot "{slot.name}" has two variants named "{variant.name}"',
                        variant.span,
                    )
                names.add(variant.name)
                keys: set[str] = set()
                for attribute in variant.attributes:
                    if attribute.name in keys:
                        self.report(
                            "duplicate_name",
                            f'variant "{variant.name}" sets attribute "{attribute.name}" twice',
                            attribute.span,
                        )
                    keys.add(attribute.name)
        if not slots:
            self.report(
                "missing_setting",
                f'campaign "{campaign.name}" has no slots',
                campaign.span,
                hint='add one: slot NAME at "$.path" { variant ... }',
            )
        elif all(slot.offers is not None for slot in slots.values()):
            self.report(
                "missing_setting",
                f'campaign "{campaign.name}" has no slot with variants: an offer creative '
                "(slot ... from offers) rides on the campaign's own choice of creative",
                campaign.span,
                hint='add one: slot headline at "native:title" { variant a "..." }',
            )
        for member in campaign.members:
            if isinstance(member, ast.Applies):
                self.condition(member.condition)
            elif isinstance(member, ast.Explore):
                self.explore(member)
            elif isinstance(member, ast.Holdout):
                self.percent(member.percent, member.span, "a holdout")
            elif isinstance(member, ast.Optimize):
                self.goal(member)
            elif isinstance(member, ast.Cap):
                self.cap(member)
            elif isinstance(member, ast.Guardrail):
                self.guardrail(member)
        rule_names: dict[str, ast.Rule] = {}
        for rule in campaign.rules:
            if rule.name in rule_names:
                self.report(
                    "duplicate_name",
                    f'campaign "{campaign.name}" has two rules named "{rule.name}"',
                    rule.span,
                )
            rule_names[rule.name] = rule
            before = len(self.found)
            self.condition(rule.condition)
            condition_ok = not any(d.severity is Severity.ERROR for d in self.found[before:])
            for action in rule.actions:
                self.action(action, slots, campaign.name)
            if condition_ok and not can_hold(
                rule.condition, self._openable, self.schema, self.satisfiable
            ):
                self.warn(
                    "never_fires",
                    f'rule "{rule.name}" can never fire: no request satisfies its condition',
                    rule.span,
                    hint="look for contradicting comparisons on one signal, or values "
                    "outside the signal's range",
                )
        self._contradictory_pins(campaign, slots)

    def _settings(
        self, members: Iterable[Any], name: str, what: str, kinds: tuple[type, ...]
    ) -> None:
        seen: set[type] = set()
        for member in members:
            kind = type(member)
            if kind in kinds:
                if kind in seen:
                    keyword = _KEYWORDS.get(kind, kind.__name__.lower())
                    self.report(
                        "duplicate_setting",
                        f'{what} "{name}" sets `{keyword}` more than once',
                        member.span,
                    )
                seen.add(kind)

    def action(self, action: ast.Action, slots: Mapping[str, ast.Slot], campaign: str) -> None:
        slot = slots.get(action.slot)
        if slot is None:
            self.report(
                "unknown_slot",
                f'campaign "{campaign}" has no slot "{action.slot}"'
                + _did_you_mean(action.slot, slots),
                action.span,
            )
            return
        names = (action.variant,) if isinstance(action, ast.Pin | ast.Boost) else action.variants
        if slot.offers is not None:
            self.report(
                "unknown_variant",
                f'slot "{slot.name}" takes its text from offer set "{slot.offers}": it has no '
                "variants for a rule to act on",
                action.span,
                hint="limit the offers with the offer set's guards (guard no free_shipping "
                "when ...)",
            )
            return
        known = [v.name for v in slot.variants]
        for name in names:
            if name not in known:
                self.report(
                    "unknown_variant",
                    f'slot "{slot.name}" has no variant "{name}"' + _did_you_mean(name, known),
                    action.span,
                )
        if isinstance(action, ast.Boost) and not action.factor > 0:
            self.report(
                "bad_value",
                "a boost factor must be above 0 (2 doubles a variant's weight, 0.5 halves it)",
                action.span,
            )

    def _contradictory_pins(self, campaign: ast.Campaign, slots: Mapping[str, ast.Slot]) -> None:
        pins: dict[str, list[tuple[ast.Rule, ast.Pin]]] = defaultdict(list)
        for rule in campaign.rules:
            for action in rule.actions:
                if isinstance(action, ast.Pin) and action.slot in slots:
                    pins[action.slot].append((rule, action))
        for slot, entries in pins.items():
            if len(entries) * (len(entries) - 1) // 2 > MAX_PIN_PAIRS:
                continue
            for i, (first, first_pin) in enumerate(entries):
                for second, second_pin in entries[i + 1 :]:
                    if first_pin.variant == second_pin.variant:
                        continue
                    both = ast.And(ast.NO_SPAN, (first.condition, second.condition))
                    if first is second or can_hold(
                        both, self._openable, self.schema, self.satisfiable
                    ):
                        self.warn(
                            "contradictory_pins",
                            f'rules "{first.name}" and "{second.name}" can both match but pin '
                            f'different variants of slot "{slot}" ({first_pin.variant} and '
                            f"{second_pin.variant}); the first in policy order wins",
                            second_pin.span,
                            hint="narrow one rule's condition, or drop one of the pins",
                        )

    def explore(self, explore: ast.Explore) -> None:
        hint = "one of " + ", ".join(EXPLORE_KINDS)
        if not self.known(
            "bad_value", "exploration", explore.kind, EXPLORE_KINDS, explore.span, hint
        ):
            return
        parameter = explore.parameter
        if explore.kind == "epsilon":
            if not isinstance(parameter, ast.Percent):
                self.report(
                    "bad_value", "epsilon is a percentage: explore epsilon 5%", explore.span
                )
            else:
                self.percent(parameter, explore.span, "epsilon")
        elif isinstance(parameter, ast.Percent):
            self.report(
                "bad_value", f"{explore.kind} takes a number, not a percentage", explore.span
            )
        elif parameter is not None and parameter < 0:
            self.report("bad_value", f"{explore.kind} needs a parameter of 0 or more", explore.span)
        else:  # the rule the bandit applies when it installs the campaign
            problem = Explore.of(explore.kind, parameter).problem()
            if problem is not None:
                self.report("bad_value", problem, explore.span)

    def guardrail(self, guardrail: ast.Guardrail) -> None:
        """``guardrail off``, ``guardrail on``, ``guardrail min N`` (N a whole number >= 1)."""
        hint = "write guardrail off, guardrail on or guardrail min 5000"
        if not self.known(
            "bad_value", "guardrail setting", guardrail.setting, ("off", "on", "min"),
            guardrail.span, hint,
        ):  # fmt: skip
            return
        minimum = guardrail.minimum
        if guardrail.setting != "min":
            if minimum is not None:
                self.report(
                    "bad_value", f"guardrail {guardrail.setting} takes no number", guardrail.span,
                    hint=hint,
                )  # fmt: skip
        elif minimum is None or minimum < 1 or minimum != int(minimum):
            self.report(
                "bad_value",
                "guardrail min needs a whole number of decisions, 1 or more",
                guardrail.span,
                hint="guardrail min 5000: the joined decisions (both arms) before it may act",
            )

    def goal(self, optimize: ast.Optimize) -> None:
        seen: set[str] = set()
        for term in optimize.terms:
            if term.metric in seen:
                self.report("duplicate_setting", f"the goal names {term.metric} twice", term.span)
            seen.add(term.metric)

    def percent(self, percent: ast.Percent, span: ast.Span, what: str) -> None:
        if not 0 <= percent.value <= 100:
            self.report("bad_value", f"{what} must be between 0% and 100%, not {percent}", span)

    def offer_creative(self, slot: ast.Slot) -> None:
        """``slot NAME at "LOCATION" from offers SET``: a known offer set, a text location."""
        assert slot.offers is not None
        span = slot.offers_span or slot.span
        self.known("unknown_offers", "offer set", slot.offers, self.offers, span)
        try:
            location = parse_location(slot.location)
        except LocationError:
            return  # reported by location()
        if isinstance(location, JsonPathLocation):
            self.report(
                "offer_location",
                f'slot "{slot.name}" at "{slot.location}" is in a JSON response: an offer '
                "creative is a text of an OpenRTB Native or VAST ad, whose landing URL carries "
                "the offer id to the shop",
                slot.location_span,
                hint=f"on a storefront page the offer set writes its offer itself: offers "
                f'{slot.offers} {{ slot at "{slot.location}" ... }}',
            )
        elif not _holds_text(location):
            self.report(
                "offer_location",
                f'slot "{slot.name}" at "{slot.location}" holds no text: an offer\'s '
                f"{slot.text} goes in a text asset",
                slot.location_span,
                hint="use native:title, native:data:TYPE (desc, ctatext...), vast:AdTitle or "
                "vast:Description",
            )

    def location(self, text: str, span: ast.Span) -> None:
        try:
            parse_location(text)
        except LocationError as exc:
            column = span.column + 1 + exc.offset
            self.report(
                "bad_location",
                f'bad slot location "{text}": {exc}',
                ast.Span(span.line, column, span.line, column + 1),
            )

    # ------------------------------------------------------------ conditions
    def condition(self, cond: ast.Condition) -> None:
        if isinstance(cond, ast.And | ast.Or):
            for operand in cond.operands:
                self.condition(operand)
        elif isinstance(cond, ast.Negation):
            self.condition(cond.operand)
        elif isinstance(cond, ast.SegmentRef):
            if cond.name not in self.segments:
                hint = ""
                if "." not in cond.name and self.schema.get(f"user.{cond.name}") is not None:
                    hint = f"did you mean the signal user.{cond.name}?"
                self.report(
                    "unknown_segment",
                    f'unknown segment "{cond.name}"' + _did_you_mean(cond.name, self.segments),
                    cond.span,
                    hint=hint,
                )
        elif isinstance(cond, ast.EventWithin | ast.EventCount):
            self.event(cond.event, cond.span)
            self.duration(cond.within, cond.span)
            if isinstance(cond, ast.EventCount) and cond.count < 0:
                self.report("bad_value", "an event count is never negative", cond.span)
        else:
            self.signal_condition(cond)

    def signal_condition(self, cond: ast.Condition) -> None:
        signal = getattr(cond, "signal", "")
        spec = self.signal(signal, cond.span)
        if spec is None:
            return
        kind = spec.type
        if isinstance(cond, ast.Compare):
            if cond.op not in ("==", "!=") and not kind.is_numeric:
                self.report(
                    "type_mismatch",
                    f"{signal} is {_type_text(kind)}; `{cond.op}` compares numbers",
                    cond.span,
                    hint=_type_hint(spec),
                )
                return
            self.literal(spec, cond.value, cond.span)
        elif isinstance(cond, ast.Member):
            if kind is SignalType.STRING_LIST:
                self.report(
                    "type_mismatch",
                    f"{signal} is a list; use `{signal} has any [...]` to test its elements",
                    cond.span,
                )
                return
            if not cond.values:
                self.report("empty_range", "an empty list: no value is in []", cond.span)
            for value in cond.values:
                self.literal(spec, value, cond.span)
        elif isinstance(cond, ast.InRange):
            if not kind.is_numeric:
                self.report(
                    "type_mismatch",
                    f"{signal} is {_type_text(kind)}; ranges need a number signal",
                    cond.span,
                    hint=_type_hint(spec),
                )
                return
            self.range(cond.range, cond.span)
        elif isinstance(cond, ast.Has | ast.Contains):
            if kind is not SignalType.STRING_LIST:
                self.report(
                    "type_mismatch",
                    f"{signal} is {_type_text(kind)}; `has` and "
                    '`"x" in` test list signals like user.segments',
                    cond.span,
                    hint=_type_hint(spec),
                )
                return
            values = cond.values if isinstance(cond, ast.Has) else (cond.value,)
            if isinstance(cond, ast.Has) and not values:
                self.report("empty_range", "an empty list: `has any []` never holds", cond.span)
            for value in values:
                if not isinstance(value, str):
                    self.report(
                        "type_mismatch", f'{signal} holds strings; write "{value}"', cond.span
                    )
                elif spec.values is not None and value not in spec.values:
                    self.report(
                        "unknown_value",
                        f'"{value}" is not a value of {signal}' + _did_you_mean(value, spec.values),
                        cond.span,
                    )
        elif isinstance(cond, ast.Flag) and kind is not SignalType.BOOL:
            self.report(
                "type_mismatch",
                f"{signal} is {_type_text(kind)}, not true/false; compare it with a value",
                cond.span,
                hint=_type_hint(spec),
            )

    def signal(self, name: str, span: ast.Span) -> SignalSpec | None:
        spec = self.schema.get(name)
        if spec is None:
            names = [s.name for s in self.schema]
            close = difflib.get_close_matches(name, names, n=1, cutoff=0.6)
            message = f'unknown signal "{name}"'
            hint = ""
            if close:
                provider = self.schema.get(close[0])
                message += f' (did you mean "{close[0]}"?)'
                if provider is not None:
                    hint = f'"{close[0]}" comes from the {provider.provider} provider'
            else:
                namespace = name.split(".", 1)[0]
                known = sorted({n.split(".", 1)[0] for n in names})
                if namespace not in known:
                    hint = "signal namespaces: " + ", ".join(known)
                else:
                    hint = f"{namespace} signals: " + ", ".join(
                        n for n in names if n.startswith(namespace + ".")
                    )
            self.report("unknown_signal", message, _first_word(span, name), hint=hint)
        return spec

    def literal(self, spec: SignalSpec, value: ast.Scalar, span: ast.Span) -> None:
        kind = spec.type
        if kind is SignalType.STRING_LIST:
            self.report(
                "type_mismatch", f"{spec.name} is a list; use `{spec.name} has any [...]`", span
            )
        elif kind is SignalType.BOOL:
            if not isinstance(value, bool):
                self.report(
                    "type_mismatch",
                    f"{spec.name} is true/false, not {ast.literal_text(value)}",
                    span,
                )
        elif kind.is_numeric:
            if isinstance(value, bool) or not isinstance(value, int | float):
                self.report(
                    "type_mismatch",
                    f"{spec.name} is a number, not {ast.literal_text(value)}",
                    span,
                    hint=_type_hint(spec),
                )
            elif kind is SignalType.INT and not float(value).is_integer():
                self.report("type_mismatch", f"{spec.name} is a whole number, not {value}", span)
        elif not isinstance(value, str):
            self.report(
                "type_mismatch",
                f'{spec.name} is a string; write it in quotes: "{ast.literal_text(value)}"',
                span,
            )
        elif spec.values is not None and value not in spec.values:
            self.report(
                "unknown_value",
                f'"{value}" is not a value of {spec.name}' + _did_you_mean(value, spec.values),
                span,
                hint="its values: " + ", ".join(sorted(spec.values)),
            )

    def range(self, value: ast.Range, span: ast.Span) -> None:
        if value.low is not None and value.high is not None:
            if value.low > value.high:
                self.report(
                    "inverted_range",
                    f"the range {value} runs backwards; write the low end first",
                    value.span,
                )
            elif value.low == value.high and not value.high_inclusive:
                self.report(
                    "empty_range",
                    f"the range {value} is empty (..< leaves out its "
                    f"high end); write {ast.literal_text(value.low)}.."
                    f"{ast.literal_text(value.high)} for exactly that value",
                    span,
                )

    def event(self, name: str, span: ast.Span) -> None:
        hint = "events: " + ", ".join(sorted(EVENT_TYPES))
        self.known("unknown_event", "event", name, EVENT_TYPES, span, hint)

    def duration(self, duration: ast.Duration, span: ast.Span) -> None:
        if duration.amount <= 0:
            self.report("bad_value", f"a duration must be above zero, not {duration}", span)

    # ------------------------------------------------------------ triggers
    def trigger(self, trigger: ast.Trigger) -> None:
        self._settings(
            trigger.members,
            trigger.name,
            "trigger",
            (
                ast.OnEvent,
                ast.UnlessEvent,
                ast.Wait,
                ast.Window,
                ast.TriggerWhen,
                ast.Ladder,
                ast.Show,
                ast.Notify,
                ast.Cap,
            ),
        )
        on = [m for m in trigger.members if isinstance(m, ast.OnEvent)]
        if not on:
            self.report(
                "missing_setting", f'trigger "{trigger.name}" needs `on event NAME`', trigger.span
            )
        wait = window = None
        for member in trigger.members:
            if isinstance(member, ast.OnEvent):
                self.event(member.event, member.span)
            elif isinstance(member, ast.UnlessEvent):
                self.event(member.event, member.span)
                self.duration(member.within, member.span)
            elif isinstance(member, ast.Wait):
                wait = member
                self.duration(member.duration, member.span)
            elif isinstance(member, ast.Window):
                window = member
                self.duration(member.duration, member.span)
            elif isinstance(member, ast.TriggerWhen):
                self.condition(member.condition)
            elif isinstance(member, ast.Ladder):
                spec = self.signal(member.signal, member.span)
                if spec is not None and not spec.type.is_numeric:
                    self.report(
                        "type_mismatch",
                        f"an offer ladder needs a number signal; "
                        f"{member.signal} is {_type_text(spec.type)}",
                        member.span,
                    )
                for step in member.steps:
                    self.range(step.range, step.span)
                    self.arm(step.arm)
            elif isinstance(member, ast.Show):
                self.known(
                    "unknown_campaign", "campaign", member.campaign, self.campaigns, member.span
                )
            elif isinstance(member, ast.Cap):
                self.cap(member)
            elif isinstance(member, ast.Notify):
                hint = "channels: " + ", ".join(NOTIFY_CHANNELS)
                self.known(
                    "bad_value", "channel", member.channel, NOTIFY_CHANNELS, member.span, hint
                )
        if (
            wait is not None
            and window is not None
            and (wait.duration.seconds > window.duration.seconds)
        ):
            self.warn(
                "never_fires",
                f'trigger "{trigger.name}" waits {wait.duration}, longer '
                f"than its window of {window.duration}: it can never fire",
                wait.span,
            )

    def cap(self, cap: ast.Cap) -> None:
        if cap.count < 1:
            self.report(
                "bad_value",
                f"a cap allows at least one show, not {cap.count}",
                cap.span,
                hint="to show nothing, remove the campaign or the trigger",
            )
        self.duration(cap.per, cap.span)

    def arm(self, arm: ast.Arm) -> None:
        if isinstance(arm, ast.Discount):
            self.percent(arm.percent, arm.span, "a discount")

    # ------------------------------------------------------------ offers
    def offer_set(self, offers: ast.Offers) -> None:
        self._settings(
            offers.members,
            offers.name,
            "offer set",
            (ast.OfferSlot, ast.Optimize, ast.Explore, ast.Holdout),
        )
        if not any(isinstance(m, ast.Arms) for m in offers.members):
            self.report(
                "missing_setting",
                f'offer set "{offers.name}" needs arms: arms none, discount 10%, free_shipping',
                offers.span,
            )
        for member in offers.members:
            if isinstance(member, ast.OfferSlot):
                self.location(member.location, member.location_span)
                if member.location.startswith(("native:", "vast:")):
                    self.report(
                        "offer_location",
                        f'offer set "{offers.name}" has its place at "{member.location}": an '
                        "offer set's `slot at` is a JSON path of the storefront's responses",
                        member.location_span,
                        hint="to put the offer in an ad creative, give a campaign a slot that "
                        f'takes it: slot deal at "{member.location}" from offers {offers.name}',
                    )
            elif isinstance(member, ast.Arms):
                for spec in member.arms:
                    if isinstance(spec, ast.DiscountRange):
                        for p in (spec.low, spec.high, spec.step):
                            self.percent(p, spec.span, "a discount")
                        if spec.low.value > spec.high.value:
                            self.report(
                                "inverted_range",
                                f"the discounts {spec.low}..{spec.high}"
                                " run backwards; write the low end first",
                                spec.span,
                            )
                        if spec.step.value <= 0:
                            self.report("bad_value", "the step must be above 0%", spec.span)
                    else:
                        self.arm(spec)
            elif isinstance(member, ast.Guard):
                if isinstance(member.limit, ast.DiscountCap):
                    self.percent(member.limit.percent, member.span, "a discount cap")
                if member.condition is not None:
                    self.condition(member.condition)
            elif isinstance(member, ast.Explore):
                self.explore(member)
            elif isinstance(member, ast.Holdout):
                self.percent(member.percent, member.span, "a holdout")
            elif isinstance(member, ast.Optimize):
                self.goal(member)

    # ------------------------------------------------------------ recommendations
    def recommend(self, recommend: ast.Recommend) -> None:
        self.location(recommend.location, recommend.location_span)
        self._settings(
            recommend.members,
            recommend.name,
            "recommendation",
            (ast.RecUse, ast.RecNewUsers, ast.RecOtherwise, ast.RecLimit, ast.RecDiversity,
             ast.Holdout),
        )  # fmt: skip
        if not any(
            isinstance(m, ast.RecUse | ast.RecNewUsers | ast.RecOtherwise)
            for m in recommend.members
        ):
            self.report(
                "missing_setting",
                f'recommendation "{recommend.name}" needs a source: '
                "use trending(24h), or new users: ... otherwise: ...",
                recommend.span,
            )
        for member in recommend.members:
            if isinstance(member, ast.RecUse | ast.RecNewUsers | ast.RecOtherwise):
                self.strategy(member.strategy)
            elif isinstance(member, ast.RecLimit):
                self.limit(member)
            elif isinstance(member, ast.RecDiversity):
                self.diversity(member)
            elif isinstance(member, ast.Holdout):
                self.percent(member.percent, member.span, "a holdout")
            elif isinstance(member, ast.RecExclude):
                for name in member.names:
                    if name not in REC_EXCLUSIONS:
                        self.report(
                            "bad_value",
                            f'cannot exclude "{name}"' + _did_you_mean(name, REC_EXCLUSIONS),
                            member.span,
                            hint="exclusions: " + ", ".join(REC_EXCLUSIONS),
                        )

    def strategy(self, strategy: ast.Strategy) -> None:
        if isinstance(strategy, ast.Trending):
            self.duration(strategy.window, strategy.span)
        elif isinstance(strategy, ast.LastVisit):
            if not 1 <= strategy.views <= 1000:
                self.report("bad_value", "last_visit looks at 1 to 1000 views", strategy.span)
        else:
            spec = self.signal(strategy.signal, strategy.span)
            if spec is not None and spec.type is not SignalType.STRING_LIST:
                self.report(
                    "type_mismatch",
                    f"{strategy.signal} is {_type_text(spec.type)}; "
                    "this needs a list of product ids like cart.items",
                    strategy.span,
                )

    def diversity(self, diversity: ast.RecDiversity) -> None:
        if not 1 <= diversity.count <= MAX_LIMIT:
            self.report("bad_value", f"at most 1 to {MAX_LIMIT} per field", diversity.span)
        self.known(
            "bad_value",
            "diversity field",
            diversity.field,
            DIVERSITY_FIELDS,
            diversity.span,
            "fields: " + ", ".join(DIVERSITY_FIELDS),
        )

    def limit(self, limit: ast.RecLimit) -> None:
        if not 1 <= limit.count <= MAX_LIMIT:
            self.report("bad_value", f"a limit is between 1 and {MAX_LIMIT}", limit.span)

    def rerank(self, rerank: ast.Rerank) -> None:
        self.location(rerank.location, rerank.location_span)
        hint = "affinities: " + ", ".join(AFFINITY_METRICS)
        self.known("bad_value", "affinity", rerank.metric, AFFINITY_METRICS, rerank.span, hint)
        if rerank.limit is not None:
            self.limit(rerank.limit)
        if rerank.holdout is not None:
            self.percent(rerank.holdout.percent, rerank.holdout.span, "a holdout")

    # ------------------------------------------------------------ tests
    def test(self, test: ast.Test) -> None:
        if not any(not isinstance(s, ast.Given) for s in test.statements):
            self.warn("missing_setting", f'test "{test.name}" expects nothing', test.span)
        for statement in test.statements:
            if isinstance(statement, ast.Given):
                for item in statement.items:
                    if isinstance(item, ast.GivenEvent):
                        self.event(item.event, item.span)
                        continue
                    spec = self.signal(item.signal, item.span)
                    if spec is None:
                        continue
                    if isinstance(item.value, tuple):
                        if spec.type is not SignalType.STRING_LIST:
                            self.report(
                                "type_mismatch",
                                f"{item.signal} is {_type_text(spec.type)}, not a list",
                                item.span,
                            )
                    elif spec.type is SignalType.STRING_LIST:
                        self.report(
                            "type_mismatch",
                            f'{item.signal} is a list: write {item.signal} = ["a", "b"]',
                            item.span,
                        )
                    else:
                        self.literal(spec, item.value, item.span)
            elif isinstance(statement, ast.ExpectVariant | ast.ExpectVariants):
                if not self.known(
                    "unknown_campaign",
                    "campaign",
                    statement.campaign,
                    self.campaigns,
                    statement.span,
                ):
                    continue
                campaign = self.campaigns[statement.campaign]
                slots = {s.name: s for s in campaign.slots}
                slot = slots.get(statement.slot)
                if slot is None:
                    self.report(
                        "unknown_slot",
                        f'campaign "{campaign.name}" has no slot '
                        f'"{statement.slot}"' + _did_you_mean(statement.slot, slots),
                        statement.span,
                    )
                    continue
                if slot.offers is not None:
                    self.report(
                        "unknown_variant",
                        f'slot "{slot.name}" takes its text from offer set "{slot.offers}": it '
                        "has no variants to expect",
                        statement.span,
                        hint=f"test the offer set: expect offer {slot.offers} allows none",
                    )
                    continue
                names = (
                    (statement.variant,)
                    if isinstance(statement, ast.ExpectVariant)
                    else statement.variants
                )
                known = [v.name for v in slot.variants]
                for name in names:
                    if name not in known:
                        self.report(
                            "unknown_variant",
                            f'slot "{slot.name}" has no variant '
                            f'"{name}"' + _did_you_mean(name, known),
                            statement.span,
                        )
            elif isinstance(statement, ast.ExpectCampaign):
                self.known(
                    "unknown_campaign", "campaign", statement.name, self.campaigns, statement.span
                )
            elif isinstance(statement, ast.ExpectOffer):
                self.known(
                    "unknown_offers", "offer set", statement.offers, self.offers, statement.span
                )
            elif isinstance(statement, ast.ExpectTrigger):
                self.known(
                    "unknown_trigger", "trigger", statement.trigger, self.triggers, statement.span
                )


_KEYWORDS: dict[type, str] = {
    ast.RecDiversity: "at most",
    ast.Applies: "applies when",
    ast.Optimize: "optimize",
    ast.Explore: "explore",
    ast.Holdout: "holdout",
    ast.Cap: "cap",
    ast.Guardrail: "guardrail",
    ast.OnEvent: "on event",
    ast.UnlessEvent: "unless event",
    ast.Wait: "wait",
    ast.Window: "window",
    ast.TriggerWhen: "when",
    ast.Ladder: "offer by",
    ast.Show: "show campaign",
    ast.Notify: "notify",
    ast.OfferSlot: "slot at",
    ast.RecUse: "use",
    ast.RecNewUsers: "new users:",
    ast.RecOtherwise: "otherwise:",
    ast.RecLimit: "limit",
}


def _first_of(items: Iterable[object], kind: type[_Named]) -> dict[str, _Named]:
    """Items of one kind by name. A name defined twice means its first definition (the second
    is a duplicate_name), so references and tests are checked against what that error names."""
    found: dict[str, _Named] = {}
    for item in items:
        if isinstance(item, kind):
            found.setdefault(item.name, item)
    return found


def _segment_refs(cond: ast.Condition) -> Iterable[ast.SegmentRef]:
    if isinstance(cond, ast.SegmentRef):
        yield cond
    elif isinstance(cond, ast.And | ast.Or):
        for operand in cond.operands:
            yield from _segment_refs(operand)
    elif isinstance(cond, ast.Negation):
        yield from _segment_refs(cond.operand)


def _did_you_mean(name: str, candidates: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    return f' (did you mean "{close[0]}"?)' if close else ""


def _first_word(span: ast.Span, word: str) -> ast.Span:
    return ast.Span(span.line, span.column, span.line, span.column + len(word))


def _type_text(kind: SignalType) -> str:
    return {
        SignalType.STRING: "a string",
        SignalType.INT: "a whole number",
        SignalType.FLOAT: "a number",
        SignalType.BOOL: "true/false",
        SignalType.STRING_LIST: "a list of strings",
    }[kind]


def _type_hint(spec: SignalSpec) -> str:
    if spec.values:
        return f"{spec.name} is one of " + ", ".join(sorted(spec.values))
    return f"{spec.name}: {spec.description}" if spec.description else ""


def check_policy_set(
    files: Sequence[ast.PolicyFile],
    schema: SignalSchema,
    lines: Mapping[str, Sequence[str]] | None = None,
) -> list[Diagnostic]:
    """Every problem in the files, as diagnostics (errors and warnings), in no special order."""
    return _Checker(files, schema, lines or {}).run()


def _holds_text(location: Location) -> bool:
    """Whether an ad's offer label or terms can be written at ``location``: a Native title or
    data asset, a VAST AdTitle or Description (not an image, a video, a link or a media
    file)."""
    if isinstance(location, NativeLocation):
        return location.asset in ("title", "data")
    if isinstance(location, VastLocation):
        return location.element in ("AdTitle", "Description")
    return False
