"""The generated match (dsl/match_code.py) against the lookup objects it replaces: the same
terms for every request, odd signal values included (a number where a string is expected, a
string where a number is, NaN, booleans, lists, an unhashable value), on the realistic
workload and on small policies where a lookup can accept every term (None) or none."""

from __future__ import annotations

import random
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from slotwise.dsl.compiled import CompiledCampaign
from slotwise.dsl.loader import compile_sources
from slotwise.dsl.match_code import Called, Discrete, Grouped, compile_match
from slotwise.dsl.matcher import _plan
from slotwise.dsl.schema_file import builtin_schema
from slotwise.lab import realistic_workload
from slotwise.types import Context

SCHEMA = builtin_schema()
ODD = ["x", "DE", 7, 0, -3.5, True, False, ("aud1",), float("nan"), ["unhashable"], None]


def _campaigns(text: str) -> list[CompiledCampaign]:
    policy, _ = compile_sources([("p.sw", text)], SCHEMA)
    return list(policy.campaigns)


def _odd(ctx: Context, rng: random.Random) -> Context:
    signals: dict[str, Any] = {}
    for name, value in ctx.signals.items():
        roll = rng.random()
        if roll < 0.2:
            continue
        signals[name] = rng.choice(ODD) if roll < 0.45 else value
    return Context(signals, ctx.now, ctx.history)


def _same(campaign: CompiledCampaign, contexts: list[Context]) -> int:
    index = campaign._index
    matched = 0
    for ctx in contexts:
        fast = index.match_terms(ctx)
        assert fast == index.match_terms_by_objects(ctx), ctx.signals
        matched += index.count(index.fold(fast))
    return matched


@settings(max_examples=3, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 10_000))
def test_the_generated_match_is_the_lookups_match(seed: int) -> None:
    text = realistic_workload.policy_text(200, seed)
    rng = random.Random(seed)
    contexts = list(realistic_workload.contexts(100, seed + 1))
    contexts += [_odd(ctx, rng) for ctx in contexts]
    (campaign,) = _campaigns(text)
    # every signal feature is read inline (none falls back to a call of its group)
    plans = [_plan(lookup) for lookup in campaign._index._features]
    assert any(isinstance(plan, Grouped) for plan in plans)
    assert _same(campaign, contexts) > 0


HEADER = 'policy "p" version 1\n'
SLOT = 'slot hero at "$.hero" { variant a "A" variant b "B" }\n'


def test_lookups_that_accept_every_term_or_none() -> None:
    # `geo.country != "DE"` accepts every term for a missing country (None in its table);
    # a request that matches nothing returns the padding alone; no lookup at all: every term
    text = (
        HEADER
        + "campaign c {\n"
        + SLOT
        + 'rule "r1" when geo.country != "DE" then pin hero a\n'
        + 'rule "r2" when user.age >= 30 and geo.country == "FR" then pin hero b\n'
        + "}\n"
        + "campaign d {\n"
        + SLOT
        + 'rule "r3" when "vip" in user.segments then pin hero a\n'
        + "}\n"
        + "campaign e {\n"
        + SLOT
        + "}\n"
    )
    contexts = [
        Context({}, 0.0),
        Context({"geo.country": "DE"}, 0.0),
        Context({"geo.country": "FR", "user.age": 40}, 0.0),
        Context({"geo.country": 3, "user.age": "old"}, 0.0),
        Context({"user.segments": ("vip", "x")}, 0.0),
        Context({"user.segments": "vip"}, 0.0),
    ]
    for campaign in _campaigns(text):
        _same(campaign, contexts)


def test_names_and_tables_reach_the_code_as_bound_values_not_text() -> None:
    # a signal name that is not an identifier and a string that looks like code
    feature = Discrete('x"); import os; ("', {"a": 0}, True, 1, 2, lambda ctx: 1)
    table = ["A", "OTHER", "MISSING"]
    match = compile_match([Grouped(table, ((feature, 1),))], "ALL", -1, None)
    assert match(Context({}, 0.0)) == "MISSING"
    assert match(Context({'x"); import os; ("': "a"}, 0.0)) == "A"
    assert match(Context({'x"); import os; ("': 5}, 0.0)) == "OTHER"
    everything = compile_match([Called(lambda ctx: None)], "ALL", -1, None)
    assert everything(Context({}, 0.0)) == "ALL"
