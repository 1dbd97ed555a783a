"""What a learner with exact counts reaches on the offers scenario (slotwise simulate-offers).

`slotwise simulate-offers` runs the bandit (Vowpal Wabbit, through the proxy's decision path)
against the seed's fixed ladder. This script answers how much of the gap to the bound is the
learner's: on the same visitors, truth, guards, reward (revenue minus discount per hundred of
the cart), reward delay (the 120 s window at 10 visitors a second) and publish cadence (600
visitors), the offer set's own estimator and rule (slotwise.proxy.bandit.arm_means: a
``MeansTable`` learning the exact mean reward per (cell, arm), ``ArmMeans.distribution`` with
epsilon 5% and each arm's cost on the cart, ``--prefer-cheaper`` standard errors as
``offers.prefer_cheaper``; 0 is the rule before, the best mean whatever it costs) serves from
the last published means, without the rest of the proxy's path. Its cells are what the
request shows: the medium (`--cells medium`) or the medium and the cart's octave (`--cells
medium-cart`, as the bandit's coarse cart feature). Figures are the truth's expected revenue
minus discount and average discount (what offers took off, as a share of the orders' value)
of the arms served, over all visitors (learning included), against the ladder's, per seed.

    .venv/bin/python scripts/offers_exact_learner.py                   # seeds 1-10
    .venv/bin/python scripts/offers_exact_learner.py --cells medium-cart --seeds 1 2
    .venv/bin/python scripts/offers_exact_learner.py --seeds $(seq 1 40) --prefer-cheaper 0
"""

from __future__ import annotations

import argparse
import math
import random
from collections import deque

from slotwise.dsl.compiled import OfferArm
from slotwise.lab.offers_sim import (
    DEFAULT,
    VISITORS_PER_SECOND,
    OffersScenario,
    Segment,
    _visitor,
    compile_scenario_policy,
    expected_net,
)
from slotwise.proxy.bandit.arm_means import PREFER_CHEAPER, ArmMeans, MeansTable
from slotwise.proxy.offer_chooser import draw, expected_cost
from slotwise.proxy.offer_set import screen
from slotwise.proxy.offers_config import OffersConfig
from slotwise.types import Context

EPSILON = 0.05
DELAY = int(DEFAULT.window * VISITORS_PER_SECOND)  # visitors until a reward is learned


def _expected_discount(
    segment: Segment, arm: OfferArm | None, cart: float, shipping: float
) -> tuple[float, float]:
    """The expected discount cost and order value of one visitor under one arm."""
    name = arm.name if arm is not None else "none"
    value = cart * segment.basket.get(name, 1.0)
    chance = segment.purchase(name)
    cost = 0.0
    if arm is not None and arm.kind == "discount":
        cost = value * arm.discount
    elif arm is not None and arm.kind == "free_shipping":
        cost = shipping
    return chance * cost, chance * value


def run(
    scenario: OffersScenario, seed: int, cells: str, prefer_cheaper: float
) -> tuple[float, float, float]:
    """The learner's change in revenue minus discount, in average discount and in the regulars'
    revenue minus discount, against the ladder (expected values of the arms served)."""
    policy = compile_scenario_policy()
    offers, ladder = policy.offers[0], policy.trigger("fixed_ladder")
    rng = random.Random(seed)
    shipping = scenario.shipping_cost
    config = OffersConfig(shipping_cost=shipping)
    table = MeansTable()
    published = ArmMeans.build(table.data())
    pending: deque[tuple[int, str, str, float]] = deque()
    got = base = regulars = regulars_base = 0.0
    spent = [0.0, 0.0, 0.0, 0.0]  # discount and value: learner, ladder
    for n in range(scenario.visitors):
        segment, signals, cart = _visitor(scenario, rng)
        ctx = Context(signals, 0.0)
        arms, _ = screen(offers, ctx)
        cell = str(signals["request.utm_medium"])
        if cells == "medium-cart":
            cell += f"|{int(math.log2(max(cart, 1.0)))}"
        names = [a.name for a in arms]
        costs = [expected_cost(a, signals, config) for a in arms]
        pmf = published.distribution(cell, names, EPSILON, costs.copy, prefer_cheaper)
        arm = arms[draw(pmf, rng.random())]
        fixed = ladder.offer_for(ctx)
        net, fixed_net = (expected_net(segment, a, cart, shipping) for a in (arm, fixed))
        got += net
        base += fixed_net
        if segment.name == "regulars":
            regulars += net
            regulars_base += fixed_net
        for at, served in ((0, arm), (2, fixed)):
            cost, value = _expected_discount(segment, served, cart, shipping)
            spent[at] += cost
            spent[at + 1] += value
        reward = 0.0
        if rng.random() < segment.purchase(arm.name):
            value = cart * segment.basket.get(arm.name, 1.0)
            cost = value * arm.discount if arm.kind == "discount" else 0.0
            cost = shipping if arm.kind == "free_shipping" else cost
            reward = (value - cost) / (cart / 100.0)
        pending.append((n, cell, arm.name, reward))
        while pending and pending[0][0] <= n - DELAY:
            _, learned_cell, learned_arm, learned = pending.popleft()
            table.add(learned_cell, learned_arm, learned)
        if (n + 1) % scenario.publish_every == 0:
            published = ArmMeans.build(table.data())
    discount = (spent[0] / spent[1]) / (spent[2] / spent[3])
    return got / base - 1, discount - 1, regulars / regulars_base - 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--seeds", type=int, nargs="*", default=list(range(1, 11)))
    parser.add_argument("--cells", choices=("medium", "medium-cart"), default="medium")
    parser.add_argument(
        "--prefer-cheaper",
        type=float,
        default=PREFER_CHEAPER,
        help="offers.prefer_cheaper: standard errors (0: the best estimate, whatever it costs)",
    )
    args = parser.parse_args()
    nets, met = [], 0
    for seed in args.seeds:
        net, discount, regulars = run(DEFAULT, seed, args.cells, args.prefer_cheaper)
        nets.append(net)
        met += discount <= -0.15
        print(
            f"seed {seed}: revenue minus discount {net:+.1%}, average discount {discount:+.1%},"
            f" regulars {regulars:+.1%}",
            flush=True,
        )
    print(
        f"mean {sum(nets) / len(nets):+.1%}, worst {min(nets):+.1%};"
        f" average discount at least 15% lower on {met} of {len(nets)} seeds"
    )


if __name__ == "__main__":
    main()
