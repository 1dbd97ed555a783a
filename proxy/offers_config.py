"""``[offers]`` of slotwise.toml: money, budgets and guardrails of the offer sets.

A table handed whole to its owner (like ``[plugins.NAME]``), validated here into
:class:`OffersConfig`; a bad value is a ValueError naming the key::

    [offers]
    base_currency = "USD"            # every amount is converted to it; "" turns currencies off
    rates = { EUR = 1.08, GBP = 1.27 }   # base-currency units per unit of each other currency
    shipping_cost = 4.90             # what free shipping costs, when the purchase does not say
    default_margin = 0.30            # margin share of an item's price (optimize margin)
    margins = { shoes = 0.45, "sku-1" = 0.2 }   # per product id or category, before the default
    max_costliest_share = 0.25       # at most this share of decisions on the costliest arm,
    learning_examples = 10000        # while the model has learned from fewer decisions
    prefer_cheaper = 1.0             # serve the cheapest arm within this many standard errors
    budget_refresh = 1.0             # seconds between reads of the spent budgets

    [offers.budgets]                 # a daily discount budget per offer set (base currency)
    checkout = 500.0

    [offers.cart]                    # where a storefront response says what is in the cart
    value = ["$.cart.subtotal", "$.cart.total"]
    count = ["$.cart.count", "$.cart.item_count"]
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

import msgspec

from slotwise.dsl.location import JsonPathLocation, LocationError, parse_location
from slotwise.proxy.bandit.arm_means import PREFER_CHEAPER

_CURRENCY = re.compile(r"^[A-Z]{3}$")

DEFAULT_CART_VALUE = ("$.cart.subtotal", "$.cart.total", "$.cart.value")
DEFAULT_CART_COUNT = ("$.cart.count", "$.cart.item_count", "$.cart.quantity")


class CartPaths(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Where a storefront JSON response holds the cart's value and unit count."""

    value: tuple[str, ...] = DEFAULT_CART_VALUE
    count: tuple[str, ...] = DEFAULT_CART_COUNT


class OffersConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The validated ``[offers]`` table (see the module docstring)."""

    base_currency: str = ""
    rates: dict[str, float] = {}
    shipping_cost: float = 0.0
    default_margin: float = 0.0
    margins: dict[str, float] = {}
    budgets: dict[str, float] = {}
    max_costliest_share: float = 1.0
    learning_examples: int = 10_000  # the cap holds until the model learned from this many
    # the greedy arm: the cheapest whose mean is within this many standard errors of the best
    # (slotwise.proxy.bandit.arm_means; 0: the best mean, whatever it costs)
    prefer_cheaper: float = PREFER_CHEAPER
    budget_refresh: float = 1.0
    cart: CartPaths = CartPaths()

    def __post_init__(self) -> None:
        if self.base_currency and not _CURRENCY.match(self.base_currency):
            raise ValueError(
                f"base_currency: {self.base_currency!r} is not an ISO 4217 code (e.g. USD)"
            )
        for code, rate in self.rates.items():
            if not _CURRENCY.match(code):
                raise ValueError(f"rates: {code!r} is not an ISO 4217 code (e.g. EUR)")
            if not (math.isfinite(rate) and rate > 0):
                raise ValueError(f"rates.{code}: must be a positive number, not {rate}")
        if self.rates and not self.base_currency:
            raise ValueError("rates: set base_currency, the currency the rates convert to")
        _amount("shipping_cost", self.shipping_cost)
        _share("default_margin", self.default_margin)
        for key, margin in self.margins.items():
            _share(f"margins.{key}", margin)
        for name, budget in self.budgets.items():
            _amount(f"budgets.{name}", budget)
        if not 0.0 < self.max_costliest_share <= 1.0:
            raise ValueError(
                f"max_costliest_share: must be in (0, 1], not {self.max_costliest_share}"
            )
        if self.learning_examples < 0:
            raise ValueError(
                f"learning_examples: must not be negative, not {self.learning_examples}"
            )
        if not (math.isfinite(self.prefer_cheaper) and self.prefer_cheaper >= 0):
            raise ValueError(
                f"prefer_cheaper: must be a number of standard errors >= 0 (1.0 is one), "
                f"not {self.prefer_cheaper}"
            )
        if not (math.isfinite(self.budget_refresh) and self.budget_refresh >= 0.05):
            raise ValueError(f"budget_refresh: at least 0.05 seconds, not {self.budget_refresh}")
        for key, paths in (("cart.value", self.cart.value), ("cart.count", self.cart.count)):
            for text in paths:
                _json_path(key, text)

    def rate(self, currency: str | None) -> float | None:
        """Base-currency units per unit of ``currency`` (None: unknown currency)."""
        if not self.base_currency or currency is None or currency == self.base_currency:
            return 1.0
        return self.rates.get(currency)

    def margin(self, product_id: str, category: str | None) -> float:
        """The margin share of an item: by product id, then category, then the default."""
        margins = self.margins
        if product_id in margins:
            return margins[product_id]
        if category is not None and category in margins:
            return margins[category]
        return self.default_margin

    def cart_paths(self) -> tuple[tuple[JsonPathLocation, ...], tuple[JsonPathLocation, ...]]:
        return _parsed(self.cart.value), _parsed(self.cart.count)


def _amount(key: str, value: float) -> None:
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"{key}: must be a non-negative amount, not {value}")


def _share(key: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{key}: must be a share in 0..1 (0.3 is 30%), not {value}")


def _json_path(key: str, text: str) -> JsonPathLocation:
    try:
        location = parse_location(text)
    except LocationError as exc:
        raise ValueError(f"{key}: {text!r} is not a JSON path: {exc}") from None
    if not isinstance(location, JsonPathLocation):
        raise ValueError(f"{key}: {text!r} is not a JSON path (start with '$')")
    return location


def _parsed(texts: tuple[str, ...]) -> tuple[JsonPathLocation, ...]:
    return tuple(_json_path("cart", text) for text in texts)


def offers_config(table: Mapping[str, Any] | None) -> OffersConfig:
    """The ``[offers]`` table validated; ValueError saying which key is wrong and why."""
    try:
        return msgspec.convert(dict(table or {}), OffersConfig)
    except msgspec.ValidationError as exc:
        reason, _, path = str(exc).partition(" - at `$")
        where = path.rstrip("`").lstrip(".")
        raise ValueError(f"{where}: {reason}" if where else reason) from None


__all__ = ["CartPaths", "OffersConfig", "offers_config"]
