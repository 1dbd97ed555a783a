"""Conditions compiled to one Python function each (dsl/condition_code.py): the same answers as
the reference evaluator on every form of the language, and what the matcher checks when the
index is told to split nothing (every OR and list condition a residual check)."""

from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from slotwise.dsl import ast, matcher
from slotwise.dsl.condition_code import compile_code
from slotwise.dsl.evaluate import holds
from slotwise.dsl.parser import parse_policy
from slotwise.lab import realistic_workload
from slotwise.types import Context
from tests.dsl.test_matcher_property import conditions, requests
from tests.dsl.test_matcher_realistic import _agree, _thinned


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(conditions(), st.lists(requests(), min_size=1, max_size=8))
def test_compiled_code_agrees_with_the_reference(text: str, contexts: list[Context]) -> None:
    policy = parse_policy(
        'policy "p" version 1\nsegment young: user.age < 30 and user.age >= 18\n'
        f'campaign c {{\n  slot s at "$.s" {{\n    variant x "X"\n  }}\n'
        f'  rule "r" when {text} then pin s x\n}}\n',
        "p.sw",
    )
    segments = {i.name: i for i in policy.items if isinstance(i, ast.Segment)}
    campaign = next(i for i in policy.items if isinstance(i, ast.Campaign))
    condition = campaign.rules[0].condition
    check = compile_code(condition, segments)
    for ctx in contexts:
        assert check(ctx) is holds(condition, ctx, segments), (text, ctx.signals)


def test_literals_never_become_code() -> None:
    policy = parse_policy(
        'policy "p" version 1\ncampaign c {\n  slot s at "$.s" {\n    variant x "X"\n  }\n'
        '  rule "r" when geo.city == "x\\") or __import__(\\"os\\")" then pin s x\n}\n',
        "p.sw",
    )
    campaign = next(i for i in policy.items if isinstance(i, ast.Campaign))
    check = compile_code(campaign.rules[0].condition, {})
    assert check(Context({"geo.city": 'x") or __import__("os")'}, 0.0)) is True
    assert check(Context({"geo.city": "x"}, 0.0)) is False


def test_residual_checks_agree_when_nothing_is_split(monkeypatch: pytest.MonkeyPatch) -> None:
    # one term per rule and no list lookups: every OR, negated compound and list condition
    # is left to the compiled residual checks
    monkeypatch.setattr(matcher, "MAX_OR_TERMS", 1)
    monkeypatch.setattr(matcher, "MAX_LIST_SLOTS", 0)
    text = realistic_workload.policy_text(300, 5)
    rng = random.Random(5)
    contexts = list(realistic_workload.contexts(120, 6))
    contexts += [_thinned(ctx, rng) for ctx in contexts]
    from slotwise.dsl.loader import compile_sources
    from slotwise.dsl.schema_file import builtin_schema

    policy, _ = compile_sources([("p.sw", text)], builtin_schema())
    index = policy.campaigns[0]._index
    assert index.stats.residual_rules > 20 and not index.ids.split
    assert len(index._checks) < index.stats.residual_rules  # alike checks shared
    assert _agree(text, contexts) > 0
