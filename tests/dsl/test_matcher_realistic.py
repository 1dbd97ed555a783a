"""Property: on rules as marketers write them (lab/realistic_workload.py) and on generated
conditions with the shapes the index splits (ORs across signals, ``not (a and b)``, named
segments with ORs inside, ``has all`` and its negation, behaviour counts and ``event within``
on one window), the compiled matcher and the reference evaluator agree on every request,
signals missing or of the wrong kind included."""

from __future__ import annotations

import random
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from slotwise.dsl import ast
from slotwise.dsl.compile import segments_of
from slotwise.dsl.evaluate import evaluate_campaign
from slotwise.dsl.explain import same_outcome
from slotwise.dsl.loader import compile_sources
from slotwise.dsl.schema_file import builtin_schema
from slotwise.dsl.testing import ListHistory
from slotwise.lab import realistic_workload
from slotwise.types import Context, NoHistory

SCHEMA = builtin_schema()


def _agree(text: str, contexts: list[Context]) -> int:
    policy, loaded = compile_sources([("p.sw", text)], SCHEMA)
    segments = segments_of(loaded.files)
    campaign = next(i for f in loaded.files for i in f.items if isinstance(i, ast.Campaign))
    compiled = policy.campaign(campaign.name)
    matched = 0
    for ctx in contexts:
        reference = evaluate_campaign(campaign, ctx, segments)
        result = compiled.eligible(ctx)
        assert result.matched_rules == reference.matched_rules, ctx.signals
        for slot, outcome in reference.slots.items():
            assert same_outcome(outcome, result[slot]), (slot, ctx.signals)
        matched += len(reference.matched_rules)
    return matched


def _thinned(ctx: Context, rng: random.Random) -> Context:
    """The request with some signals dropped and some of the wrong kind."""
    signals: dict[str, Any] = {}
    for name, value in ctx.signals.items():
        roll = rng.random()
        if roll < 0.25:
            continue
        if roll < 0.3:
            value = rng.choice(["x", 7, True, 2.5, ("aud1",), float("nan")])
        signals[name] = value
    return Context(signals, ctx.now, ctx.history)


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 10_000))
def test_realistic_workload_agrees_on_every_request(seed: int) -> None:
    text = realistic_workload.policy_text(400, seed)
    rng = random.Random(seed)
    contexts = list(realistic_workload.contexts(150, seed + 1))
    contexts += [_thinned(ctx, rng) for ctx in contexts]
    assert _agree(text, contexts) > 0  # not vacuous: rules do match


def test_requests_without_consent_agree() -> None:
    # NoHistory (what the proxy passes without consent) takes the all-quiet behaviour set
    # without asking the history: the same match as an empty history, and the reference's
    text = realistic_workload.policy_text(1500, 11)
    contexts = list(realistic_workload.contexts(150, 12))
    policy, _ = compile_sources([("p.sw", text)], SCHEMA)
    behaviour = [f for f in policy.campaigns[0]._index._features if hasattr(f, "all_quiet")]
    assert behaviour  # the workload has behaviour rules
    no_consent = [Context(ctx.signals, ctx.now, NoHistory()) for ctx in contexts]
    assert _agree(text, contexts + no_consent) > 0
    compiled = policy.campaigns[0]
    for ctx, bare in zip(contexts, no_consent, strict=True):
        empty = Context(ctx.signals, ctx.now, ListHistory([]))
        assert compiled.eligible(bare).matched_rules == compiled.eligible(empty).matched_rules


COUNTRIES = ["DE", "AT", "FR"]
ELEMENTS = ["a", "b", "c", "d"]
EVENTS = ["purchase", "add_to_cart"]


@st.composite
def literals(draw: Any) -> str:
    kind = draw(st.integers(0, 9))
    if kind == 0:
        op = draw(st.sampled_from(["==", "!="]))
        return f'geo.country {op} "{draw(st.sampled_from(COUNTRIES))}"'
    if kind == 1:
        return f"user.age {draw(st.sampled_from(['<', '>=']))} {draw(st.integers(2, 5)) * 10}"
    if kind == 2:
        values = draw(st.lists(st.sampled_from(ELEMENTS), min_size=1, max_size=3, unique=True))
        quantifier = draw(st.sampled_from(["any", "all"]))
        listed = ", ".join(f'"{v}"' for v in values)
        return f"user.segments has {quantifier} [{listed}]"
    if kind == 3:
        return f'"{draw(st.sampled_from(ELEMENTS))}" in user.segments'
    if kind == 4:
        return f"event {draw(st.sampled_from(EVENTS))} within {draw(st.sampled_from(['1d', '7d']))}"
    if kind == 5:
        op = draw(st.sampled_from([">=", "<", "==", "!="]))
        window = draw(st.sampled_from(["1d", "7d"]))
        event = draw(st.sampled_from(EVENTS))
        return f"count of {event} within {window} {op} {draw(st.integers(0, 3))}"
    if kind == 6:
        return draw(st.sampled_from(["dach", "big_or_loyal", "not_both"]))
    if kind == 7:
        return "user.is_new"
    if kind == 8:
        return f"cart.value in {draw(st.integers(0, 5)) * 20}..<{draw(st.integers(6, 9)) * 20}"
    return f'device.type in ["mobile", "{draw(st.sampled_from(["tablet", "desktop"]))}"]'


@st.composite
def conditions(draw: Any, depth: int = 0) -> str:
    if depth >= 3 or draw(st.integers(0, 2)) == 0:
        return draw(literals())
    kind = draw(st.sampled_from(["and", "or", "not"]))
    if kind == "not":
        return f"not ({draw(conditions(depth + 1))})"
    parts = draw(st.lists(conditions(depth + 1), min_size=2, max_size=3))
    return "(" + f" {kind} ".join(parts) + ")"


@st.composite
def requests(draw: Any) -> Context:
    pools: dict[str, Any] = {
        "geo.country": st.sampled_from([*COUNTRIES, "US"]),
        "user.age": st.integers(10, 70),
        "user.segments": st.lists(st.sampled_from(ELEMENTS), max_size=4, unique=True).map(tuple),
        "user.is_new": st.booleans(),
        "cart.value": st.floats(0, 200, allow_nan=False),
        "device.type": st.sampled_from(["mobile", "tablet", "desktop"]),
        "request.language": st.sampled_from(["de", "en"]),
    }
    signals: dict[str, Any] = {}
    for name, pool in pools.items():
        choice = draw(st.integers(0, 7))
        if choice == 0:
            continue
        if choice == 1:
            signals[name] = draw(st.sampled_from(["x", 1, True, 2.5, ("a",)]))
        else:
            signals[name] = draw(pool)
    events = draw(
        st.lists(st.tuples(st.sampled_from(EVENTS), st.integers(0, 9 * 86400)), max_size=6)
    )
    return Context(signals, 1e9, ListHistory((e, 1e9 - ago) for e, ago in events))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(conditions(), min_size=1, max_size=10),
    st.lists(requests(), min_size=1, max_size=8),
)
def test_split_shapes_agree(conds: list[str], contexts: list[Context]) -> None:
    actions = ["pin s x", "prefer s y", "exclude s z", "boost s y by 2"]
    rules = [f'  rule "r{i}" when {cond} then {actions[i % 4]}' for i, cond in enumerate(conds)]
    text = "\n".join(
        [
            'policy "p" version 1',
            'segment dach: geo.country in ["DE", "AT"] or request.language == "de"',
            "segment big_or_loyal: cart.value >= 100 or count of purchase within 7d >= 2",
            'segment not_both: not (user.is_new and "a" in user.segments)',
            "campaign c {",
            '  slot s at "$.s" {\n    variant x "X"\n    variant y "Y"\n    variant z "Z"\n  }',
            *rules,
            "}",
        ]
    )
    _agree(text, contexts)
