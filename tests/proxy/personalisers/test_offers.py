"""The offers step on real documents: the offer at the set's location, guards as eligibility,
a campaign that claimed the location first wins it, a spent budget and the cap."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

from slotwise.proxy.exchange import FailOpen
from slotwise.proxy.http_hygiene import ForwardingPolicy
from slotwise.proxy.offer_budget import OfferBudgets
from slotwise.proxy.offer_chooser import OfferChooser
from slotwise.proxy.offers_config import OffersConfig
from slotwise.proxy.personalisers.offers import Offers
from tests.proxy.personalisers.support import compile_policy, engine, run, served

OFFERS = """
offers checkout {
  slot at "$.offer"
  arms none, discount 10%, discount 20%, bogo
  guard discount <= 10% when cart.value < 50
  guard no bogo when cart.count < 2
}
"""
PAGE = {"cart": {"subtotal": 40.0, "count": 1}, "offer": None}


def _engine(config: OffersConfig | None = None, budgets: OfferBudgets | None = None) -> object:
    built = engine()
    built.offers = OfferChooser(None, config or OffersConfig(), budgets, random.Random(3))
    return built


def test_the_offer_set_writes_its_offer_in_the_documented_shape() -> None:
    policy = compile_policy(OFFERS)
    exchange = run(_engine(), policy, PAGE)  # type: ignore[arg-type]
    offer = served(exchange)["offer"]
    assert offer["type"] in ("none", "discount")
    assert offer["id"].split(".", 1)[1] in ("none", "discount_10")
    [(record, _)] = exchange.records or []
    assert record.campaign == "offers.checkout" and record.offer == offer["id"]
    assert record.removed == {
        "discount_20": ("guard discount <= 10% when cart.value < 50",),
        "bogo": ("guard no bogo when cart.count < 2",),
    }
    assert record.slots[0].candidates == ("none", "discount_10")
    assert record.slots[0].probability == 0.5


def test_the_page_without_the_location_is_left_alone() -> None:
    exchange = run(_engine(), compile_policy(OFFERS), {"cart": {"subtotal": 10}})  # type: ignore[arg-type]
    assert exchange.out is None and exchange.records is None


def test_the_step_runs_for_offer_sets_and_names_their_locations() -> None:
    step = Offers()
    assert step.wanted(compile_policy(OFFERS))
    assert [at.text for _, at in step.locations(compile_policy(OFFERS))] == ["$.offer"]


def test_a_spent_budget_offers_none_only() -> None:
    config = OffersConfig(budgets={"checkout": 1.0})
    budgets = OfferBudgets(None, config)
    budgets.spent = frozenset({"checkout"})
    big = {"cart": {"subtotal": 400.0, "count": 3}, "offer": None}
    for _ in range(20):
        exchange = run(_engine(config, budgets), compile_policy(OFFERS), big)  # type: ignore[arg-type]
        assert served(exchange)["offer"]["type"] == "none"
    [(record, _)] = exchange.records or []
    assert record.removed == dict.fromkeys(
        ["discount_10", "discount_20", "bogo"], ("budget_spent",)
    )


def test_the_costliest_arm_is_capped() -> None:
    config = OffersConfig(max_costliest_share=0.1)
    big = {"cart": {"subtotal": 400.0, "count": 3}, "offer": None}
    exchange = run(_engine(config), compile_policy(OFFERS), big)  # type: ignore[arg-type]
    [(record, _)] = exchange.records or []
    chosen = record.slots[0]
    assert chosen.candidates == ("none", "discount_10", "discount_20", "bogo")
    probability = {"discount_20": 0.1}.get(chosen.variant or "", 0.3)
    assert abs(chosen.probability - probability) < 1e-9


def test_a_campaign_on_the_same_location_wins() -> None:
    policy = compile_policy(
        OFFERS + 'campaign c { slot s at "$.offer" { variant a "A" variant b "B" } }'
    )
    page = {"cart": {"subtotal": 40.0, "count": 1}, "offer": "upstream"}
    built = _engine()
    exchange = run(built, policy, page)  # type: ignore[arg-type]
    assert served(exchange)["offer"] in ("A", "B")
    assert [r.campaign for r, _ in exchange.records or []] == ["c"]
    assert built.metrics.campaigns_skipped.get("offers.checkout", "contested") == 1  # type: ignore[attr-defined]


def test_a_failing_chooser_fails_the_response_open_and_logs_the_decision() -> None:
    class Failing(OfferChooser):
        def choose(self, *args: object) -> Any:
            raise RuntimeError("model store gone")

    built = engine()
    built.offers = Failing()
    with pytest.raises(FailOpen) as failed:
        run(built, compile_policy(OFFERS), PAGE)
    assert failed.value.cause == "chooser_error"
    [(record, _)] = failed.value.records
    assert record.campaign == "offers.checkout" and record.fail_open == "chooser_error"
    assert record.offer is None and not record.slots


def test_the_trackers_take_the_scheme_a_trusted_balancer_names() -> None:
    # the first step to track a response fixes its tracker origin: the offers step must read
    # the balancer's scheme as the campaigns step does, or the page gets http:// pixels
    built: Any = _engine()
    built.forwarding = ForwardingPolicy.parse(["203.0.113.0/24"])
    scope = {
        "headers": [(b"host", b"proxy.test"), (b"x-forwarded-proto", b"https")],
        "scheme": "http",
        "client": ("203.0.113.7", 40000),
    }
    exchange = run(built, compile_policy(OFFERS), PAGE, scope=scope)
    assert exchange.origin("", frozenset()) == "https://proxy.test"
    pixels = [url for url in json.dumps(served(exchange)).split('"') if "/_sw/" in url]
    assert pixels and all(url.startswith("https://proxy.test/_sw/") for url in pixels), pixels
