"""What an order brought in and what its offer cost, in the base currency; purchases as the
rewards of the offer decision they join."""

from __future__ import annotations

import msgspec
import pytest

from slotwise.dsl.compiled import OfferArm
from slotwise.proxy.decision_log import DecisionRecord, SlotRecord
from slotwise.proxy.events.collector import StoredEvent
from slotwise.proxy.events.schema import Item, PurchaseEvent, PurchaseProps
from slotwise.proxy.learn.join import RewardJoiner
from slotwise.proxy.learn.service import rewards_from_event
from slotwise.proxy.offer_money import UnknownCurrency, arm_of, order_money, parse_offer_id
from slotwise.proxy.offers_config import OffersConfig, offers_config
from slotwise.types import Goal

CONFIG = OffersConfig(
    base_currency="USD",
    rates={"EUR": 2.0},
    shipping_cost=6.0,
    default_margin=0.5,
    margins={"shoes": 0.25, "sku-x": 0.1},
)
ITEMS = [
    Item(product_id="sku-a", price=30.0, quantity=2, category="shoes"),
    Item(product_id="sku-b", price=20.0, quantity=1),
    Item(product_id="sku-x", price=10.0, quantity=1),
]


def order(value: float, currency: str = "USD", items: list[Item] = ITEMS) -> PurchaseProps:
    return PurchaseProps(order_id="o1", items=items, value=value, currency=currency)


def test_a_percent_discount_costs_its_share_of_the_eligible_subtotal() -> None:
    money = order_money(order(81.0), OfferArm("discount", 0.1), CONFIG)
    assert money.discount_cost == pytest.approx(9.0)  # 10% of 90
    assert money.revenue == pytest.approx(90.0)  # the order before the offer: 81 paid + 9
    # margins: 60 * 0.25 + 20 * 0.5 + 10 * 0.1 = 26, less the discount
    assert money.margin == pytest.approx(26.0 - 9.0)


def test_without_item_prices_the_paid_value_implies_the_subtotal() -> None:
    money = order_money(order(80.0, items=[Item(product_id="a")]), arm_of("discount_20"), CONFIG)
    assert money.discount_cost == pytest.approx(20.0)  # 80 paid is 80% of 100
    assert money.margin == pytest.approx(80.0 * 0.5 - 20.0)


def test_free_shipping_bogo_and_bundle() -> None:
    assert order_money(order(90.0), arm_of("free_shipping"), CONFIG).discount_cost == 6.0
    shipped = order_money(order(90.0), arm_of("free_shipping"), CONFIG, shipping=4.5)
    assert shipped.discount_cost == 4.5  # what the shop says it waived
    assert order_money(order(80.0), arm_of("bogo"), CONFIG).discount_cost == 10.0  # cheapest
    assert order_money(order(80.0), arm_of("bundle_sku-b"), CONFIG).discount_cost == 20.0


def test_the_shops_discount_wins_and_no_offer_costs_nothing() -> None:
    assert order_money(order(85.0), arm_of("discount_10"), CONFIG, discount=5.0).discount_cost == 5
    assert order_money(order(90.0), None, CONFIG).discount_cost == 0.0
    assert order_money(order(90.0), arm_of("none"), CONFIG).discount_cost == 0.0


def test_currencies_are_converted_and_an_unknown_one_refused() -> None:
    money = order_money(order(81.0, "EUR"), arm_of("discount_10"), CONFIG)
    assert (money.revenue, money.discount_cost) == (pytest.approx(180.0), pytest.approx(18.0))
    shipped = order_money(order(90.0, "EUR"), arm_of("free_shipping"), CONFIG)
    assert shipped.discount_cost == pytest.approx(6.0)  # configured in USD: not converted twice
    with pytest.raises(UnknownCurrency, match="currency JPY has no rate to the base currency"):
        order_money(order(1.0, "JPY"), None, CONFIG)
    # without a base currency nothing is converted or refused
    assert order_money(order(3.0, "JPY"), None, OffersConfig()).revenue == 3.0


def test_offer_ids_and_arms() -> None:
    assert parse_offer_id("AbC-12_x.discount_12.5") == ("AbC-12_x", "discount_12.5")
    assert parse_offer_id("nodot") is None
    assert arm_of("discount_12.5") == OfferArm("discount", 0.125)
    assert arm_of("discount_abc") is None and arm_of("gift") is None


def test_bad_offers_configuration_names_the_key() -> None:
    with pytest.raises(ValueError, match="rates: set base_currency"):
        offers_config({"rates": {"EUR": 1.1}})
    with pytest.raises(ValueError, match=r"max_costliest_share: must be in \(0, 1\]"):
        offers_config({"max_costliest_share": 0})
    with pytest.raises(ValueError, match="prefer_cheaper: must be a number of standard errors"):
        offers_config({"prefer_cheaper": -1})
    assert offers_config({"prefer_cheaper": 0.5}).prefer_cheaper == 0.5
    assert offers_config({}).prefer_cheaper == 1.0
    with pytest.raises(ValueError, match="margins.shoes: must be a share in 0..1"):
        offers_config({"margins": {"shoes": 30}})
    with pytest.raises(ValueError, match="not a JSON path"):
        offers_config({"cart": {"value": ["cart.total"]}})


def _stored(props: PurchaseProps, decision_id: str | None = None, at: float = 1000.5) -> bytes:
    event = PurchaseEvent(id="p1", time=at, decision_id=decision_id, properties=props)
    return msgspec.json.encode(StoredEvent(received=at, consent="personal", event=event))


def _decision() -> DecisionRecord:
    slot = SlotRecord("offer", "discount_10", 0.5, ("none", "discount_10"))
    return DecisionRecord(id="D1", ts=1000.0, campaign="offers.checkout", slots=[slot])


def test_a_redeemed_offer_joins_with_revenue_and_its_cost() -> None:
    props = msgspec.structs.replace(order(81.0), offer_id="D1.discount_10")
    rewards = rewards_from_event(_stored(props), CONFIG)
    assert [(r.decision_id, r.event) for r in rewards] == [
        ("D1", "conversion"), ("D1", "discount_cost"), ("D1", "margin")
    ]  # fmt: skip
    goal = Goal.of({"revenue": 1.0, "discount_cost": -1.0})
    joiner = RewardJoiner(lambda name: goal, window=60.0)
    joiner.add_decision(_decision())
    for reward in rewards:
        joiner.add_reward(reward)
    [joined] = joiner.close_all()
    assert joined.outcome.conversions == 1 and joined.outcome.revenue == pytest.approx(90.0)
    assert joined.outcome.discount_cost == pytest.approx(9.0)
    assert joined.reward == pytest.approx(81.0)  # what the shop took in


def test_a_shown_offer_not_redeemed_counts_revenue_without_discount() -> None:
    rewards = rewards_from_event(_stored(order(90.0), decision_id="D1"), CONFIG)
    values = {r.event: r.value for r in rewards}
    assert values == {"conversion": 90.0, "discount_cost": 0.0, "margin": pytest.approx(26.0)}
    # a purchase that names no decision is no reward; nor one outside the window
    assert rewards_from_event(_stored(order(90.0)), CONFIG) == []
    joiner = RewardJoiner(lambda name: Goal.of({"revenue": 1.0}), window=60.0)
    joiner.add_decision(_decision())
    for reward in rewards_from_event(_stored(order(90.0), "D1", at=2000.0), CONFIG):
        joiner.add_reward(reward)
    [joined] = joiner.close_all()
    assert not joined.rewarded and joiner.stats.late == 3


def test_optimize_margin_is_a_goal_of_offer_sets() -> None:
    from slotwise.dsl.loader import compile_sources
    from slotwise.plugins.registry import default_schema

    text = 'policy "m" version 1\noffers o {\n  slot at "$.offer"\n  arms none, bogo\n'
    policy, _ = compile_sources([("m.sw", text + "  optimize margin\n}\n")], default_schema())
    goal = policy.offer_set("o").goal
    assert goal.weights == {"margin": 1.0}
    props = msgspec.structs.replace(order(80.0), offer_id="D1.bogo")
    rewards = rewards_from_event(_stored(props), CONFIG)
    joiner = RewardJoiner(lambda name: goal, window=60.0)
    joiner.add_decision(_decision())
    for reward in rewards:
        joiner.add_reward(reward)
    [joined] = joiner.close_all()
    assert joined.reward == pytest.approx(26.0 - 10.0)  # the margins less the cheapest item


def test_offer_rewards_are_learned_per_hundred_of_the_pages_cart() -> None:
    from slotwise.proxy.learn.learner import _offer_scale

    offer = msgspec.structs.replace(_decision(), signals={"page.cart_value": 250.0})
    assert _offer_scale(offer) == 2.5
    assert _offer_scale(_decision()) == 1.0  # no cart on the page: the reward as it is
    campaign = msgspec.structs.replace(offer, campaign="spring_sale")
    assert _offer_scale(campaign) == 1.0


async def test_export_writes_a_purchases_rewards_as_the_learner_reads_them() -> None:
    import io

    from slotwise.proxy.learn.export import export_log
    from slotwise.proxy.learn.log import decode
    from slotwise.proxy.state import LogRecord, open_store

    props = msgspec.structs.replace(order(81.0, "EUR"), offer_id="D1.discount_10")
    async with open_store("memory://") as store:
        await store.log_append("events", [LogRecord(_stored(props), subject=None, id="p1")])
        out = io.BytesIO()
        stats = await export_log(store, "events", out, offers=CONFIG)
    rewards = [decode(line) for line in out.getvalue().splitlines()]
    assert stats.written == 3
    assert [(r.event, r.value) for r in rewards] == [  # type: ignore[union-attr]
        ("conversion", pytest.approx(180.0)),
        ("discount_cost", pytest.approx(18.0)),
        ("margin", pytest.approx((26.0 - 9.0) * 2)),
    ]
