"""The padded id space of large campaigns gives the same matches as plain ids."""

from __future__ import annotations

from slotwise.dsl import ast
from slotwise.dsl.compile import feature_kinds, segments_of
from slotwise.dsl.matcher import FeatureKind, TermIds, build_rule_index, term_ids
from slotwise.dsl.parser import parse_policy
from slotwise.dsl.schema_file import builtin_schema
from slotwise.dsl.workload import contexts, policy_text


def test_term_ids_round_trip() -> None:
    ids = TermIds(200_000, 4097)
    for rule in (0, 1, 61438, 61439, 61440, 199_999):
        assert ids.rule_of(ids.term(rule)) == rule
    assert [ids.term(r) for r in (0, 61438, 61439)] == [4097, 65535, 65536 + 4097]
    assert ids.layer_offset == ids.chunks * 65536
    plain = term_ids(10)
    assert (plain.padding, plain.term(7), plain.rule_of(7)) == (0, 7, 7)
    assert term_ids(5000).padding == 0
    assert term_ids(5000, pad=True).padding == 4097


def test_padded_and_plain_indexes_agree() -> None:
    policy = parse_policy(policy_text(1500, seed=3))
    campaign = policy.items[0]
    assert isinstance(campaign, ast.Campaign)
    conditions = [rule.condition for rule in campaign.rules]
    kinds = feature_kinds(builtin_schema())

    def kind_of(name: str) -> FeatureKind:
        return kinds.get(name, "discrete")

    segments = segments_of([policy])
    plain = build_rule_index(conditions, segments, kind_of, pad=False)
    padded = build_rule_index(conditions, segments, kind_of, pad=True)
    assert padded.stats.terms > padded.stats.rules  # the workload has OR terms
    for ctx in contexts(150, seed=5):
        expected = list(plain.match(ctx))
        got = [padded.ids.rule_of(term) for term in padded.match(ctx)]
        assert got == expected
