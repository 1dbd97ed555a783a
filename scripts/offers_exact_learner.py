"""What a learner with exact counts reaches on the offers scenario (slotwise simulate-offers).

`slotwise simulate-offers` runs the bandit (Vowpal Wabbit, through the proxy's decision path)
against the seed's fixed ladder. This script answers how much of the gap to the bound is the
learner's: on the same visitors, truth, guards, reward (revenue minus discount per hundred of
the cart), reward delay (the 120 s window at 10 visitors a second) and publish cadence (600
visitors), an epsilon-greedy learner (epsilon 5%, as the scenario's offer set) keeps the exact
mean reward per (cell, arm) and serves from the last published means. Its cells are what the
request shows: the medium (`--cells medium`) or the medium and the cart's octave (`--cells
medium-cart`, as the bandit's coarse cart feature). Figures are the truth's expected revenue
minus discount and average discount (what offers took off, as a share of the orders' value)
of the arms served, over all visitors (learning included), against the ladder's, per seed.

    .venv/bin/python scripts/offers_exact_learner.py                   # seeds 1-10
    .venv/bin/python scripts/offers_exact_learner.py --cells medium-cart --seeds 1 2
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
from slotwise.proxy.offer_set import screen
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


def run(scenario: OffersScenario, seed: int, cells: str) -> tuple[float, float]:
    """The exact-counts learner's change in revenue minus discount and in average discount."""
    policy = compile_scenario_policy()
    offers, ladder = policy.offers[0], policy.trigger("fixed_ladder")
    rng = random.Random(seed)
    shipping = scenario.shipping_cost
    counts: dict[tuple[str, str], list[float]] = {}
    published: dict[tuple[str, str], float] = {}
    pending: deque[tuple[int, tuple[str, str], float]] = deque()
    got = base = 0.0
    spent = [0.0, 0.0, 0.0, 0.0]  # discount and value: learner, ladder
    for n in range(scenario.visitors):
        segment, signals, cart = _visitor(scenario, rng)
        ctx = Context(signals, 0.0)
        arms, _ = screen(offers, ctx)
        cell = str(signals["request.utm_medium"])
        if cells == "medium-cart":
            cell += f"|{int(math.log2(max(cart, 1.0)))}"
        if rng.random() < EPSILON:
            arm = rng.choice(arms)
        else:
            arm = max(arms, key=lambda a: published.get((cell, a.name), 0.0))
        fixed = ladder.offer_for(ctx)
        got += expected_net(segment, arm, cart, shipping)
        base += expected_net(segment, fixed, cart, shipping)
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
        pending.append((n, (cell, arm.name), reward))
        while pending and pending[0][0] <= n - DELAY:
            _, key, learned = pending.popleft()
            total = counts.setdefault(key, [0.0, 0.0])
            total[0] += 1
            total[1] += learned
        if (n + 1) % scenario.publish_every == 0:
            published = {key: total[1] / total[0] for key, total in counts.items()}
    discount = (spent[0] / spent[1]) / (spent[2] / spent[3])
    return got / base - 1, discount - 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--seeds", type=int, nargs="*", default=list(range(1, 11)))
    parser.add_argument("--cells", choices=("medium", "medium-cart"), default="medium")
    args = parser.parse_args()
    results = []
    for seed in args.seeds:
        net, discount = run(DEFAULT, seed, args.cells)
        results.append(net)
        print(f"seed {seed}: revenue minus discount {net:+.1%}, average discount {discount:+.1%}")
    print(f"mean {sum(results) / len(results):+.1%}")


if __name__ == "__main__":
    main()
