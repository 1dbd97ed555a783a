"""The rule index's roaring bitmaps: term ids, OR terms folded back to their rules, dense
containers, and agreement with evaluating every rule's compiled condition directly."""

from __future__ import annotations

import itertools

import pytest
from pyroaring import BitMap, FrozenBitMap

from slotwise.dsl import ast
from slotwise.dsl.compile import feature_kinds, segments_of
from slotwise.dsl.conditions import compile_condition
from slotwise.dsl.matcher import (
    CHUNK,
    PADDING,
    PER_CHUNK,
    FeatureKind,
    bits_of,
    build_rule_index,
    term_ids,
)
from slotwise.dsl.parser import parse_policy
from slotwise.dsl.schema_file import builtin_schema
from slotwise.lab.workload import contexts, policy_text


def test_bitmap_helpers_and_term_ids() -> None:
    ids = [0, 7, 8, 63, 64, 65_535, 65_536, 199_999]
    assert list(bits_of(reversed(ids))) == ids
    assert list(bits_of([5, 5, 3])) == [3, 5]
    assert isinstance(bits_of([]), FrozenBitMap) and not bits_of([])
    dense = bits_of(range(100_000))  # a range, yet bitset containers: no runs
    assert dense.get_statistics()["n_run_containers"] == 0
    plain = term_ids(10)
    assert (plain.term(0), plain.term(7), plain.rule_of(PADDING + 2)) == (
        PADDING + 9,
        PADDING + 2,
        7,
    )
    split = term_ids(10, [3, 8], layers=2)
    positions = [9, 8, 7, 1, 6, 5, 4, 3, 0, 2]
    assert [split.term(r) for r in range(10)] == [PADDING + p for p in positions]
    assert all(split.rule_of(split.term(r)) == r for r in range(10))
    # the two OR layers of the two split rules sit after the rules, in the same chunk
    assert split.split_end == PADDING + 2
    assert [split.extra(j, PADDING) for j in (1, 2)] == [PADDING + 10, PADDING + 12]
    assert split.end == PADDING + 14 and split.padding() == list(range(PADDING))


def test_term_ids_across_chunks() -> None:
    size = 2 * PER_CHUNK + 5
    plain = term_ids(size)
    terms = [plain.term(r) for r in range(size)]
    assert terms == sorted(terms, reverse=True)  # policy order, reversed: first rule = max()
    assert all(t & 0xFFFF >= PADDING for t in terms) and terms[0] == 2 * CHUNK + PADDING + 4
    assert plain.rules_of([*terms[:3], 0, CHUNK + 1]) == [0, 1, 2]  # padding skipped
    assert len(plain.padding()) == 3 * PADDING
    # a layer that no longer fits in the last chunk's tail starts the next chunk
    near_full = 2 * PER_CHUNK - 100
    tail = term_ids(near_full, list(range(1000)), layers=2)
    assert tail.shifts == (2 * CHUNK, 2 * CHUNK + 1000)
    assert tail.extra(2, tail.term(0)) == 2 * CHUNK + PADDING + 1999
    assert tail.end == 2 * CHUNK + PADDING + 2000
    big = term_ids(size, list(range(0, size, 2)), layers=1)
    assert big.split > PER_CHUNK  # the whole-chunk layout: shifted by whole chunks
    assert big.shifts[0] % CHUNK == 0
    for rule in range(0, size, 2):
        term = big.term(rule)
        assert big.extra(1, term) & 0xFFFF == term & 0xFFFF


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
        matched = index.match(ctx)
        assert isinstance(matched, BitMap)  # the request's own, ANDed in place (Match)
        assert index.ids.rules_of(matched) == expected
        assert index.count(matched) == len(expected)
        # the padding keeps every container a bitset however few rules match
        assert matched.get_statistics()["n_array_containers"] == 0


def test_index_bitmaps_have_no_run_containers() -> None:
    # runs would turn each intersection into a slow conversion (DESIGN.md: optimize=False)
    policy = parse_policy(policy_text(3000, seed=4))
    campaign = policy.items[0]
    assert isinstance(campaign, ast.Campaign)
    kinds = feature_kinds(builtin_schema())

    def kind_of(name: str) -> FeatureKind:
        return kinds.get(name, "discrete")

    index = build_rule_index(
        [rule.condition for rule in campaign.rules], segments_of([policy]), kind_of
    )
    tables = [getattr(group, "table", ()) for group in index._features]
    cells = [cell for t in tables for cell in (t.values() if isinstance(t, dict) else t)]
    assert cells
    for cell in cells:
        assert cell is None or cell.get_statistics()["n_run_containers"] == 0


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
    # past what the index splits (9 terms, 5 required elements): residual checks
    '(device.type == "mobile" or geo.country == "DE" or user.age < 20) and '
    '(cart.value > 9 or "a" in user.segments or device.type == "tablet")',
    'user.segments has all ["a", "b", "c", "d", "e"] or geo.country == "AT"',
    'not user.segments has all ["a", "b"] and user.age > 20',
]
ACTIONS = [
    "pin s a",
    "prefer s b",
    "exclude s c",
    "boost s a by 2",
    "boost s b by 1.5",
    "exclude s a",
]


@pytest.mark.parametrize("rules", [70, 700])
def test_pins_and_actions_agree_with_the_reference(rules: int) -> None:
    from slotwise.dsl.evaluate import evaluate_campaign
    from slotwise.dsl.loader import compile_sources
    from slotwise.plugins.schema import Context

    lines = ['policy "p" version 1', "campaign c {", '  slot s at "$.a" {']
    lines += [f'    variant {v} "{v}"' for v in "abc"] + ["  }"]
    for i in range(rules):
        condition = RESIDUAL_HEAVY[i % len(RESIDUAL_HEAVY)]
        lines.append(f'  rule "r{i}" when {condition} then {ACTIONS[i % 7 % len(ACTIONS)]}')
    policy, loaded = compile_sources([("p.sw", "\n".join([*lines, "}", ""]))], builtin_schema())
    campaign = policy.campaigns[0]
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
