"""The rule index's bit sets: helpers, OR terms folded back to their rules, and agreement with
evaluating every rule's compiled condition directly."""

from __future__ import annotations

import itertools

import pytest
from pyroaring import BitMap

from slotwise.dsl import ast
from slotwise.dsl.compile import feature_kinds, segments_of
from slotwise.dsl.conditions import compile_condition
from slotwise.dsl.matcher import (
    FeatureKind,
    as_roaring,
    bits_of,
    build_rule_index,
    roaring_id,
    set_bits,
    term_ids,
)
from slotwise.dsl.parser import parse_policy
from slotwise.dsl.schema_file import builtin_schema
from slotwise.dsl.workload import contexts, policy_text


def test_bit_set_helpers() -> None:
    ids = [0, 7, 8, 63, 64, 65_535, 65_536, 199_999]
    assert set_bits(bits_of(ids)) == ids
    assert set_bits(bits_of([5, 5, 3])) == [3, 5]
    assert bits_of([]) == 0 and set_bits(0) == []
    plain = term_ids(10)
    assert (plain.term(0), plain.term(7), plain.rule_of(2)) == (9, 2, 7)
    split = term_ids(10, [3, 8])
    assert [split.term(r) for r in range(10)] == [9, 8, 7, 1, 6, 5, 4, 3, 0, 2]
    assert all(split.rule_of(split.term(r)) == r for r in range(10))
    assert (split.layer_base(1), split.layer_base(2)) == (10, 12)


def test_index_agrees_with_every_rules_closure() -> None:
    policy = parse_policy(policy_text(1500, seed=3))
    campaign = policy.items[0]
    assert isinstance(campaign, ast.Campaign)
    conditions = [rule.condition for rule in campaign.rules]
    kinds = feature_kinds(builtin_schema())

    def kind_of(name: str) -> FeatureKind:
        return kinds.get(name, "discrete")

    segments = segments_of([policy])
    index = build_rule_index(conditions, segments, kind_of)
    assert index.stats.terms > index.stats.rules  # the workload has OR terms
    closures = [compile_condition(c, segments) for c in conditions]
    for ctx in contexts(150, seed=5):
        expected = [rule for rule, holds in enumerate(closures) if holds(ctx)]
        assert sorted(index.ids.rule_of(t) for t in set_bits(index.match(ctx))) == expected


def test_roaring_copy_of_a_match_spans_several_containers() -> None:
    terms = [0, 1, 32_767, 32_768, 65_535, 65_536, 99_999, 131_071]
    copy = as_roaring(bits_of(terms), 131_072)
    assert [t for t in copy if t & (1 << 15)] == [roaring_id(t) for t in terms]
    assert copy.intersection_cardinality(BitMap([roaring_id(t) for t in (1, 2, 99_999)])) == 2
    assert len(as_roaring(0, 10)) == 0


def test_first_pin_in_policy_order_across_split_and_plain_rules() -> None:
    from slotwise.dsl.loader import compile_sources
    from slotwise.plugins.schema import Context

    text = """policy "p" version 1
campaign c {
  slot s at "$.a" {
    variant a "x"
    variant b "y"
    variant c "z"
  }
  rule "plain first" when user.age > 30 then pin s a
  rule "split" when device.type == "mobile" or geo.country == "DE" then pin s b
  rule "plain last" when user.age > 20 then pin s c
}
"""
    campaign = compile_sources([("p.sw", text)], builtin_schema())[0].campaigns[0]
    assert campaign._index.ids.split == 1
    cases = [
        ({"user.age": 40, "device.type": "mobile"}, "a"),
        ({"user.age": 25, "geo.country": "DE"}, "b"),
        ({"user.age": 25}, "c"),
        ({"geo.country": "DE"}, "b"),
    ]
    for signals, pinned in cases:
        assert campaign.eligible(Context(signals, 0.0))["s"].pinned == pinned, signals


RESIDUAL_HEAVY = [
    'not (device.type == "mobile" and geo.country == "DE")',
    '(device.type == "mobile" or user.age > 30) and not ("a" in user.segments or cart.value > 9)',
    'user.segments has all ["a", "b"]',
    'not user.segments has any ["a"]',
    'device.type == "mobile" or geo.country == "DE" or user.age < 20',
    'user.age in 18..30 and not (cart.value > 10 or device.type == "tablet")',
]
ACTIONS = [
    "pin s a",
    "prefer s b",
    "exclude s c",
    "boost s a by 2",
    "boost s b by 1.5",
    "exclude s a",
]


@pytest.mark.parametrize("direct_max", [0, 1_000_000])
def test_both_decide_paths_agree_with_the_reference(
    direct_max: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    from slotwise.dsl import matcher
    from slotwise.dsl.evaluate import evaluate_campaign
    from slotwise.dsl.loader import compile_sources
    from slotwise.plugins.schema import Context

    monkeypatch.setattr(matcher, "DIRECT_DECIDE_MAX", direct_max)
    lines = ['policy "p" version 1', "campaign c {", '  slot s at "$.a" {']
    lines += [f'    variant {v} "{v}"' for v in "abc"] + ["  }"]
    for i in range(70):
        condition = RESIDUAL_HEAVY[i % len(RESIDUAL_HEAVY)]
        lines.append(f'  rule "r{i}" when {condition} then {ACTIONS[i % 7 % len(ACTIONS)]}')
    policy, loaded = compile_sources([("p.sw", "\n".join([*lines, "}", ""]))], builtin_schema())
    campaign = policy.campaigns[0]
    assert campaign._plans[0].direct is (direct_max > 0)
    assert campaign._index.stats.residual_rules and campaign._index.ids.split
    item = loaded.files[0].items[0]
    assert isinstance(item, ast.Campaign)
    segments = segments_of(loaded.files)
    values = itertools.product(
        ["mobile", "tablet", None],
        ["DE", "AT", None],
        [15, 25, 40, None],
        [(), ("a",), ("a", "b"), ("b",)],
        [5, 50, None],
    )
    for device, country, age, lists, cart in values:
        named = {
            "device.type": device,
            "geo.country": country,
            "user.age": age,
            "user.segments": lists,
            "cart.value": cart,
        }
        ctx = Context({k: v for k, v in named.items() if v is not None}, 0.0)
        expected = evaluate_campaign(item, ctx, segments)
        got = campaign.eligible(ctx)
        assert got.matched_rules == expected.matched_rules, ctx.signals
        left, right = got["s"], expected.slots["s"]
        assert (left.variants, left.preferred, left.pinned) == (
            right.variants,
            right.preferred,
            right.pinned,
        ), ctx.signals
        assert dict(left.boosts) == pytest.approx(dict(right.boosts)), ctx.signals
