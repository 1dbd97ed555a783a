"""The steps in their declared precedence and a policy set's plan (proxy/personalisers)."""

from __future__ import annotations

from typing import Any

from slotwise.dsl.compiled import CompiledPolicySet
from slotwise.dsl.location import Location, parse_location
from slotwise.dsl.precedence import CAMPAIGN, PRECEDENCE, RECOMMENDATION
from slotwise.proxy.exchange import MAX_UNITS
from slotwise.proxy.personalisers import STEPS, Pipeline
from slotwise.proxy.personalisers.campaigns import Campaigns
from slotwise.proxy.personalisers.recommendations import Recommendations
from tests.proxy.personalisers.support import campaigns_of, compile_policy, engine, run, served

POLICY = """
campaign hero {
  applies when ad.placement == "home"
  slot title at "$.hero.title" { variant fresh "Fresh for spring" }
  slot items at "$.items[0].name" { variant first "Boots" }
}
recommend for_you at "$.items[0].name" use trending(24h) limit 4
"""
PAGE = {"placement": "home", "hero": {"title": "Welcome"}, "items": [{"name": "x"}], "note": "n"}


class Note:
    """A test-only step at the recommendations' place: writes ``$.note`` of every document."""

    kind = RECOMMENDATION
    location = parse_location("$.note")

    def wanted(self, policy: CompiledPolicySet) -> bool:
        return True

    def locations(self, policy: CompiledPolicySet) -> Any:
        return [("note", self.location)]

    def personalise(self, proxy: Any, exchange: Any) -> None:
        exchange.document.units[0].write(self.location, "written by the note step")
        exchange.changed = True


def test_the_built_in_steps_are_one_per_kind_in_precedence_order() -> None:
    assert [step.kind for step in Pipeline().steps] == list(PRECEDENCE)
    assert sorted(step.kind for step in STEPS) == sorted(PRECEDENCE)
    # whatever order they come in
    assert [s.kind for s in Pipeline([Recommendations(), Campaigns()]).steps] == [
        CAMPAIGN,
        RECOMMENDATION,
    ]


def test_a_plan_holds_the_steps_a_policy_set_needs_and_its_shared_locations() -> None:
    pipeline = Pipeline()
    policy = compile_policy(POLICY)
    plan = pipeline.plan(policy)
    assert [step.kind for step in plan.steps] == [CAMPAIGN, RECOMMENDATION]
    shared: frozenset[Location] = frozenset({parse_location("$['items'][0]['name']")})
    assert plan.shared == shared  # two personalisations write it; $.hero.title only one
    assert pipeline.plan(policy) is plan  # worked out once per snapshot
    assert pipeline.plan(compile_policy(POLICY)) is not plan


def test_a_second_step_writes_another_location_of_the_same_document() -> None:
    exchange = run(engine(*STEPS, Note()), compile_policy(POLICY), PAGE)
    page = served(exchange)
    assert page["hero"]["title"] == "Fresh for spring"
    assert page["items"][0]["name"] == "Boots"
    assert page["note"] == "written by the note step"
    assert campaigns_of(exchange) == ["hero"]


def test_at_most_max_units_ad_units_are_personalised() -> None:
    policy = compile_policy(
        'campaign c { applies when ad.campaign_id == "a"\n'
        '  slot t at "native:title" { variant v "New" } }'
    )
    bids = [
        {"id": str(i), "impid": str(i), "cid": "a", "adm": '{"assets": [{"title": {"text": "x"}}]}'}
        for i in range(MAX_UNITS + 2)
    ]
    exchange = run(engine(), policy, {"id": "r", "seatbid": [{"bid": bids}]})
    assert len(exchange.records or ()) == MAX_UNITS
