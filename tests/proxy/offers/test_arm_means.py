"""An offer set's estimator: exact means per (context cell, arm), learned, published, served."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from slotwise.dsl.compiled import CompiledOffers
from slotwise.dsl.loader import compile_sources
from slotwise.plugins.registry import default_schema
from slotwise.proxy.bandit.arm_means import (
    LEADER_SHARE,
    MAX_CELLS,
    PRIOR_WEIGHT,
    ArmMeans,
    MeansData,
    MeansTable,
    cell_of,
)
from slotwise.proxy.bandit.features import FeatureMap
from slotwise.proxy.bandit.runtime import BanditRuntime
from slotwise.proxy.bandit.store import ModelStore
from slotwise.proxy.choice import Choice
from slotwise.proxy.decision_log import DecisionRecord, OutcomeRecord, decision_record
from slotwise.proxy.learn.learner import Learner
from slotwise.proxy.learn.log import JoinedRecord
from slotwise.proxy.offer_chooser import OfferChooser
from slotwise.proxy.offer_set import bandit_offers
from slotwise.proxy.offers_config import OffersConfig
from slotwise.types import Signals, Subject

POLICY = """policy "c" version 1
offers o {
  slot at "$.offer"
  arms none, discount 10%, discount 20%
  optimize revenue - discount_cost
  explore epsilon 6%
}
"""


def test_a_cell_is_the_categorical_contextual_signals() -> None:
    signals = {
        "request.utm_medium": "coupons",
        "device.type": "mobile",
        "geo.eu": True,
        "page.cart_value": 80.0,  # a number: no cell of its own
        "user.tier": "gold",  # personal: the same visitor would be a cell of one
        "consent.level": "personal",  # never a feature
    }
    cell = cell_of(signals, FeatureMap())
    assert cell == "device.type=mobile|geo.eu=true|request.utm_medium=coupons"
    assert cell_of({}, FeatureMap()) == ""


def test_the_estimate_is_the_cell_mean_backed_off_to_the_arm_mean() -> None:
    table = MeansTable()
    for _ in range(80):
        table.add("a", "none", 10.0)
        table.add("b", "none", 2.0)
    for _ in range(20):
        table.add("a", "discount_10", 4.0)
    means = ArmMeans.build(table.data())
    # "none" overall: (80 * 10 + 80 * 2) / 160 = 6; in "a": (800 + 20 * 6) / 100
    assert means.values("a")["none"] == pytest.approx(
        (800 + PRIOR_WEIGHT * 6) / (80 + PRIOR_WEIGHT)
    )
    assert means.values("b")["none"] == pytest.approx(
        (160 + PRIOR_WEIGHT * 6) / (80 + PRIOR_WEIGHT)
    )
    # an arm never served in "b" starts from what it earns everywhere
    assert means.values("b")["discount_10"] == pytest.approx(4.0)
    # an unseen cell: the overall means
    assert means.values("c") == {"none": pytest.approx(6.0), "discount_10": pytest.approx(4.0)}
    # epsilon-greedy: in "b" 10% off (4.0) beats none (2.8); an arm with no data counts 0
    names = ("none", "discount_10", "discount_20")
    assert means.distribution("b", names, 0.06) == pytest.approx([0.02, 0.96, 0.02])
    assert means.distribution("a", names, 0.0) == [1.0, 0.0, 0.0]


def test_the_table_keeps_at_most_max_cells_and_still_counts_the_rest_overall() -> None:
    table = MeansTable()
    for n in range(MAX_CELLS + 10):
        table.add(f"c{n}", "none", 1.0)
    data = table.data()
    assert len(data.cells) == MAX_CELLS + 1  # and the overall cell
    assert data.cells["*"]["none"] == (MAX_CELLS + 10, MAX_CELLS + 10, MAX_CELLS + 10)
    assert data.problem() is None


def _offer_record(
    chooser: OfferChooser, offers: CompiledOffers, signals: Signals, n: int
) -> tuple[Choice, DecisionRecord]:
    choice = chooser.choose(offers, offers.arms, signals, Subject(None))
    return choice, decision_record(choice, f"d{n}", float(n), "p1")


def test_learned_means_are_published_and_served_per_cell(tmp_path: Path) -> None:
    """Coupon visitors earn most with 10% off, direct ones with no offer: after a publish the
    proxy serves each its arm with 1 - epsilon + epsilon / 3."""
    policy, _ = compile_sources([("c.sw", POLICY)], default_schema())
    offers = policy.offers[0]
    store = ModelStore(tmp_path)
    runtime = BanditRuntime(store, rng=random.Random(1))
    runtime.install_policy_set(policy)
    learner = Learner([bandit_offers(offers)], store)
    config = OffersConfig(max_costliest_share=1.0)
    chooser = OfferChooser(runtime, config, None, random.Random(2))
    best = {"coupons": "discount_10", "direct": "none"}
    rng = random.Random(3)
    for n in range(1500):
        medium = rng.choice(["coupons", "direct"])
        signals = {"request.utm_medium": medium, "page.cart_value": 100.0}
        choice, record = _offer_record(chooser, offers, signals, n)
        arm = choice.choices[0].variant
        reward = 100.0 if arm == best[medium] and rng.random() < 0.3 else 0.0
        if rng.random() < 0.1:
            reward = 90.0  # a purchase whatever the offer
        learner.learn(JoinedRecord(record, OutcomeRecord(), reward, reward > 0))
    [info] = learner.publish()
    assert info.arm_means is not None
    written = json.loads(store.model_path(info).with_suffix(".json").read_text())
    assert set(written["arm_means"]["cells"]) == {
        "*",
        "request.utm_medium=coupons",
        "request.utm_medium=direct",
    }
    runtime.reload()
    assert runtime.snapshot.models["offers.o"].means is not None
    for medium, arm in best.items():
        signals = {"request.utm_medium": medium, "page.cart_value": 100.0}
        picks = [
            chooser.choose(offers, offers.arms, signals, Subject(None)).choices[0]
            for _ in range(300)
        ]
        chosen = [p for p in picks if p.variant == arm]
        assert chosen and chosen[0].probability == pytest.approx(0.94 + 0.02)
        assert len(chosen) > 250
    # a restarted learner continues from the published sums
    again = Learner([bandit_offers(offers)], store)
    _, record = _offer_record(chooser, offers, {"request.utm_medium": "direct"}, 9999)
    again.learn(JoinedRecord(record, OutcomeRecord(), 0.0, False))
    [next_info] = again.publish()
    assert next_info.arm_means is not None
    overall = next_info.arm_means.cells["*"]
    assert sum(sums[0] for sums in overall.values()) == 1501


def test_damaged_means_make_the_version_unreadable(tmp_path: Path) -> None:
    policy, _ = compile_sources([("c.sw", POLICY)], default_schema())
    offers = policy.offers[0]
    store = ModelStore(tmp_path)
    learner = Learner([bandit_offers(offers)], store)
    runtime = BanditRuntime(store, rng=random.Random(1))
    runtime.install_policy_set(policy)
    chooser = OfferChooser(runtime, OffersConfig(), None, random.Random(2))
    _, record = _offer_record(chooser, offers, {"request.utm_medium": "direct"}, 1)
    learner.learn(JoinedRecord(record, OutcomeRecord(), 5.0, True))
    [info] = learner.publish()
    path = store.model_path(info).with_suffix(".json")
    data = json.loads(path.read_text())
    [arm] = data["arm_means"]["cells"]["*"]
    data["arm_means"]["cells"]["*"][arm] = [-1, 5.0, 25.0]
    path.write_text(json.dumps(data))
    versions, damaged = store.scan("offers.o")
    assert versions == []
    assert "is not a count, a sum and a sum of squares" in str(damaged[0].error)


def test_an_offer_set_that_learned_nothing_serves_every_arm_alike(tmp_path: Path) -> None:
    """Empty means tie every arm: each is served about a quarter of the time (an untrained VW
    model does the same), not the first arm nearly always."""
    policy, _ = compile_sources([("c.sw", POLICY)], default_schema())
    offers = policy.offers[0]
    runtime = BanditRuntime(ModelStore(tmp_path), rng=random.Random(1))
    runtime.install_policy_set(policy)
    chooser = OfferChooser(runtime, OffersConfig(max_costliest_share=1.0), None, random.Random(2))
    served: dict[str, int] = {}
    for n in range(3000):
        choice, _ = _offer_record(chooser, offers, {"page.cart_value": 100.0}, n)
        arm = choice.choices[0].variant
        served[arm] = served.get(arm, 0) + 1
    share = 1 / len(offers.arms)
    assert set(served) == {arm.name for arm in offers.arms}
    assert all(abs(count / 3000 - share) < 0.05 for count in served.values()), served


def _noisy_table(rng: random.Random, gains: dict[str, tuple[int, float]]) -> MeansTable:
    """One cell "c": per arm, ``count`` rewards of 100 with chance ``rate`` (else 0)."""
    table = MeansTable()
    for arm, (count, rate) in gains.items():
        for _ in range(count):
            table.add("c", arm, 100.0 if rng.random() < rate else 0.0)
    return table


def test_the_greedy_arm_is_the_cheapest_not_shown_to_earn_less() -> None:
    """10% off earns a little more than no offer on 400 decisions each, well within the noise
    (a purchase worth 100 one time in ten): no offer is served. With prefer_cheaper 0, or
    without costs, the better estimate is (the rule before): 10% off."""
    names = ("none", "discount_10", "discount_20")
    costs = lambda: [0.0, 8.0, 16.0]  # noqa: E731
    rng = random.Random(4)
    table = _noisy_table(rng, {"none": (400, 0.10), "discount_10": (400, 0.11)})
    for _ in range(400):
        table.add("c", "discount_20", 0.0)  # clearly worse: never plausible
    means = ArmMeans.build(table.data())
    values, errors = means.values("c"), means.standard_errors("c")
    assert values["discount_10"] > values["none"]
    assert values["discount_10"] - values["none"] < errors["none"] + errors["discount_10"]
    assert 1.0 < errors["none"] < 2.0  # about 30 / sqrt(420)
    leader = (1 - 0.05) * LEADER_SHARE
    assert means.distribution("c", names, 0.05, costs, 1.0) == pytest.approx(
        [0.05 / 3 + 0.95 - leader, 0.05 / 3 + leader, 0.05 / 3]
    )
    assert means.distribution("c", names, 0.05, costs, 0.0) == pytest.approx(
        [0.05 / 3, 0.05 / 3 + 0.95, 0.05 / 3]
    )
    assert means.distribution("c", names, 0.05) == pytest.approx(
        [0.05 / 3, 0.05 / 3 + 0.95, 0.05 / 3]
    )


def test_a_costlier_arm_that_is_shown_to_pay_is_served() -> None:
    """20% off earns three times what no offer does on 400 decisions each: it is served
    whatever it costs."""
    names = ("none", "discount_20")
    rng = random.Random(5)
    table = _noisy_table(rng, {"none": (400, 0.05), "discount_20": (400, 0.15)})
    means = ArmMeans.build(table.data())
    assert means.distribution("c", names, 0.0, lambda: [0.0, 16.0], 1.0) == [0.0, 1.0]


def test_sums_written_without_squares_count_as_exact() -> None:
    """A version published before the squares were kept: no spread, so only an exact tie is
    within the noise (the cheaper of two equal means), and the table continues from it."""
    old = MeansData({"*": {"none": (10.0, 50.0), "discount_10": (10.0, 60.0)}})
    assert old.problem() is None
    means = ArmMeans.build(old)
    assert means.standard_errors("c") == {"none": 0.0, "discount_10": 0.0}
    assert means.distribution("c", ("none", "discount_10"), 0.0, lambda: [0.0, 8.0], 1.0) == [
        0.0,
        1.0,
    ]
    table = MeansTable(old)
    table.add("c", "none", 5.0)
    assert table.data().cells["*"]["none"] == (11.0, 55.0, 275.0)
    assert MeansData({"*": {"none": (1.0,)}}).problem() is not None


def test_the_chooser_serves_the_cheapest_within_prefer_cheaper(tmp_path: Path) -> None:
    """Through the proxy's decision path: direct visitors buy one time in ten without an offer,
    115 times in 1,000 with 10% off (3.5% more net, within the noise of 1,000 decisions each);
    after a publish no offer is served with the greedy share, and with the setting at 0 the
    rule before serves the better mean, 10% off."""
    policy, _ = compile_sources([("c.sw", POLICY)], default_schema())
    offers = policy.offers[0]
    store = ModelStore(tmp_path)
    runtime = BanditRuntime(store, rng=random.Random(1))
    runtime.install_policy_set(policy)
    learner = Learner([bandit_offers(offers)], store)
    choosers = {
        z: OfferChooser(runtime, OffersConfig(prefer_cheaper=z), None, random.Random(2))
        for z in (0.0, 1.0)
    }
    signals = {"request.utm_medium": "direct", "page.cart_value": 100.0, "cart.value": 100.0}
    rng = random.Random(6)
    for n in range(3000):
        choice, record = _offer_record(choosers[0.0], offers, signals, n)
        arm = choice.choices[0].variant
        rate = 0.115 if arm == "discount_10" else 0.10 if arm == "none" else 0.0
        reward = (100.0 if rng.random() < rate else 0.0) * (0.9 if arm == "discount_10" else 1)
        learner.learn(JoinedRecord(record, OutcomeRecord(), reward, reward > 0))
    learner.publish()
    runtime.reload()
    means = runtime.snapshot.models["offers.o"].means
    assert means is not None
    values = means.values("request.utm_medium=direct")
    assert values["discount_10"] > values["none"] > values["discount_20"]
    leader = 0.94 * LEADER_SHARE
    assert _pmf(choosers[1.0], offers, signals) == pytest.approx(
        [0.96 - leader, 0.02 + leader, 0.02]
    )
    assert _pmf(choosers[0.0], offers, signals) == pytest.approx([0.02, 0.96, 0.02])


def _pmf(chooser: OfferChooser, offers: CompiledOffers, signals: Signals) -> list[float]:
    """The distribution the chooser draws from, read off its logged probabilities."""
    seen: dict[str, float] = {}
    for _ in range(400):
        [pick] = chooser.choose(offers, offers.arms, signals, Subject(None)).choices
        assert pick.variant is not None
        seen[pick.variant] = pick.probability
    return [seen.get(name, 0.0) for name in ("none", "discount_10", "discount_20")]
