"""The triggered-campaigns step: first in precedence, runs when there are triggers, serves
nothing yet (the campaign a trigger shows is served by the campaigns step)."""

from __future__ import annotations

from slotwise.proxy.personalisers.triggered import TriggeredCampaigns
from tests.proxy.personalisers.shells import PAGE, Spy
from tests.proxy.personalisers.support import campaigns_of, compile_policy, engine, run, served

POLICY = """
campaign reminder {
  applies when ad.placement == "home"
  slot title at "$.hero.title" { variant back "Your cart misses you" }
}
trigger cart_abandon {
  on event add_to_cart
  window 7d
  show campaign reminder
}
"""


def test_runs_when_the_policy_has_triggers_and_decides_nothing_itself() -> None:
    step = TriggeredCampaigns()
    policy = compile_policy(POLICY)
    assert step.wanted(policy) and list(step.locations(policy)) == []
    assert not step.wanted(compile_policy(POLICY.split("trigger")[0]))
    spy = Spy(step)
    exchange = run(engine(spy), policy, PAGE)
    assert spy.runs == 1 and exchange.records is None and exchange.out is None


def test_the_shown_campaign_is_served_as_a_campaign() -> None:
    exchange = run(engine(), compile_policy(POLICY), PAGE)
    assert campaigns_of(exchange) == ["reminder"]
    assert served(exchange)["hero"]["title"] == "Your cart misses you"
