"""The triggered-campaigns step: a firing trigger's campaign, first in precedence, with the
ladder's offer; nothing without personal consent; a cancelled or expired trigger is generic."""

from __future__ import annotations

import time
from typing import Any

from slotwise.plugins.gather import Gathered
from slotwise.proxy.adapters import parse_response
from slotwise.proxy.decide import personalise
from slotwise.proxy.exchange import Exchange
from slotwise.proxy.personalisers.triggered import TriggeredCampaigns
from slotwise.proxy.state import HistoryItem
from slotwise.proxy.state.history import StoredHistory
from tests.proxy.personalisers.shells import PAGE, Spy
from tests.proxy.personalisers.support import SCOPE, compile_policy, engine, run

POLICY = """
campaign reminder {
  applies when ad.placement == "home"
  slot title at "$.hero.title" { variant back "Your cart misses you" }
}
campaign generic {
  applies when ad.placement == "home"
  slot title at "$.hero.title" { variant hello "Hello" }
}
trigger cart_abandon {
  on event add_to_cart
  unless event purchase within 2h
  window 7d
  offer by cart.value {
    0..<50 => free_shipping
    50.. => discount 10%
  }
  show campaign reminder
}
"""


def _run(
    policy_text: str, events: list[tuple[str, float]], *, personal: bool = True, cart: float = 75
) -> Exchange:
    import json

    now = time.time()
    history = StoredHistory(HistoryItem(name, now - ago) for name, ago in events)
    signals: dict[str, Any] = {"cart.value": cart, "consent.level": "personal"}
    gathered = Gathered(signals, personal, "u1" if personal else None, history)
    exchange = Exchange(SCOPE, 0.0, policy=compile_policy(policy_text), gathered=gathered)
    exchange.document = parse_response(b"application/json", json.dumps(PAGE).encode(), b"")
    exchange.codings = []
    personalise(engine(), exchange)
    return exchange


def _served(exchange: Exchange) -> Any:
    import json

    assert exchange.out is not None
    return json.loads(exchange.out)


def test_runs_when_a_trigger_shows_a_campaign_and_names_its_locations() -> None:
    step = TriggeredCampaigns()
    policy = compile_policy(POLICY)
    assert step.wanted(policy)
    assert list(step.locations(policy)) == []  # it claims its locations itself when it fires
    assert not step.wanted(compile_policy(POLICY.split("trigger")[0]))
    spy = Spy(step)
    exchange = run(engine(spy), policy, PAGE)  # no consent: nothing
    assert spy.runs == 1 and exchange.records is None and exchange.out is None


def test_an_armed_trigger_shows_its_campaign_with_the_ladders_offer() -> None:
    exchange = _run(POLICY, [("add_to_cart", 60)], cart=75)
    page = _served(exchange)
    assert page["hero"]["title"] == "Your cart misses you"
    offer = page["offer"]
    assert offer["type"] == "discount" and offer["value"] == 10
    ((record, user),) = exchange.records or []
    assert (record.campaign, record.trigger, record.trigger_offer, user) == (
        "reminder", "cart_abandon", "discount_10", "u1"
    )  # fmt: skip
    assert offer["id"] == f"{record.id}.discount_10"
    small = _served(_run(POLICY, [("add_to_cart", 60)], cart=20))
    assert small["offer"]["type"] == "free_shipping"


def test_without_an_armed_trigger_the_regular_campaigns_serve() -> None:
    for events in ([], [("add_to_cart", 3600), ("purchase", 1800)], [("add_to_cart", 8 * 86400)]):
        exchange = _run(POLICY, events)
        assert _served(exchange)["hero"]["title"] == "Hello", events
        assert [r.campaign for r, _ in exchange.records or []] == ["generic"]
        assert "offer" not in _served(exchange) or _served(exchange)["offer"] == "none"


def test_no_trigger_without_personal_consent() -> None:
    exchange = _run(POLICY, [("add_to_cart", 60)], personal=False)
    assert _served(exchange)["hero"]["title"] == "Hello"


def test_a_purchase_before_the_cart_event_does_not_cancel_it() -> None:
    # unless counts from the `on` event on, whatever order the events arrived in
    exchange = _run(POLICY, [("purchase", 120), ("add_to_cart", 60)])
    assert _served(exchange)["hero"]["title"] == "Your cart misses you"


def test_the_triggered_campaign_has_its_own_holdout() -> None:
    policy = POLICY.replace(
        'variant back "Your cart misses you" }',
        'variant back "Your cart misses you" }\n holdout 100%',
    )
    exchange = _run(policy, [("add_to_cart", 60)])
    records = exchange.records or []
    assert [(r.campaign, r.holdout, r.trigger) for r, _ in records] == [
        ("reminder", True, "cart_abandon")
    ]
    page = _served(exchange)  # trackers only: the control sees the upstream's creative
    assert page["hero"]["title"] == "Welcome" and page["offer"] == "none"
