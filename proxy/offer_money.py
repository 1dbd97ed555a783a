"""What an order brought in and what its offer cost, in the base currency.

A purchase event (docs/offers.md) says what the customer paid (``value``, after any discount),
in which ``currency``, the ``items`` bought and, when the shop applied an offer the proxy made,
its ``offer_id`` (``<decision id>.<arm>``: slotwise.proxy.offer_document). The discount cost is

- what the shop says it applied (``properties.discount``), when it says so; else
- a discount of p%: p% of the eligible subtotal (the items' prices times quantities; without
  item prices, the subtotal the paid value implies, ``value / (1 - p)``);
- free shipping: the shipping the shop waived (``properties.shipping``), else
  ``offers.shipping_cost``;
- BOGO: the cheapest item's unit price; a bundle: the bundled item's price, when bought;
- ``none``, or a purchase without an offer id (an offer shown and not redeemed): nothing.

The revenue is the order before the offer (what was paid plus the discount cost), so that
``revenue - discount_cost`` is what the shop took in. The margin is each item's price times
quantity times its margin share (``offers.margins``, by
product id then category, else ``offers.default_margin``), less the discount cost.

Amounts in another currency are converted with ``offers.rates``; a currency that is neither
the base currency nor in the rates is refused (:class:`UnknownCurrency`), never mixed in.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from slotwise.dsl.compiled import OfferArm
from slotwise.proxy.offers_config import OffersConfig


class UnknownCurrency(ValueError):
    """A currency the configuration has no rate for."""

    def __init__(self, currency: str, config: OffersConfig) -> None:
        known = ", ".join(sorted({config.base_currency, *config.rates}))
        super().__init__(
            f"currency {currency} has no rate to the base currency {config.base_currency}; "
            f"known: {known} (add it to offers.rates)"
        )
        self.currency = currency


class ItemLike(Protocol):
    @property
    def product_id(self) -> str: ...

    @property
    def quantity(self) -> int: ...

    @property
    def price(self) -> float | None: ...

    @property
    def category(self) -> str | None: ...


class OrderLike(Protocol):
    """The properties of a purchase event (slotwise.proxy.events.schema.PurchaseProps)."""

    @property
    def value(self) -> float: ...

    @property
    def currency(self) -> str: ...

    @property
    def items(self) -> Sequence[ItemLike]: ...


class PurchaseLike(OrderLike, Protocol):
    """A purchase event's properties with what joins it to an offer and what the shop says."""

    @property
    def offer_id(self) -> str | None: ...

    @property
    def discount(self) -> float | None: ...

    @property
    def shipping(self) -> float | None: ...


@dataclass(frozen=True, slots=True)
class OrderMoney:
    """One order in the base currency: revenue (before the offer), discount cost, margin."""

    revenue: float
    discount_cost: float
    margin: float


def parse_offer_id(offer_id: str) -> tuple[str, str] | None:
    """(decision id, arm name) of an offer id; None when it is not one.

    Decision ids have no dot; arm names may (``discount_12.5``): the first dot splits them.
    """
    decision, dot, arm = offer_id.partition(".")
    if not dot or not decision or not arm:
        return None
    return decision, arm


def arm_of(name: str) -> OfferArm | None:
    """The arm an arm name stands for (``discount_10``, ``free_shipping``, ``bundle_sku-1``)."""
    if name.startswith("discount_"):
        try:
            percent = float(name[len("discount_") :])
        except ValueError:
            return None
        if not 0 < percent < 100:
            return None
        return OfferArm("discount", round(percent, 9) / 100.0)
    if name.startswith("bundle_"):
        return OfferArm("bundle", sku=name[len("bundle_") :])
    if name in ("none", "free_shipping", "bogo", "bundle"):
        return OfferArm(name)
    return None


def check_currency(currency: str | None, config: OffersConfig) -> None:
    """Raise UnknownCurrency for a currency without a rate (nothing to check without
    ``offers.base_currency``)."""
    if config.rate(currency) is None:
        assert currency is not None
        raise UnknownCurrency(currency, config)


def order_money(
    order: OrderLike,
    arm: OfferArm | None,
    config: OffersConfig,
    *,
    discount: float | None = None,
    shipping: float | None = None,
) -> OrderMoney:
    """The order's revenue, discount cost and margin in the base currency.

    ``arm`` is the redeemed offer (None: no offer redeemed); ``discount`` and ``shipping``
    are what the shop's event says, in the order's currency.
    """
    rate = config.rate(order.currency)
    if rate is None:
        raise UnknownCurrency(order.currency, config)
    priced = [(item, item.price) for item in order.items if item.price is not None]
    subtotal = sum(price * item.quantity for item, price in priced)
    if arm is None:
        cost = 0.0
    elif discount is not None:
        cost = discount
    else:
        cost = _cost(arm, order.value, subtotal, priced, config, shipping, rate)
    if priced:
        gross = sum(
            price * item.quantity * config.margin(item.product_id, item.category)
            for item, price in priced
        )
    else:
        gross = order.value * config.default_margin
    # revenue is the order before the offer: what was paid plus what the offer took off, so
    # that ``revenue - discount_cost`` is what the shop took in
    return OrderMoney((order.value + cost) * rate, cost * rate, (gross - cost) * rate)


def joined_purchase(
    purchase: PurchaseLike, decision_id: str | None, config: OffersConfig
) -> tuple[str, OrderMoney] | None:
    """The decision a purchase joins and its money: with an ``offer_id``, that offer's decision
    and the redeemed arm's discount cost; else its ``decision_id`` (an offer shown and not
    redeemed: no discount cost). None when it joins no decision or its currency has no rate.
    The learner (slotwise.proxy.learn.purchases) and the report join purchases this one way."""
    arm = None
    if purchase.offer_id is not None and (parsed := parse_offer_id(purchase.offer_id)):
        decision_id, arm = parsed[0], arm_of(parsed[1])
        if arm is not None and arm.kind == "none":
            arm = None
    if decision_id is None:
        return None
    discount, shipping = purchase.discount, purchase.shipping
    try:
        money = order_money(purchase, arm, config, discount=discount, shipping=shipping)
    except ValueError:  # a currency without a rate: the events endpoint refuses it already
        return None
    return decision_id, money


def _cost(
    arm: OfferArm,
    value: float,
    subtotal: float,
    priced: list[tuple[ItemLike, float]],
    config: OffersConfig,
    shipping: float | None,
    rate: float,
) -> float:
    """The arm's cost in the order's currency."""
    if arm.kind == "discount":
        base = subtotal if subtotal > 0 else value / (1.0 - arm.discount)
        return arm.discount * base
    if arm.kind == "free_shipping":
        # the configured shipping cost is in the base currency: back to the order's
        return shipping if shipping is not None else config.shipping_cost / rate
    if arm.kind == "bogo":
        return min((price for _, price in priced), default=0.0)
    if arm.kind == "bundle":
        return next((price for item, price in priced if item.product_id == arm.sku), 0.0)
    return 0.0


__all__ = [
    "OrderMoney",
    "UnknownCurrency",
    "arm_of",
    "check_currency",
    "order_money",
    "parse_offer_id",
]
