"""Conformance cases (tests/dsl/conformance/NAME.sw + NAME.json) run through both evaluators.

A case's JSON holds either ``"errors"``/``"warnings"`` (the diagnostic codes `slotwise check`
must report, in order, with their line numbers) or ``"requests"``: signals, events and the
expected outcome, which the compiled matcher and the reference evaluator must both produce.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from slotwise.dsl import ast
from slotwise.dsl.compile import segments_of
from slotwise.dsl.errors import Severity
from slotwise.dsl.evaluate import evaluate_campaign, select_campaign
from slotwise.dsl.explain import context_from_json
from slotwise.dsl.loader import check_sources, compile_sources
from slotwise.dsl.testing import TEST_NOW
from slotwise.plugins.schema import SignalSchema

CASES = Path(__file__).parent / "conformance"
NAMES = sorted(p.stem for p in CASES.glob("*.sw"))


def _load(name: str) -> tuple[str, dict[str, Any]]:
    text = (CASES / f"{name}.sw").read_text(encoding="utf-8")
    spec = json.loads((CASES / f"{name}.json").read_text(encoding="utf-8"))
    return text, spec


def test_there_are_cases() -> None:
    assert len(NAMES) >= 20
    for name in NAMES:
        assert (CASES / f"{name}.json").exists(), name


@pytest.mark.parametrize("name", NAMES)
def test_case(name: str, schema: SignalSchema) -> None:
    text, spec = _load(name)
    path = f"{name}.sw"
    if "requests" not in spec:
        loaded = check_sources([(path, text)], schema)
        errors = [[d.code, d.line] for d in loaded.diagnostics if d.severity is Severity.ERROR]
        warnings = [[d.code, d.line] for d in loaded.diagnostics if d.severity is Severity.WARNING]
        assert errors == spec.get("errors", []), "\n".join(d.render() for d in loaded.diagnostics)
        assert warnings == spec.get("warnings", [])
        for diagnostic in loaded.diagnostics:  # every diagnostic points into the file
            assert diagnostic.file == path and diagnostic.line >= 1 and diagnostic.column >= 1
            assert diagnostic.source_line
        return
    policy, loaded = compile_sources([(path, text)], schema)
    segments = segments_of(loaded.files)
    campaigns = [i for f in loaded.files for i in f.items if isinstance(i, ast.Campaign)]
    for number, request in enumerate(spec["requests"]):
        ctx = context_from_json(request, TEST_NOW)
        where = f"request {number}: {request.get('signals')}"
        if "select" in request:
            compiled = policy.select(ctx)
            assert (compiled.name if compiled else None) == request["select"], where
            assert select_campaign(campaigns, ctx, segments) == request["select"], where
        for campaign_name, expected in request.get("campaigns", {}).items():
            campaign = next(c for c in campaigns if c.name == campaign_name)
            reference = evaluate_campaign(campaign, ctx, segments)
            compiled_result = policy.campaign(campaign_name).eligible(ctx)
            if "matched" in expected:
                assert list(reference.matched_rules) == expected["matched"], where
                assert list(compiled_result.matched_rules) == expected["matched"], where
            for slot, want in expected.get("slots", {}).items():
                for label, outcome in (
                    ("reference", reference.slots[slot]),
                    ("compiled", compiled_result[slot]),
                ):
                    got = {
                        "variants": list(outcome.variants),
                        "preferred": list(outcome.preferred),
                        "pinned": outcome.pinned,
                        "boosts": {k: round(v, 9) for k, v in outcome.boosts.items()},
                    }
                    wanted = {"preferred": [], "pinned": None, "boosts": {}, **want}
                    assert got == wanted, f"{label}, {where}, slot {slot}"
