"""The offer chooser's CPU time per decision with trained means: the cheapest-arm rule against
the best mean (``offers.prefer_cheaper`` 1 against 0), interleaved.

`slotwise bench offers` serves an untrained model, where every arm ties and the rule has
nothing to compare. This script first trains the simulator's offer set (`slotwise
simulate-offers`' scenario and decision path, ``--train`` visitors, seed 1), then times
``OfferChooser.choose`` on the simulator's visitors (both media, carts that do not repeat)
with the published means, ``prefer_cheaper`` 1 and 0 alternately in ``--rounds`` rounds of
``--decisions`` decisions each, per decision this thread's CPU time
(``time.thread_time_ns``). Prints per round and setting the p50 and p99 in microseconds, and
the medians over the rounds.

    .venv/bin/python scripts/offers_rule_bench.py --train 20000 --rounds 5 --decisions 20000
    chrt --fifo 10 .venv/bin/python scripts/offers_rule_bench.py   # without preemption
"""

from __future__ import annotations

import argparse
import dataclasses
import random
import statistics
import tempfile
import time
from pathlib import Path

from slotwise.lab.offers_sim import (
    DEFAULT,
    _visitor,
    compile_scenario_policy,
    run_bandit,
)
from slotwise.proxy.bandit.runtime import BanditRuntime
from slotwise.proxy.bandit.store import ModelStore
from slotwise.proxy.offer_chooser import OfferChooser
from slotwise.proxy.offer_set import screen
from slotwise.proxy.offers_config import OffersConfig
from slotwise.types import Context, Subject


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--train", type=int, default=20_000, help="visitors to train on")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--decisions", type=int, default=20_000)
    args = parser.parse_args()
    policy = compile_scenario_policy()
    offers = policy.offers[0]
    scenario = dataclasses.replace(DEFAULT, visitors=args.train)
    with tempfile.TemporaryDirectory(prefix="slotwise-offers-rule-") as folder:
        run_bandit(scenario, policy, 1, Path(folder))
        runtime = BanditRuntime(ModelStore(Path(folder)), rng=random.Random(1))
        runtime.install_policy_set(policy)
        runtime.reload()
        model = runtime.snapshot.models["offers.checkout"]
        assert model.means is not None, "the trained offer set serves from its means"
        rng = random.Random(2)
        requests = []
        for _ in range(args.decisions):
            _, signals, _ = _visitor(DEFAULT, rng)
            arms, _ = screen(offers, Context(signals, 0.0))
            requests.append((arms, signals))
        subject = Subject(None)
        results: dict[float, list[tuple[float, float]]] = {1.0: [], 0.0: []}
        for round_ in range(1, args.rounds + 1):
            for setting in (0.0, 1.0):
                config = OffersConfig(shipping_cost=DEFAULT.shipping_cost, prefer_cheaper=setting)
                chooser = OfferChooser(runtime, config, None, random.Random(3))
                for arms, signals in requests[:1000]:  # warm-up
                    chooser.choose(offers, arms, signals, subject)
                took: list[float] = []
                clock = time.thread_time_ns
                for arms, signals in requests:
                    started = clock()
                    chooser.choose(offers, arms, signals, subject)
                    took.append((clock() - started) / 1000)
                p50, p99 = _percentile(took, 0.5), _percentile(took, 0.99)
                results[setting].append((p50, p99))
                print(
                    f"round {round_} prefer_cheaper {setting:g}: p50 {p50:.1f} us, p99 {p99:.1f} us"
                )
        for setting, figures in results.items():
            p50 = statistics.median(p for p, _ in figures)
            p99 = statistics.median(p for _, p in figures)
            print(f"prefer_cheaper {setting:g}: median p50 {p50:.1f} us, median p99 {p99:.1f} us")


if __name__ == "__main__":
    main()
