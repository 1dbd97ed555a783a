"""The offer chooser: the cap on the costliest arm holds while the offer set is learning."""

from __future__ import annotations

import dataclasses
import random
from pathlib import Path

import pytest

from slotwise.dsl.loader import compile_sources
from slotwise.plugins.registry import default_schema
from slotwise.proxy.bandit.runtime import BanditRuntime, Snapshot
from slotwise.proxy.bandit.store import ModelStore
from slotwise.proxy.offer_chooser import OfferChooser, capped
from slotwise.proxy.offers_config import OffersConfig
from slotwise.types import Subject

POLICY = """policy "c" version 1
offers o {
  slot at "$.offer"
  arms none, discount 10%, discount 20%
  explore epsilon 100%
}
"""


def test_the_cap_holds_until_the_model_learned_enough(tmp_path: Path) -> None:
    policy, _ = compile_sources([("c.sw", POLICY)], default_schema())
    offers = policy.offers[0]
    runtime = BanditRuntime(ModelStore(tmp_path), rng=random.Random(1))
    runtime.install_policy_set(policy)
    config = OffersConfig(max_costliest_share=0.1, learning_examples=500)
    chooser = OfferChooser(runtime, config, None, random.Random(2))
    signals = {"cart.value": 80.0}

    def probability_of_the_costliest() -> float:
        for _ in range(200):
            choice = chooser.choose(offers, offers.arms, signals, Subject(None))
            if choice.choices[0].variant == "discount_20":
                return choice.choices[0].probability
        raise AssertionError("the costliest arm was never drawn")

    assert probability_of_the_costliest() == pytest.approx(0.1)  # uniform would be 1/3
    model = runtime.snapshot.models["offers.o"]
    learned = dataclasses.replace(model, examples=500)
    runtime._snapshot = Snapshot({"offers.o": learned})  # as a reload of a trained model would
    assert probability_of_the_costliest() == pytest.approx(1 / 3)


def test_capped_spreads_the_excess_in_proportion() -> None:
    assert capped([0.5, 0.25, 0.25], 0, 0.2) == pytest.approx([0.2, 0.4, 0.4])
    assert capped([0.7, 0.3, 0.0], 0, 0.4) == pytest.approx([0.4, 0.6, 0.0])
    assert capped([1.0, 0.0], 0, 0.5) == pytest.approx([0.5, 0.5])  # no mass: evenly
    assert capped([0.1, 0.9], 0, 0.5) == [0.1, 0.9]  # under the cap: unchanged


def test_the_page_cart_is_learned_once_and_guards_still_see_the_profile_cart(
    tmp_path: Path,
) -> None:
    policy, _ = compile_sources([("c.sw", POLICY)], default_schema())
    offers = policy.offers[0]
    runtime = BanditRuntime(ModelStore(tmp_path), rng=random.Random(1))
    runtime.install_policy_set(policy)
    config = OffersConfig(max_costliest_share=0.1, learning_examples=500)
    chooser = OfferChooser(runtime, config, None, random.Random(2))
    page = {"cart.value": 80.0, "cart.count": 2, "page.cart_value": 80.0, "page.cart_count": 2}
    consented = {"consent.level": "personal", "user.visits": 3, **page}
    choice = chooser.choose(offers, offers.arms, consented, Subject("u-1"))
    # the page's cart, once; the profile's other signals kept
    assert set(choice.signals) == {"user.visits", "page.cart_value", "page.cart_count"}
    # without the page's count the profile's count is all there is: kept
    partial = {k: v for k, v in consented.items() if k != "page.cart_count"}
    choice = chooser.choose(offers, offers.arms, partial, Subject("u-1"))
    assert set(choice.signals) == {"user.visits", "page.cart_value", "cart.count"}
    # the cap still prices the arms by the request's cart.value: 20% of 80 is the costliest
    for _ in range(200):
        picked = chooser.choose(offers, offers.arms, consented, Subject("u-1")).choices[0]
        if picked.variant == "discount_20":
            assert picked.probability == pytest.approx(0.1)
            break
    else:
        raise AssertionError("the costliest arm was never drawn")
