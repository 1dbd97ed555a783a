"""The one offer shape offer sets and trigger ladders write (docs/offers.md)."""

from __future__ import annotations

from slotwise.dsl.compiled import OfferArm
from slotwise.proxy.offer_document import offer_document, offer_id


def test_a_discount_names_its_percentage_and_the_decision() -> None:
    arm = OfferArm("discount", 0.125)
    document = offer_document(arm, offer_id=offer_id("d-1", arm))
    assert document["id"] == "d-1.discount_12.5"
    assert (document["type"], document["value"]) == ("discount", 12.5)
    assert document["label"] == "12.5% off your order"


def test_other_arms_have_no_value_and_a_label() -> None:
    for kind in ("none", "free_shipping", "bogo"):
        document = offer_document(OfferArm(kind), offer_id="d.x")
        assert document["type"] == kind and document["value"] is None and document["label"]
    bundle = offer_document(OfferArm("bundle", sku="SKU-9"), offer_id="d.b")
    assert bundle["sku"] == "SKU-9"
