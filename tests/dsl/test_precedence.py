"""Contested slot locations: which personalisation wins, checked when the policy compiles.

The line numbers of each warning are conformance data (conformance/warn_contested_location.*);
these tests pin what a warning says and where it lands.
"""

from __future__ import annotations

from collections.abc import Callable

from slotwise.dsl.compiled import CompiledPolicySet
from slotwise.dsl.precedence import (
    CAMPAIGN,
    OFFERS,
    PRECEDENCE,
    RECOMMENDATION,
    RERANK,
    TRIGGERED,
)

TWO_CAMPAIGNS = """
campaign hero {
  applies when request.page_type == "home"
  slot title at "$.hero.title" { variant a "A" }
}
campaign everywhere {
  slot title at "$.hero.title" { variant b "B" }
  slot other at "$.other" { variant c "C" }
}
"""


def test_the_declared_order() -> None:
    assert PRECEDENCE == (TRIGGERED, CAMPAIGN, OFFERS, RECOMMENDATION, RERANK)


def test_the_warning_names_both_the_location_and_the_winner(
    compile_text: Callable[[str], CompiledPolicySet],
) -> None:
    policy = compile_text(TWO_CAMPAIGNS)
    (warning,) = [w for w in policy.warnings if w.code == "contested_location"]
    assert warning.message == (
        'campaign "everywhere" writes "$.hero.title" as campaign "hero" does, and both can apply '
        'to one response: campaign "hero" wins (the first in policy order) and campaign '
        '"everywhere" is skipped there'
    )
    assert (warning.line, warning.column) == (8, 17)  # the loser's location
    assert warning.hint


def test_campaigns_that_cannot_meet_are_not_contested(
    compile_text: Callable[[str], CompiledPolicySet],
) -> None:
    policy = compile_text(
        """
campaign home { applies when request.page_type == "home"
  slot title at "$.hero.title" { variant a "A" } }
campaign cart { applies when request.page_type == "cart" and device.type == "mobile"
  slot title at "$.hero.title" { variant b "B" } }
"""
    )
    assert [w.code for w in policy.warnings] == []


def test_a_campaign_outranks_a_recommendation_whatever_the_file_order(
    compile_text: Callable[[str], CompiledPolicySet],
) -> None:
    policy = compile_text(
        """
recommend for_you at "$.items" use trending(24h) limit 4
campaign items { applies when request.page_type == "home"
  slot first at "$.items" { variant a "A" } }
"""
    )
    (warning,) = [w for w in policy.warnings if w.code == "contested_location"]
    assert warning.line == 3 and "campaigns come before recommendations" in warning.message
    assert 'recommendation "for_you" is skipped' in warning.message
