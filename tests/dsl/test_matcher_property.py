"""Property: for generated policies and requests, the compiled bitmap matcher and the
reference evaluator agree on matched rules and on every slot's eligibility."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from slotwise.dsl import ast
from slotwise.dsl.compile import segments_of
from slotwise.dsl.evaluate import evaluate_campaign
from slotwise.dsl.loader import compile_sources
from slotwise.dsl.schema_file import builtin_schema
from slotwise.dsl.testing import TEST_NOW, ListHistory
from slotwise.plugins.schema import Context

SCHEMA = builtin_schema()
COUNTRIES = ["DE", "AT", "FR"]
DEVICES = ["mobile", "tablet", "desktop"]
SEGMENTS = ["a", "b", "c"]
EVENTS = ["add_to_cart", "purchase", "product_view"]


def _number(draw: Any) -> int:
    return draw(st.integers(min_value=0, max_value=6)) * 10


@st.composite
def atoms(draw: Any) -> str:
    kind = draw(st.integers(min_value=0, max_value=11))
    if kind == 0:
        op = draw(st.sampled_from(["==", "!="]))
        return f'geo.country {op} "{draw(st.sampled_from(COUNTRIES))}"'
    if kind == 1:
        values = draw(st.lists(st.sampled_from(DEVICES), min_size=1, max_size=2, unique=True))
        negated = draw(st.booleans())
        listed = ", ".join(f'"{v}"' for v in values)
        return f"device.type {'not in' if negated else 'in'} [{listed}]"
    if kind == 2:
        op = draw(st.sampled_from(["<", "<=", ">", ">=", "==", "!="]))
        return f"user.age {op} {_number(draw)}"
    if kind == 3:
        low = _number(draw)
        high = low + _number(draw) + 10
        form = draw(st.sampled_from(["{l}..{h}", "{l}..<{h}", "{l}..", "..<{h}"]))
        negated = "not in" if draw(st.booleans()) else "in"
        return f"cart.value {negated} {form.format(l=low, h=high)}"
    if kind == 4:
        return (
            "user.is_new"
            if draw(st.booleans())
            else f"user.is_new == {draw(st.sampled_from(['true', 'false']))}"
        )
    if kind == 5:
        values = draw(st.lists(st.sampled_from(SEGMENTS), min_size=1, max_size=2, unique=True))
        quantifier = draw(st.sampled_from(["any", "all"]))
        return (
            f"user.segments has {quantifier} [{', '.join(chr(34) + v + chr(34) for v in values)}]"
        )
    if kind == 6:
        return f'"{draw(st.sampled_from(SEGMENTS))}" in user.segments'
    if kind == 7:
        window = draw(st.sampled_from(["1h", "1d", "7d"]))
        return f"event {draw(st.sampled_from(EVENTS))} within {window}"
    if kind == 8:
        op = draw(st.sampled_from([">=", "<", "=="]))
        return f"count of {draw(st.sampled_from(EVENTS))} within 1d {op} {draw(st.integers(0, 3))}"
    if kind == 9:
        return f"user.visits in [{draw(st.integers(0, 3))}, {draw(st.integers(0, 3))}]"
    if kind == 10:
        return "young"
    return f'time.weekday == "{draw(st.sampled_from(["sat", "sun"]))}"'


@st.composite
def conditions(draw: Any, depth: int = 0) -> str:
    if depth >= 2 or draw(st.integers(0, 2)) == 0:
        return draw(atoms())
    kind = draw(st.sampled_from(["and", "or", "not"]))
    if kind == "not":
        return f"not ({draw(conditions(depth + 1))})"
    parts = draw(st.lists(conditions(depth + 1), min_size=2, max_size=3))
    return "(" + f" {kind} ".join(parts) + ")"


@st.composite
def actions(draw: Any) -> str:
    slot = draw(st.sampled_from(["s", "t"]))
    variant = draw(st.sampled_from(["x", "y", "z"]))
    kind = draw(st.sampled_from(["pin", "prefer", "exclude", "boost"]))
    if kind == "boost":
        return f"boost {slot} {variant} by {draw(st.sampled_from(['2', '1.5', '0.5']))}"
    return f"{kind} {slot} {variant}"


@st.composite
def policies(draw: Any) -> str:
    rules = []
    for number in range(draw(st.integers(1, 12))):
        acts = " and ".join(draw(st.lists(actions(), min_size=1, max_size=2)))
        rules.append(f'  rule "r{number}" when {draw(conditions())} then {acts}')
    return "\n".join(
        [
            'policy "p" version 1',
            "segment young: user.age < 30 and user.age >= 18",
            "campaign c {",
            '  slot s at "$.s" {\n    variant x "X"\n    variant y "Y"\n    variant z "Z"\n  }',
            '  slot t at "$.t" {\n    variant x "X"\n    variant y "Y"\n    variant z "Z"\n  }',
            *rules,
            "}",
        ]
    )


@st.composite
def requests(draw: Any) -> Context:
    signals: dict[str, Any] = {}
    pools: dict[str, Any] = {
        "geo.country": st.sampled_from([*COUNTRIES, "US"]),
        "device.type": st.sampled_from(DEVICES),
        "user.age": st.one_of(st.integers(0, 70), st.floats(0, 70, allow_nan=False)),
        "cart.value": st.one_of(st.integers(0, 90), st.floats(0, 90, allow_nan=False)),
        "user.is_new": st.booleans(),
        "user.segments": st.lists(st.sampled_from(SEGMENTS), max_size=3, unique=True).map(tuple),
        "user.visits": st.integers(0, 4),
        "time.weekday": st.sampled_from(["sat", "sun", "mon"]),
    }
    for name, pool in pools.items():
        choice = draw(st.integers(0, 9))
        if choice == 0:
            continue  # missing
        if choice == 1:  # a value of the wrong kind, as a misbehaving provider might send
            signals[name] = draw(st.sampled_from(["x", 1, True, 2.5, ("a",)]))
        else:
            signals[name] = draw(pool)
    events = draw(
        st.lists(st.tuples(st.sampled_from(EVENTS), st.integers(0, 10 * 86400)), max_size=5)
    )
    history = ListHistory((event, TEST_NOW - ago) for event, ago in events)
    return Context(signals, TEST_NOW, history)


@settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(policies(), st.lists(requests(), min_size=1, max_size=6))
def test_compiled_matcher_agrees_with_reference(text: str, contexts: list[Context]) -> None:
    policy, loaded = compile_sources([("p.sw", text)], SCHEMA)
    segments = segments_of(loaded.files)
    campaign = next(i for i in loaded.files[0].items if isinstance(i, ast.Campaign))
    compiled = policy.campaign("c")
    for ctx in contexts:
        reference = evaluate_campaign(campaign, ctx, segments)
        result = compiled.eligible(ctx)
        assert result.matched_rules == reference.matched_rules, ctx.signals
        for slot in ("s", "t"):
            left, right = reference.slots[slot], result[slot]
            assert (left.variants, left.preferred, left.pinned) == (
                right.variants,
                right.preferred,
                right.pinned,
            )
            assert left.boosts.keys() == right.boosts.keys()
            for variant, factor in left.boosts.items():
                assert abs(factor - right.boosts[variant]) < 1e-9
