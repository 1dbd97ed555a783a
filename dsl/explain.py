"""``slotwise explain``: why each rule of a campaign matched or not, for one set of signals.

Runs the reference evaluator with a trace, and cross-checks the outcome against the compiled
matcher the proxy serves (they must agree; a disagreement is reported as a bug).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from slotwise.dsl import ast
from slotwise.dsl.compile import segments_of
from slotwise.dsl.compiled import CompiledPolicySet, SlotEligibility
from slotwise.dsl.evaluate import CampaignResult, Trace, evaluate_campaign
from slotwise.dsl.testing import ListHistory
from slotwise.errors import USAGE, SlotwiseError
from slotwise.types import Context, SignalValue


class SignalsFileError(SlotwiseError, ValueError):
    """A --signals document that is not what explain expects; the message says why."""

    area = USAGE
    code = "bad_signals_file"


def context_from_json(document: Any, now: float) -> Context:
    """``{"signals": {...}, "events": [{"event": "purchase", "ago": "2h"}], "now": 1.7e9}``,
    or just the signals mapping."""
    if not isinstance(document, dict):
        raise SignalsFileError("expected a JSON object of signals")
    raw = document.get("signals", document) if "signals" in document else document
    if not isinstance(raw, dict):
        raise SignalsFileError('"signals" must be an object of name: value')
    if "now" in document:
        if not isinstance(document["now"], int | float):
            raise SignalsFileError('"now" must be seconds since the epoch')
        now = float(document["now"])
    signals: dict[str, SignalValue] = {}
    for name, value in raw.items():
        if name in ("events", "now") and "signals" not in document:
            continue
        if isinstance(value, list):
            if not all(isinstance(v, str) for v in value):
                raise SignalsFileError(f"{name}: a list signal holds strings only")
            signals[name] = tuple(value)
        elif isinstance(value, str | int | float | bool):
            signals[name] = value
        else:
            raise SignalsFileError(f"{name}: unsupported value {value!r}")
    events = []
    for entry in document.get("events", []):
        if not isinstance(entry, dict) or not isinstance(entry.get("event"), str):
            raise SignalsFileError('each event is {"event": NAME, "ago": "2h"} or "at": SECONDS')
        if "at" in entry and isinstance(entry["at"], int | float):
            events.append((entry["event"], float(entry["at"])))
        else:
            events.append((entry["event"], now - _seconds(entry.get("ago"))))
    return Context(signals, now, ListHistory(events))


def _seconds(text: object) -> float:
    if not isinstance(text, str) or len(text) < 2 or not text[:-1].isdigit():
        raise SignalsFileError(f'an event\'s "ago" is a duration like "2h", not {text!r}')
    unit = text[-1]
    if unit not in ast.DURATION_SECONDS:
        raise SignalsFileError(f"unknown duration unit in {text!r} (use s, m, h, d or w)")
    return float(int(text[:-1]) * ast.DURATION_SECONDS[unit])


@dataclass
class CampaignExplanation:
    path: str
    campaign: ast.Campaign
    result: CampaignResult
    trace: Trace
    compiled_slots: Mapping[str, SlotEligibility]

    @property
    def agrees(self) -> bool:
        return all(
            same_outcome(self.result.slots[name], self.compiled_slots[name])
            for name in self.result.slots
        )


def same_outcome(left: SlotEligibility, right: SlotEligibility) -> bool:
    """Do two evaluations leave a slot the same choices (boosts compared to 1e-9)?"""
    return (
        left.variants == right.variants
        and left.preferred == right.preferred
        and left.pinned == right.pinned
        and set(left.boosts) == set(right.boosts)
        and all(abs(left.boosts[v] - right.boosts[v]) < 1e-9 for v in left.boosts)
    )


def explain(
    files: Sequence[ast.PolicyFile],
    policy: CompiledPolicySet,
    ctx: Context,
    campaign: str | None = None,
) -> tuple[str | None, list[CampaignExplanation]]:
    """The selected campaign's name and an explanation per campaign shown."""
    segments = segments_of(files)
    located = [(f.path, item) for f in files for item in f.items if isinstance(item, ast.Campaign)]
    selected = policy.select(ctx)
    selected_name = selected.name if selected is not None else None
    if campaign is not None:
        shown = [(p, c) for p, c in located if c.name == campaign]
    elif selected_name is not None:
        shown = [(p, c) for p, c in located if c.name == selected_name]
    else:
        shown = located
    explanations = []
    for path, item in shown:
        trace = Trace()
        result = evaluate_campaign(item, ctx, segments, trace)
        compiled_slots = policy.campaign(item.name).eligible(ctx).slots
        explanations.append(CampaignExplanation(path, item, result, trace, compiled_slots))
    return selected_name, explanations


def render_text(selected: str | None, explanations: Sequence[CampaignExplanation]) -> str:
    out = [f"selected campaign: {selected or 'none (no applies when holds)'}"]
    for item in explanations:
        campaign = item.campaign
        out.append("")
        state = "applies" if item.result.applies else "does not apply"
        out.append(f"campaign {campaign.name} ({_where(item.path, campaign.span)}): {state}")
        for event in item.trace.events:
            indent = "  " * event.depth
            if event.kind == "enter" and event.subject.startswith("rule"):
                out.append(f"{indent}{event.subject} ({_where(item.path, event.span)})")
                out.append(f"{indent}  when {event.detail}")
            elif event.kind == "enter" and event.subject.startswith("segment"):
                out.append(f"{indent}{event.subject}:")
            elif event.kind == "eval":
                verdict = "true" if event.result else "false"
                seen = f"  ({event.detail})" if event.detail else ""
                out.append(f"{indent}{event.subject} -> {verdict}{seen}")
            elif event.kind in ("match", "fail") and event.subject.startswith("rule"):
                out.append(f"{indent}  => {'MATCHED' if event.result else 'not matched'}")
            elif event.kind in ("match", "fail"):
                out.append(f"{indent}{event.subject} -> {'true' if event.result else 'false'}")
            elif event.kind == "note":
                out.append(f"{indent}{event.subject}: {event.detail}")
        if not item.agrees:
            out.append(
                "  BUG: the compiled matcher disagrees with the reference evaluator; please "
                "report this with the policy and signals"
            )
    return "\n".join(out)


def render_json(
    selected: str | None, explanations: Sequence[CampaignExplanation]
) -> dict[str, object]:
    return {
        "selected": selected,
        "campaigns": [
            {
                "name": item.campaign.name,
                "file": item.path,
                "line": item.campaign.span.line,
                "applies": item.result.applies,
                "matched_rules": list(item.result.matched_rules),
                "slots": {
                    name: {
                        "variants": list(slot.variants),
                        "preferred": list(slot.preferred),
                        "pinned": slot.pinned,
                        "boosts": dict(slot.boosts),
                    }
                    for name, slot in item.result.slots.items()
                },
                "compiled_agrees": item.agrees,
                "trace": [event.to_json() for event in item.trace.events],
            }
            for item in explanations
        ],
    }


def _where(path: str, span: ast.Span) -> str:
    return f"{path}:{span.line}:{span.column}"
