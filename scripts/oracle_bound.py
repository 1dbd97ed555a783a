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
without shrinkage across granularities would have to learn. With `--cells hierarchy` it is not
told them either, but shrinks: cells nest (all users, device, x age octave, x fine age bucket,
x country, x daypart), each cell's Beta prior is its parent's posterior mean, and each level's
prior strength is estimated from the data (empirical Bayes, by moments), so a level that
carries nothing is pooled away and one that matters keeps its own counts. The report is the
share of the oracle's expected CTR served over the last 5,000 impressions, and the greedy share
of the final counts over all users. Seeds drive the traffic, as `slotwise simulate --seed`.
"""

from __future__ import annotations

import argparse
import math
import random
from pathlib import Path

from slotwise.lab.scenario import Scenario, Segment, load_scenario
from slotwise.plugins.schema import SignalValue
from slotwise.proxy.bandit.errors import BanditError
from slotwise.proxy.bandit.features import DEVICE, USER, FeatureMap

DEFAULT = Path(__file__).resolve().parent.parent / "examples/scenarios/segment-winners.toml"
Counts = dict[tuple[str, str], tuple[list[int], list[int]]]
# Beta posterior per variant of a (cell, slot): alphas, betas.
Posterior = tuple[list[float], list[float]]
# The nesting of --cells hierarchy, coarse to fine (feature-name prefixes; the age's octave
# bucket is written "user.age~~", its fine bucket "user.age~").
LEVELS = ("device.", "user.age~~", "user.age~", "geo.", "time.")
# Bounds on a level's estimated prior strength (pseudo-impressions).
STRENGTH = (2.0, 1e5)


def _path(
    segment: Segment, signals: dict[str, SignalValue], consented: bool, cells: str
) -> list[str]:
    """The learner's cells for a user, coarse to fine; it chooses by the last. Its segment, or
    the cross of its user and device features (without consent: the device's), or with
    `hierarchy` every prefix of LEVELS the user has features for."""
    if cells == "segment" and consented:
        return [segment.name]
    shared = FeatureMap().shared(signals, personal=consented)
    if cells == "features":
        return ["|".join(sorted(shared.get(USER, []) + shared.get(DEVICE, [])))]
    features = [feature for values in shared.values() for feature in values]
    path = ["*"]
    for prefix in LEVELS:
        found = [f for f in features if f.startswith(prefix) and not f.startswith(prefix + "~")]
        if not found:
            break
        path.append(path[-1] + "|" + found[0])
    return path


def _flat(counts: tuple[list[int], list[int]]) -> Posterior:
    shown, clicks = counts
    return [1.0 + c for c in clicks], [1.0 + n - c for n, c in zip(shown, clicks, strict=True)]


def _shrink(
    counts: Counts, parents: dict[str, str], depth: dict[str, int], slots: list[str]
) -> dict[tuple[str, str], Posterior]:
    """Posteriors of --cells hierarchy: top down, a cell's prior is its parent's posterior
    mean with the level's strength m, estimated by moments over the level's (cell, variant)
    rates: m = mean * (1 - mean) / tau^2 - 1, tau^2 the spread of child rates around their
    parents' means beyond what sampling explains. A prior never claims more than its parent's
    own evidence, so a cell under a barely seen parent stays uncertain."""
    posterior: dict[tuple[str, str], Posterior] = {}
    by_depth: dict[int, list[str]] = {}
    for cell, d in depth.items():
        by_depth.setdefault(d, []).append(cell)
    for slot in slots:
        posterior[("*", slot)] = _flat(counts[("*", slot)])
        for d in range(1, max(by_depth) + 1):
            spread = sampling = weight = total_mean = 0.0
            seen = 0
            for cell in by_depth[d]:
                alpha, beta = posterior[(parents[cell], slot)]
                shown, clicks = counts[(cell, slot)]
                for i, n in enumerate(shown):
                    if n:
                        mean = alpha[i] / (alpha[i] + beta[i])
                        spread += n * (clicks[i] / n - mean) ** 2
                        sampling += mean * (1 - mean)
                        weight += n
                        total_mean += mean
                        seen += 1
            strength = STRENGTH[1]
            if seen:
                tau2 = max((spread - sampling) / weight, 1e-12)
                mean = total_mean / seen
                strength = min(max(mean * (1 - mean) / tau2 - 1, STRENGTH[0]), STRENGTH[1])
            for cell in by_depth[d]:
                posterior[(cell, slot)] = _child(
                    posterior[(parents[cell], slot)], counts[(cell, slot)], strength
                )
    return posterior


def _child(parent: Posterior, counts: tuple[list[int], list[int]], strength: float) -> Posterior:
    alphas, betas = [], []
    for a, b, n, c in zip(*parent, *counts, strict=True):
        m = min(strength, a + b)
        alphas.append(m * a / (a + b) + c)
        betas.append(m * b / (a + b) + n - c)
    return alphas, betas


def _choose(learner: str, posterior: Posterior, learned: int, rng: random.Random) -> int:
    alpha, beta = posterior
    k = len(alpha)
    if learner == "uniform":
        return rng.randrange(k)
    if learner == "ts":
        draws = [rng.betavariate(alpha[i], beta[i]) for i in range(k)]
        return max(range(k), key=draws.__getitem__)
    means = [(alpha[i] - 0.5) / (alpha[i] + beta[i]) for i in range(k)]
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
    users: list[tuple[Segment, list[str], bool]] = []
    parents: dict[str, str] = {}
    depth: dict[str, int] = {}
    counts: Counts = {}
    for number in range(scenario.users):
        _, segment, signals = scenario.draw_user(rng, number)
        path = _path(segment, signals, signals["consent.level"] == "personal", cells)
        users.append((segment, path, rng.random() < scenario.campaign.holdout))
        for d, cell in enumerate(path):
            depth[cell] = d
            parents.update({cell: path[d - 1]} if d else {})
            for slot in slots:
                counts.setdefault((cell, slot), ([0] * len(names[slot]), [0] * len(names[slot])))

    def refit() -> dict[tuple[str, str], Posterior]:
        if cells == "hierarchy":
            return _shrink(counts, parents, depth, slots)
        return {key: _flat(value) for key, value in counts.items()}

    posterior = refit()
    pending: list[tuple[list[str], dict[str, int], bool]] = []
    served = oracle = 0.0
    learned = 0
    for n in range(impressions):
        segment, path, holdout = users[rng.randrange(len(users))]
        if holdout:
            continue
        choice = {s: _choose(learner, posterior[(path[-1], s)], learned, rng) for s in slots}
        expected = segment.ctr({s: names[s][i] for s, i in choice.items()}, scenario.upstream)
        pending.append((path, choice, rng.random() < expected))
        if n >= impressions - 5000:
            served += expected
            oracle += segment.oracle_ctr()
        if (n + 1) % scenario.publish_every == 0:
            for at, chosen, clicked in pending:
                for cell in at:
                    for slot, i in chosen.items():
                        shown, clicks = counts[(cell, slot)]
                        shown[i] += 1
                        clicks[i] += clicked
            learned += len(pending)
            pending = []
            posterior = refit()
    greedy = best = 0.0
    for segment, path, _ in users:
        picks = {}
        for slot in slots:
            alpha, beta = posterior[(path[-1], slot)]
            means = [(a - 0.5) / (a + b) for a, b in zip(alpha, beta, strict=True)]
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
    parser.add_argument("--cells", choices=("segment", "features", "hierarchy"), default="segment")
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
