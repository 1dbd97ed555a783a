"""The documented shape of an offer written into a response (docs/offers.md).

Offer sets (the offers step) and trigger ladders (the triggered-campaigns step) write the offer
they chose in this one shape, so a shop integrates once::

    {"id": "d-7Hq2.discount_10", "type": "discount", "value": 10, "label": "10% off your order",
     "terms": "On the eligible subtotal of this order."}

``id`` is what the shop passes back with the purchase (``properties.offer_id``) so the purchase
joins the decision that made the offer; ``value`` is a percentage for discounts, else null.
"""

from __future__ import annotations

import functools
from typing import Any

from slotwise.dsl.compiled import OfferArm

_LABELS = {
    "none": ("No offer", ""),
    "free_shipping": ("Free shipping", "Standard shipping on this order is free."),
    "bogo": ("Buy one, get one free", "The cheapest item of the order is free."),
    "bundle": ("Bundle offer", "The bundled item is included at no extra cost."),
}


def offer_id(decision_id: str, arm: OfferArm) -> str:
    """The offer's id: the decision that made it and the arm, so a purchase names both."""
    return f"{decision_id}.{arm.name}"


def offer_document(arm: OfferArm, *, offer_id: str) -> dict[str, Any]:
    """``arm`` as the JSON object written at the offer's location."""
    document = dict(_template(arm))  # a fresh object per response: the shop's JSON owns it
    document["id"] = offer_id
    return document


@functools.lru_cache(maxsize=1024)
def _template(arm: OfferArm) -> dict[str, Any]:
    """The arm's document with an empty id, worked out once per arm (labels are formatted)."""
    return _document(arm, offer_id="")


def _document(arm: OfferArm, *, offer_id: str) -> dict[str, Any]:
    if arm.kind == "discount":
        percent = round(arm.discount * 100, 6)
        shown = int(percent) if percent == int(percent) else percent
        label, terms = f"{shown}% off your order", "On the eligible subtotal of this order."
        return {"id": offer_id, "type": "discount", "value": shown, "label": label, "terms": terms}
    label, terms = _LABELS.get(arm.kind, (arm.kind, ""))
    document: dict[str, Any] = {"id": offer_id, "type": arm.kind, "value": None}
    document["label"], document["terms"] = label, terms
    if arm.kind == "bundle" and arm.sku:
        document["sku"] = arm.sku
    return document
