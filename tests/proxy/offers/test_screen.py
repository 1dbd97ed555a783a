"""Guards as eligibility: screen() per request, whatever it has seen before."""

from __future__ import annotations

from slotwise.dsl.loader import compile_sources
from slotwise.plugins.registry import default_schema
from slotwise.proxy.offer_set import screen
from slotwise.types import Context

POLICY = """policy "s" version 1
offers o {
  slot at "$.offer"
  arms none, discount 10%, discount 20%, free_shipping
  guard discount <= 10% when cart.value < 50
  guard no free_shipping when geo.country in ["US"]
}
"""


def test_each_combination_of_active_guards_screens_its_own_arms() -> None:
    policy, _ = compile_sources([("s.sw", POLICY)], default_schema())
    offers = policy.offers[0]
    cap = "guard discount <= 10% when cart.value < 50"
    ban = 'guard no free_shipping when geo.country in ["US"]'
    expected = {
        (80.0, "DE"): ({"none", "discount_10", "discount_20", "free_shipping"}, {}),
        (20.0, "DE"): ({"none", "discount_10", "free_shipping"}, {"discount_20": (cap,)}),
        (80.0, "US"): ({"none", "discount_10", "discount_20"}, {"free_shipping": (ban,)}),
        (20.0, "US"): (
            {"none", "discount_10"},
            {"discount_20": (cap,), "free_shipping": (ban,)},
        ),
    }
    for _ in range(2):  # the second round answers from what the first worked out
        for (cart, country), (arms, removed) in expected.items():
            ctx = Context({"cart.value": cart, "geo.country": country}, 0.0)
            got, why = screen(offers, ctx)
            assert {arm.name for arm in got} == arms
            assert why == removed
            why["discount_10"] = ("budget_spent",)  # the caller may add to it
    ctx = Context({"cart.value": 20.0, "geo.country": "US"}, 0.0)
    assert "discount_10" not in screen(offers, ctx)[1]
