"""What a learner that is told the segments could reach on a simulator scenario.

`slotwise simulate` asks a generic learner to find each segment's winners from signals alone.
This script answers the question one step before: with the scenario's own truth, traffic mix,
holdout and consent share, how close to the oracle does a bandit get when it knows every
consenting user's segment (users without consent: their device only), keeps exact counts per
(segment, slot, variant) and learns in batches of `publish_every` impressions? It bounds what
the 90%-of-oracle target asks of the real engine (docs/learning.md, "Fifth round").

    .venv/bin/python scripts/oracle_bound.py                       # ts, seeds 1-10
    .venv/bin/python scripts/oracle_bound.py --learner squarecb --seeds 1 2 3
    .venv/bin/python scripts/oracle_bound.py --learner uniform --impressions 20000

Learners: `ts` (Beta-Bernoulli Thompson sampling per slot), `squarecb` (SquareCB over the
exact means, gamma = 10 * sqrt(learned impressions), as VW's default), `uniform` (uniform
choices; what its per-segment means would pick greedily is printed beside). With `--cells
features` the learner is not told the segments: its cells are the full cross of the user and
device features the engine would build (fine numeric buckets included), what a generic learner
without shrinkage across granularities would have to learn. The report is the
share of the oracle's expected CTR served over the last 5,000 impressions, and the greedy share
of the final counts over all users. Seeds drive the traffic, as `slotwise simulate --seed`.
"""

from __future__ import annotations

import argparse
import math
import random
from pathlib import Path

from slotwise.plugins.schema import SignalValue
from slotwise.proxy.bandit.errors import BanditError
from slotwise.proxy.bandit.features import DEVICE, USER, FeatureMap
from slotwise.proxy.learn.scenario import Scenario, Segment, load_scenario

DEFAULT = Path(__file__).resolve().parent.parent / "examples/scenarios/segment-winners.toml"
Counts = dict[tuple[str, str], tuple[list[int], list[int]]]


def _cell(segment: Segment, signals: dict[str, SignalValue], consented: bool, cells: str) -> str:
    """The learner's cell for a user: its segment, or the cross of its user and device features
    (without consent: the device's)."""
    if cells == "segment" and consented:
        return segment.name
    shared = FeatureMap().shared(signals, personal=consented)
    return "|".join(sorted(shared.get(USER, []) + shared.get(DEVICE, [])))


def _choose(
    learner: str, counts: tuple[list[int], list[int]], learned: int, rng: random.Random
) -> int:
    shown, clicks = counts
    k = len(shown)
    if learner == "uniform":
        return rng.randrange(k)
    if learner == "ts":
        draws = [rng.betavariate(1 + clicks[i], 1 + shown[i] - clicks[i]) for i in range(k)]
        return max(range(k), key=draws.__getitem__)
    means = [(clicks[i] + 0.5) / (shown[i] + 2) for i in range(k)]
    best = max(range(k), key=means.__getitem__)
    gamma = 10 * math.sqrt(max(learned, 1))
    pmf = [0.0 if i == best else 1 / (k + gamma * (means[best] - means[i])) for i in range(k)]
    pmf[best] = 1 - sum(pmf)
    return rng.choices(range(k), pmf)[0]


def run(
    scenario: Scenario, learner: str, seed: int, impressions: int, cells: str = "segment"
) -> tuple[float, float]:
    rng = random.Random(seed)
    slots = [slot.name for slot in scenario.campaign.slots]
    names = {slot.name: [v.name for v in slot.variants] for slot in scenario.campaign.slots}
    users: list[tuple[Segment, str, bool]] = []
    for number in range(scenario.users):
        _, segment, signals = scenario.draw_user(rng, number)
        cell = _cell(segment, signals, signals["consent.level"] == "personal", cells)
        users.append((segment, cell, rng.random() < scenario.campaign.holdout))
    counts: Counts = {}

    def of(key: tuple[str, str]) -> tuple[list[int], list[int]]:
        size = len(names[key[1]])
        return counts.setdefault(key, ([0] * size, [0] * size))

    pending: list[tuple[str, dict[str, int], bool]] = []
    served = oracle = 0.0
    learned = 0
    for n in range(impressions):
        segment, cell, holdout = users[rng.randrange(len(users))]
        if holdout:
            continue
        choice = {s: _choose(learner, of((cell, s)), learned, rng) for s in slots}
        expected = segment.ctr({s: names[s][i] for s, i in choice.items()}, scenario.upstream)
        pending.append((cell, choice, rng.random() < expected))
        if n >= impressions - 5000:
            served += expected
            oracle += segment.oracle_ctr()
        if (n + 1) % scenario.publish_every == 0:
            for at, chosen, clicked in pending:
                for slot, i in chosen.items():
                    shown, clicks = of((at, slot))
                    shown[i] += 1
                    clicks[i] += clicked
            learned += len(pending)
            pending = []
    greedy = best = 0.0
    for segment, cell, _ in users:
        picks = {}
        for slot in slots:
            shown, clicks = of((cell, slot))
            means = [(clicks[i] + 0.5) / (shown[i] + 2) for i in range(len(shown))]
            picks[slot] = names[slot][max(range(len(means)), key=means.__getitem__)]
        greedy += segment.ctr(picks, scenario.upstream)
        best += segment.oracle_ctr()
    return served / oracle, greedy / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("scenario", nargs="?", type=Path, default=DEFAULT)
    parser.add_argument("--learner", choices=("ts", "squarecb", "uniform"), default="ts")
    parser.add_argument("--seeds", type=int, nargs="+", default=list(range(1, 11)))
    parser.add_argument("--impressions", type=int, default=None)
    parser.add_argument("--cells", choices=("segment", "features"), default="segment")
    args = parser.parse_args()
    try:
        scenario = load_scenario(args.scenario)
    except BanditError as error:
        parser.error(str(error))
    impressions = args.impressions or scenario.impressions
    shares = []
    for seed in args.seeds:
        served, greedy = run(scenario, args.learner, seed, impressions, args.cells)
        shares.append(served)
        print(f"seed {seed:3d}  served {100 * served:5.1f}%  greedy {100 * greedy:5.1f}%")
    met = sum(share >= 0.9 for share in shares)
    mean = 100 * sum(shares) / len(shares)
    worst = 100 * min(shares)
    print(f"{args.learner}: mean {mean:.1f}%, worst {worst:.1f}%, >= 90%: {met}/{len(shares)}")


if __name__ == "__main__":
    main()
