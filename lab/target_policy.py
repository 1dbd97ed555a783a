"""A stochastic target policy from a file: ``slotwise evaluate --candidate probabilities:FILE``.

Two shapes, told apart by content:

- JSON, one distribution for every decision: ``{"headline": {"h1": 0.2, "h2": 0.8}, ...}``.
  A decision's slot whose rules left only some of the file's variants gets the file's
  probabilities restricted to them and renormalised (the policy "as the file says, within
  what the rules allow"); how many decisions that touched is reported. A slot none of whose
  candidates the file gives any probability is an error naming the decision's line.
- JSON Lines, one distribution per decision:
  ``{"id": "d-1", "slots": {"headline": {"h1": 0.2, "h2": 0.8}}}``. Every evaluated decision
  (holdout ones included: their choice sets feed the doubly robust estimate) needs its line;
  a missing one is an error naming the decision and its log line. Probability on a variant
  outside the decision's choice set is an error naming both lines.

Either way each slot's probabilities are numbers in [0, 1] summing to 1 within 1e-9, or the
file is refused naming the slot (and the line). A slot the decision had a real choice in
(two candidates or more) must be in the file; a slot with one candidate is that candidate.
The candidate never serves the upstream response.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path

from slotwise.proxy.bandit.errors import BanditError
from slotwise.proxy.decision_log import DecisionRecord, SlotRecord, choice_sets

TOLERANCE = 1e-9
Distribution = dict[str, float]


class ProbabilitiesCandidate:
    """The target policy a probabilities file describes (see the module docstring)."""

    def __init__(
        self,
        name: str,
        path: Path,
        shared: Mapping[str, Distribution] | None = None,
        per_decision: Mapping[str, tuple[str, Mapping[str, Distribution]]] | None = None,
    ) -> None:
        self.name = name
        self.path = path
        self.shared = shared
        self.per_decision = per_decision  # decision id -> (file:line, slot -> distribution)
        self.renormalised = 0  # decisions whose choice set cut the shared distribution

    def upstream_probability(self, record: DecisionRecord) -> float:
        return 0.0

    def slot_distribution(
        self, record: DecisionRecord, position: int, slot: SlotRecord
    ) -> Mapping[str, float]:
        if len(slot.candidates) < 2:
            return {slot.candidates[0]: 1.0} if slot.candidates else {}
        if self.per_decision is not None:
            return self.per_decision[record.id][1][slot.slot]
        assert self.shared is not None
        given = self.shared[slot.slot]
        inside = {v: given[v] for v in slot.candidates if given.get(v, 0.0) > 0}
        total = math.fsum(inside.values())
        if total >= 1.0 - TOLERANCE:
            return inside
        return {v: p / total for v, p in inside.items()}

    def check(self, records: list[DecisionRecord], where: Mapping[str, str]) -> list[str]:
        """Refuse a file that does not cover the log; warnings about what it changes."""
        self.renormalised = 0
        used: set[str] = set()
        for record in records:
            line = where.get(record.id, "the log")
            if self.per_decision is not None:
                entry = self.per_decision.get(record.id)
                if entry is None:
                    raise BanditError(
                        "bad_target_policy",
                        f"{self.path}: no line for decision {record.id} ({line}); a JSONL"
                        " probabilities file gives every evaluated decision its distribution",
                    )
                used.add(record.id)
                self._check_decision(record, line, entry)
            else:
                self._check_shared(record, line)
        warnings = []
        if self.renormalised:
            warnings.append(
                f"--candidate {self.name}: on {self.renormalised} decisions the rules left only"
                " some of the file's variants in a slot: its probabilities there were"
                " renormalised over what the rules allowed"
            )
        if self.per_decision is not None and len(self.per_decision) > len(used):
            warnings.append(
                f"--candidate {self.name}: {len(self.per_decision) - len(used)} lines of"
                f" {self.path} name decisions that are not evaluated (not in the log, another"
                " campaign, or fail-open): ignored"
            )
        return warnings

    def _check_shared(self, record: DecisionRecord, line: str) -> None:
        assert self.shared is not None
        for slot in choice_sets(record):
            if len(slot.candidates) < 2:
                continue
            given = self.shared.get(slot.slot)
            if given is None:
                raise BanditError(
                    "bad_target_policy",
                    f"{self.path}: no distribution for slot {slot.slot} ({line}, decision"
                    f" {record.id}); the file has {', '.join(self.shared) or 'no slot'}",
                )
            mass = math.fsum(given.get(v, 0.0) for v in slot.candidates)
            if mass <= 0:
                raise BanditError(
                    "bad_target_policy",
                    f"{self.path}: slot {slot.slot} gives no probability to any candidate of"
                    f" decision {record.id} ({line}: {', '.join(slot.candidates)})",
                )
            if mass < 1.0 - TOLERANCE:
                self.renormalised += 1
                break

    def _check_decision(
        self, record: DecisionRecord, line: str, entry: tuple[str, Mapping[str, Distribution]]
    ) -> None:
        at, slots = entry
        for slot in choice_sets(record):
            if len(slot.candidates) < 2:
                continue
            given = slots.get(slot.slot)
            if given is None:
                raise BanditError(
                    "bad_target_policy",
                    f"{at}: decision {record.id} ({line}) has slot {slot.slot}, which this line"
                    " gives no distribution",
                )
            outside = sorted(v for v, p in given.items() if p > 0 and v not in slot.candidates)
            if outside:
                raise BanditError(
                    "bad_target_policy",
                    f"{at}: slot {slot.slot} gives probability to {', '.join(outside)}, outside"
                    f" the choice set of decision {record.id} ({line}:"
                    f" {', '.join(slot.candidates)})",
                )


def load_probabilities(spec: str, path: Path) -> ProbabilitiesCandidate:
    """The candidate ``probabilities:FILE`` names; the file checked as the module says."""
    try:
        text = path.read_text("utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise BanditError(
            "unreadable_target_policy", f"--candidate {spec}: cannot read {path} ({exc})"
        ) from exc
    try:
        whole = json.loads(text)
    except json.JSONDecodeError:
        whole = None
    if isinstance(whole, dict) and not isinstance(whole.get("id"), str):
        shared = {
            slot: _distribution(value, f"{path}: slot {slot}") for slot, value in whole.items()
        }
        return ProbabilitiesCandidate(spec, path, shared=shared)
    per_decision: dict[str, tuple[str, Mapping[str, Distribution]]] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        decision_id, slots = _line(line, where)
        if decision_id in per_decision:
            raise BanditError(
                "bad_target_policy",
                f"{where}: decision {decision_id} already has a line"
                f" ({per_decision[decision_id][0]})",
            )
        per_decision[decision_id] = (where, slots)
    if not per_decision:
        raise BanditError("bad_target_policy", f"{path}: no distribution in the file")
    return ProbabilitiesCandidate(spec, path, per_decision=per_decision)


def _line(line: str, where: str) -> tuple[str, dict[str, Distribution]]:
    example = '{"id": "d-1", "slots": {"headline": {"h1": 0.2, "h2": 0.8}}}'
    try:
        data = json.loads(line)
    except json.JSONDecodeError as exc:
        raise BanditError(
            "bad_target_policy",
            f"{where}: not JSON ({exc.msg}); a line is {example}, a whole-file distribution"
            ' is one JSON object {"slot": {"variant": probability}}',
        ) from exc
    if not isinstance(data, dict) or not isinstance(data.get("id"), str):
        raise BanditError("bad_target_policy", f"{where}: expected {example}")
    slots = data.get("slots")
    unknown = sorted(set(data) - {"id", "slots"})
    if not isinstance(slots, dict) or unknown:
        what = f"unknown field {unknown[0]!r}" if unknown else "no slots object"
        raise BanditError("bad_target_policy", f"{where}: {what}; expected {example}")
    return data["id"], {
        slot: _distribution(value, f"{where}: slot {slot}") for slot, value in slots.items()
    }


def _distribution(value: object, where: str) -> Distribution:
    if not isinstance(value, dict) or not value:
        raise BanditError(
            "bad_target_policy",
            f'{where}: expected an object of variant probabilities, e.g. {{"h1": 0.2, "h2": 0.8}}',
        )
    out: Distribution = {}
    for variant, p in value.items():
        if isinstance(p, bool) or not isinstance(p, int | float) or not 0.0 <= p <= 1.0:
            raise BanditError(
                "bad_target_policy",
                f"{where}: the probability of {variant} is {p!r}, not a number in [0, 1]",
            )
        out[variant] = float(p)
    total = math.fsum(out.values())
    if abs(total - 1.0) > TOLERANCE:
        raise BanditError(
            "bad_target_policy",
            f"{where}: the probabilities sum to {total:.12g}, not 1 (within {TOLERANCE:g})",
        )
    return out
