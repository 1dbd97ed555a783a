"""The offers simulator: a fixed discount ladder against the bandit, on a known truth.

Visitors come in segments with a ground truth per arm: the chance they buy and the size of
their basket (docs/learning.md, "Offers"). The default scenario has

- ``deal_seekers``: price-sensitive, mostly arriving from coupon sites (``request.utm_medium``
  is ``coupons`` for 85% of them); a discount makes them buy much more often, up to a point;
- ``regulars``: price-insensitive, mostly arriving directly; a discount does not change whether
  or how much they buy (it only costs).

Both policies go through the real decision path of the proxy: the policy text compiled by
slotwise.dsl; the baseline is the seed's fixed ladder as a trigger ladder (``offer by
cart.value``: 10% for carts of $50-$100, 15% above), evaluated by the compiled trigger; the
candidate is an offer set (``optimize revenue - discount_cost``), its guards screened by
slotwise.proxy.offer_set, its offer chosen by slotwise.proxy.offer_chooser over a
``BanditRuntime``; purchases become the events the shop sends, turned into rewards by
slotwise.proxy.learn.purchases, joined by the ``RewardJoiner`` and learned by the ``Learner``,
whose published models the runtime reloads. Every offer written is checked against the guards
(``violations``: must stay 0).

Time is simulated (10 visitors a second), so the reward window delays learning as it would in
production. Figures are per visitor of the whole run (learning included), with 95% intervals.
"""

from __future__ import annotations

import math
import random
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from slotwise.dsl.compiled import CompiledOffers, CompiledPolicySet, OfferArm
from slotwise.dsl.loader import compile_sources
from slotwise.plugins.registry import default_schema
from slotwise.proxy.bandit.runtime import BanditRuntime
from slotwise.proxy.bandit.store import ModelStore
from slotwise.proxy.decision_log import decision_record
from slotwise.proxy.learn.join import RewardJoiner
from slotwise.proxy.learn.learner import Learner
from slotwise.proxy.learn.purchases import purchase_rewards
from slotwise.proxy.offer_chooser import OfferChooser
from slotwise.proxy.offer_document import offer_id
from slotwise.proxy.offer_set import bandit_offers, screen
from slotwise.proxy.offers_config import OffersConfig
from slotwise.types import Context, SignalValue, Subject

VISITORS_PER_SECOND = 10.0

POLICY = """policy "offers simulation" version 1

offers checkout {
  slot at "$.offer"
  arms none, discount 10%, discount 15%, discount 20%, free_shipping
  optimize revenue - discount_cost
  explore epsilon 5%
  guard discount <= 10% when cart.value < 30
  guard no free_shipping when cart.value >= 150
}

trigger fixed_ladder {
  on event add_to_cart
  window 7d
  offer by cart.value {
    0..<50 => none
    50..<100 => discount 10%
    100.. => discount 15%
  }
}
"""


@dataclass(frozen=True, slots=True)
class Segment:
    """Ground truth of one kind of visitor.

    ``buy`` is the chance of buying without an offer; ``lift`` multiplies it per arm name (1.0
    when absent); ``basket`` multiplies the order per arm (1.0 when absent). Cart values are
    log-normal around ``cart_median``. ``utm`` is the chance the visitor arrives from a coupon
    site (``request.utm_medium = "coupons"``, else ``"direct"``): what the bandit can see.
    """

    name: str
    share: float
    buy: float
    cart_median: float
    utm: float
    lift: Mapping[str, float] = field(default_factory=dict)
    basket: Mapping[str, float] = field(default_factory=dict)

    def purchase(self, arm: str) -> float:
        return min(1.0, self.buy * self.lift.get(arm, 1.0))


@dataclass(frozen=True, slots=True)
class OffersScenario:
    name: str
    segments: tuple[Segment, ...]
    visitors: int = 100_000
    window: float = 120.0  # seconds from an offer to the purchase that joins it
    # visitors between model versions: 60 s of simulated time, what `slotwise learn --serve`
    # publishes at by default (--publish-every); it was 2,000 (200 s), slower than the learner
    publish_every: int = 600
    shipping_cost: float = 6.0
    cart_spread: float = 0.6  # sigma of log(cart value)


DEFAULT = OffersScenario(
    name="offers",
    segments=(
        Segment(
            "deal_seekers",
            share=0.4,
            buy=0.05,
            cart_median=70.0,
            utm=0.85,
            lift={
                "discount_5": 1.3,
                "discount_10": 1.75,
                "discount_15": 2.2,
                "discount_20": 2.35,
                "discount_25": 2.45,
                "free_shipping": 1.4,
            },
            basket={"discount_15": 1.05, "discount_20": 1.05, "discount_25": 1.05},
        ),
        Segment("regulars", share=0.6, buy=0.10, cart_median=90.0, utm=0.1),
    ),
)


@dataclass(slots=True)
class Tally:
    """Per policy and segment: visitors, purchases and money, with sums of squares for the
    intervals."""

    visitors: int = 0
    purchases: int = 0
    revenue: float = 0.0
    revenue_sq: float = 0.0
    net: float = 0.0
    net_sq: float = 0.0
    discount: float = 0.0  # the discount cost of the purchases
    gross_of_discounted: float = 0.0  # their order value before the offer

    def add(self, revenue: float, cost: float) -> None:
        self.visitors += 1
        if revenue > 0:
            self.purchases += 1
            self.revenue += revenue
            self.revenue_sq += revenue * revenue
            net = revenue - cost
            self.net += net
            self.net_sq += net * net
            self.discount += cost
            self.gross_of_discounted += revenue

    def merge(self, other: Tally) -> None:
        for name in Tally.__slots__:
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def per_visitor(self, total: float, squares: float) -> tuple[float, float]:
        """Mean per visitor and the half-width of its 95% interval."""
        if self.visitors < 2:
            return 0.0, math.inf
        mean = total / self.visitors
        variance = max(squares / self.visitors - mean * mean, 0.0)
        return mean, 1.96 * math.sqrt(variance / self.visitors)

    def summary(self) -> dict[str, float]:
        revenue, revenue_ci = self.per_visitor(self.revenue, self.revenue_sq)
        net, net_ci = self.per_visitor(self.net, self.net_sq)
        rate = self.purchases / self.visitors if self.visitors else 0.0
        rate_ci = 1.96 * math.sqrt(rate * (1 - rate) / self.visitors) if self.visitors else 0.0
        return {
            "visitors": self.visitors,
            "revenue_per_visitor": revenue,
            "revenue_per_visitor_ci": revenue_ci,
            "net_per_visitor": net,
            "net_per_visitor_ci": net_ci,
            "conversion_rate": rate,
            "conversion_rate_ci": rate_ci,
            # the average discount: what the offers took off, as a share of the orders' value
            "average_discount": self.discount / self.gross_of_discounted
            if self.gross_of_discounted
            else 0.0,
            "discount_per_order": self.discount / self.purchases if self.purchases else 0.0,
        }


@dataclass(slots=True)
class OffersResult:
    seed: int
    baseline: dict[str, Tally]  # segment -> tally; "all" too
    bandit: dict[str, Tally]
    violations: int
    decisions: int
    published: int
    choose_us: list[float] = field(default_factory=list)


def compile_scenario_policy(text: str = POLICY) -> CompiledPolicySet:
    """The scenario's policy, compiled (a PolicyError lists what is wrong with it)."""
    policy, _ = compile_sources([("offers-sim.sw", text)], default_schema())
    return policy


def _visitor(
    scenario: OffersScenario, rng: random.Random
) -> tuple[Segment, dict[str, SignalValue], float]:
    pick = rng.random()
    segment = scenario.segments[-1]
    for candidate in scenario.segments:
        if pick < candidate.share:
            segment = candidate
            break
        pick -= candidate.share
    cart = round(segment.cart_median * math.exp(rng.gauss(0.0, scenario.cart_spread)), 2)
    count = 1 + min(int(cart // 40), 5)
    medium = "coupons" if rng.random() < segment.utm else "direct"
    signals: dict[str, SignalValue] = {
        "request.utm_medium": medium,
        "request.page_type": "cart",
        "cart.value": cart,
        "cart.count": count,
        "page.cart_value": cart,
        "page.cart_count": count,
        "consent.level": "contextual",
    }
    return segment, signals, cart


def _order(
    segment: Segment, arm: OfferArm | None, cart: float, rng: random.Random, shipping: float
) -> dict[str, Any] | None:
    """The purchase the visitor makes under the offer (None: no purchase), as the shop sends
    it: what was paid, the items, the offer id."""
    name = arm.name if arm is not None else "none"
    if rng.random() >= segment.purchase(name):
        return None
    value = round(cart * segment.basket.get(name, 1.0), 2)
    paid = value * (1.0 - arm.discount) if arm is not None and arm.kind == "discount" else value
    props: dict[str, Any] = {
        "order_id": "o",
        "items": [{"product_id": "p", "price": value, "quantity": 1}],
        "value": round(paid, 2),
        "currency": "USD",
    }
    if arm is not None and arm.kind == "free_shipping":
        props["shipping"] = shipping
    return props


def _money(props: dict[str, Any] | None, offer: str | None, config: OffersConfig) -> list[Any]:
    if props is None:
        return []
    if offer is not None:
        props = {**props, "offer_id": offer}
    # without an offer the purchase still names the visit it belongs to (revenue, no cost)
    event = {"type": "purchase", "decision_id": "visit", "properties": props}
    return purchase_rewards(event, config)


def run_baseline(
    scenario: OffersScenario, policy: CompiledPolicySet, seed: int
) -> dict[str, Tally]:
    """The fixed ladder: the compiled trigger's ``offer by cart.value`` for every visitor."""
    rng = random.Random(seed)
    ladder = policy.trigger("fixed_ladder")
    config = OffersConfig(base_currency="USD", shipping_cost=scenario.shipping_cost)
    tallies = {s.name: Tally() for s in scenario.segments}
    for n in range(scenario.visitors):
        segment, signals, cart = _visitor(scenario, rng)
        arm = ladder.offer_for(Context(signals, n / VISITORS_PER_SECOND))
        if arm is not None and arm.kind == "none":
            arm = None
        props = _order(segment, arm, cart, rng, scenario.shipping_cost)
        offer = offer_id(f"b{n}", arm) if arm is not None else None
        revenue, cost = _totals(_money(props, offer, config))
        tallies[segment.name].add(revenue, cost)
    return tallies


def _totals(rewards: list[Any]) -> tuple[float, float]:
    revenue = sum(r.value for r in rewards if r.event == "conversion")
    cost = sum(r.value for r in rewards if r.event == "discount_cost")
    return revenue, cost


def run_bandit(
    scenario: OffersScenario,
    policy: CompiledPolicySet,
    seed: int,
    models_dir: Path,
    *,
    config: OffersConfig | None = None,
    timer: Callable[[], int] | None = None,
) -> OffersResult:
    """The offer set through the proxy's decision path and the learning loop."""
    rng = random.Random(seed)
    offers = policy.offers[0]
    campaign = bandit_offers(offers)
    store = ModelStore(models_dir)
    runtime = BanditRuntime(store, rng=random.Random(rng.random()))
    runtime.install_policy_set(policy)
    learner = Learner([campaign], store)
    joiner = RewardJoiner(lambda _: campaign.goal, window=scenario.window)
    config = config or OffersConfig(base_currency="USD", shipping_cost=scenario.shipping_cost)
    chooser = OfferChooser(runtime, config, None, random.Random(rng.random()))
    subject = Subject(None)
    tallies = {s.name: Tally() for s in scenario.segments}
    by_name = {arm.name: arm for arm in offers.arms}
    violations = published = 0
    choose_ns: list[float] = []
    for n in range(scenario.visitors):
        now = n / VISITORS_PER_SECOND
        segment, signals, cart = _visitor(scenario, rng)
        ctx = Context(signals, now)
        started = timer() if timer is not None else 0
        arms, _removed = screen(offers, ctx)
        choice = chooser.choose(offers, arms, signals, subject)
        if timer is not None:
            choose_ns.append((timer() - started) / 1000)
        picked = choice.choices[0].variant
        arm = by_name[picked] if picked is not None else None
        violations += arm is not None and not _allowed(offers, arm, ctx)
        decision_id = f"d{n}"
        record = decision_record(choice, decision_id, now, "simulated")
        joiner.add_decision(record)
        served = arm if arm is not None and arm.kind != "none" else None
        props = _order(segment, served, cart, rng, scenario.shipping_cost)
        offer = offer_id(decision_id, arm) if arm is not None else None
        rewards = _money(props, offer, config) if offer is not None else []
        for reward in rewards:
            joiner.add_reward(reward.__class__(decision_id, now + 30.0, reward.event, reward.value))
        revenue, cost = _totals(rewards)
        tallies[segment.name].add(revenue, cost)
        for joined in joiner.close_until(now):
            learner.learn(joined)
        if (n + 1) % scenario.publish_every == 0:
            published += len(learner.publish())
            runtime.reload()
    return OffersResult(seed, {}, tallies, violations, scenario.visitors, published, choose_ns)


def _allowed(offers: CompiledOffers, arm: OfferArm, ctx: Context) -> bool:
    """Independently of screen(): does every active guard allow the arm?"""
    return all(guard.allows(arm) for guard in offers.guards if guard.condition(ctx))


def run_seed(scenario: OffersScenario, seed: int, policy: CompiledPolicySet) -> OffersResult:
    with tempfile.TemporaryDirectory(prefix="slotwise-offers-sim-") as folder:
        result = run_bandit(scenario, policy, seed, Path(folder))
    result.baseline = run_baseline(scenario, policy, seed)
    return result


def expected_net(segment: Segment, arm: OfferArm | None, cart: float, shipping: float) -> float:
    """The truth's expected revenue minus discount of one visitor under one arm."""
    name = arm.name if arm is not None else "none"
    value = cart * segment.basket.get(name, 1.0)
    cost = 0.0
    if arm is not None and arm.kind == "discount":
        cost = value * arm.discount
    elif arm is not None and arm.kind == "free_shipping":
        cost = shipping
    return segment.purchase(name) * (value - cost)


def _posterior(
    scenario: OffersScenario, signals: Mapping[str, SignalValue], cart: float
) -> list[float]:
    """The chance of each segment given what the request shows: its medium and its cart."""
    weights = []
    for segment in scenario.segments:
        z = (math.log(cart) - math.log(segment.cart_median)) / scenario.cart_spread
        medium = segment.utm if signals["request.utm_medium"] == "coupons" else 1 - segment.utm
        weights.append(segment.share * medium * math.exp(-z * z / 2))
    total = sum(weights)
    return [w / total for w in weights]


@dataclass(frozen=True, slots=True)
class Headroom:
    """Expected revenue minus discount per visitor, from the truth, of three policies."""

    ladder: float  # the fixed ladder
    best: float  # the eligible arm best for the visitor's segment and cart (told the segment)
    # the eligible arm best for what the request shows (medium and cart), each visitor's
    # segment weighed by its posterior: the most a policy that sees the request can do
    signals: float


def headroom(
    scenario: OffersScenario, policy: CompiledPolicySet, seed: int, visitors: int = 100_000
) -> Headroom:
    """What the bandit can at most gain over the ladder in this scenario, no exploring: told
    each visitor's segment, and seeing only the request, as the bandit does."""
    rng = random.Random(seed)
    ladder = policy.trigger("fixed_ladder")
    offers = policy.offers[0]
    segments = scenario.segments
    shipping = scenario.shipping_cost
    base = best = seen = 0.0
    for _ in range(visitors):
        segment, signals, cart = _visitor(scenario, rng)
        ctx = Context(signals, 0.0)
        base += expected_net(segment, ladder.offer_for(ctx), cart, shipping)
        arms, _ = screen(offers, ctx)
        best += max(expected_net(segment, arm, cart, shipping) for arm in arms)
        chances = tuple(zip(_posterior(scenario, signals, cart), segments, strict=True))
        values = [sum(p * expected_net(s, arm, cart, shipping) for p, s in chances) for arm in arms]
        chosen = arms[values.index(max(values))]
        seen += expected_net(segment, chosen, cart, shipping)
    return Headroom(base / visitors, best / visitors, seen / visitors)


def with_total(tallies: Mapping[str, Tally]) -> dict[str, Tally]:
    total = Tally()
    for tally in tallies.values():
        total.merge(tally)
    return {**tallies, "all": total}


def compare(result: OffersResult) -> dict[str, Any]:
    """Per segment and overall: both policies' figures and the bandit's change."""
    base, bandit = with_total(result.baseline), with_total(result.bandit)
    out: dict[str, Any] = {"seed": result.seed, "violations": result.violations, "segments": {}}
    for name in base:
        b, c = base[name].summary(), bandit[name].summary()
        net = b["net_per_visitor"]
        net_change = c["net_per_visitor"] / net - 1 if net else 0.0
        discount_change = (
            c["average_discount"] / b["average_discount"] - 1 if b["average_discount"] else 0.0
        )
        out["segments"][name] = {
            "ladder": b,
            "bandit": c,
            "net_change": net_change,
            "average_discount_change": discount_change,
        }
    return out


__all__ = [
    "DEFAULT",
    "Headroom",
    "POLICY",
    "OffersResult",
    "OffersScenario",
    "Segment",
    "Tally",
    "compare",
    "compile_scenario_policy",
    "expected_net",
    "headroom",
    "run_baseline",
    "run_bandit",
    "run_seed",
]
