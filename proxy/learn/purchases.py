"""Purchases as rewards of the offer decision they join (docs/offers.md).

A purchase joins an offer decision two ways:

- ``properties.offer_id`` (``<decision id>.<arm>``): the shop applied that offer. The order's
  revenue, the discount it cost (the shop's ``discount``, else computed from the arm and the
  order: slotwise.proxy.offer_money) and its margin join the decision;
- ``decision_id`` without an offer id: the offer was shown and not redeemed. The revenue and
  the margin join, with no discount cost.

Each becomes three reward records, in the base currency: ``conversion`` (one conversion, its
value the revenue), ``discount_cost`` and ``margin``, so ``optimize revenue - discount_cost``,
``optimize margin`` and ``optimize conversions`` all read them. A purchase in a currency the
configuration cannot convert is no reward (the events endpoint refuses it at ingest already).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import msgspec

from slotwise.proxy.events.schema import PurchaseProps
from slotwise.proxy.learn.log import RewardRecord
from slotwise.proxy.offer_money import joined_purchase
from slotwise.proxy.offers_config import OffersConfig


def purchase_rewards(event: Mapping[str, Any], offers: OffersConfig) -> list[RewardRecord]:
    """The reward records of one stored purchase event (none if it joins no decision)."""
    raw = event.get("properties")
    if not isinstance(raw, dict):
        return []
    try:
        props = msgspec.convert(raw, PurchaseProps)
    except msgspec.ValidationError:
        return []
    decision_id = event.get("decision_id")
    joined = joined_purchase(props, decision_id if isinstance(decision_id, str) else None, offers)
    if joined is None:
        return []
    decision_id, money = joined
    at = event.get("time")
    ts = float(at) if isinstance(at, int | float) else time.time()
    return [
        RewardRecord(decision_id, ts, "conversion", money.revenue),
        RewardRecord(decision_id, ts, "discount_cost", money.discount_cost),
        RewardRecord(decision_id, ts, "margin", money.margin),
    ]


__all__ = ["purchase_rewards"]
