"""Reproduce a published off-policy result with ``slotwise evaluate``: the Open Bandit Dataset.

The Open Bandit Dataset (Saito et al., "Open Bandit Dataset and Pipeline", NeurIPS 2021
Datasets and Benchmarks, arXiv:2008.07146) is real logged bandit feedback from the fashion
site ZOZOTOWN: two policies, uniform Random and Bernoulli Thompson Sampling (BTS), each chose
3 of 80 items ("all" campaign) for 3 positions of a recommendation widget, with the logging
probability of every shown item and whether it was clicked. The ``obp`` wheel on PyPI ships a
10,000-row sample of each policy's log and the prior of the BTS policy that served on the site.
Its README gives one reference figure on that sample: BTS evaluated by IPW on the Random log,
relative to the Random log's own click rate, is **1.198126** (``OffPolicyEvaluation`` with
``InverseProbabilityWeighting``, the BTS action distribution from
``BernoulliTS(is_zozotown_prior=True, campaign="all", random_state=12345)
.compute_batch_action_dist(n_sim=100000)``). The two logs also give each policy's on-policy
click rate, the ground truth an off-policy estimate should find.

This script reads the wheel as data (a zip: nothing of obp is imported or installed):

1. each policy's CSV becomes a decision log in the ``slotwise export`` format: one decision per
   row (one slot, ``position_1``..``position_3``, the shown item as the variant, its
   ``propensity_score`` as the probability, all 80 items as candidates) and a ``click`` reward
   where the row was clicked (one second after the decision);
2. the BTS action distribution is recomputed exactly as obp computes it: 100,000 Monte Carlo
   draws of the Beta posterior from the shipped prior, the top 3 items by draw filling the 3
   positions, with numpy's legacy ``RandomState(12345)`` (MT19937, its legacy Gaussian, gamma
   and beta samplers) re-implemented here bit for bit in Python; it is written as a
   ``--candidate probabilities:FILE`` file ``{position: {item: probability}}``;
3. it prints the reference figures and the ``slotwise evaluate`` commands that reproduce them.

    pip download obp==0.4.1 --no-deps -d /tmp/obp
    .venv/bin/python scripts/obp_reference.py /tmp/obp/obp-0.4.1-py3-none-any.whl --out /tmp/obd

``--n-sim`` lowers the number of Monte Carlo draws (the default, 100,000, takes about a minute).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import random
import sys
import zipfile
from datetime import datetime
from pathlib import Path

README_RELATIVE_IPW = 1.198126  # obp 0.4.1 README, "Example with Open Bandit Dataset"
_ROOT = "obp/dataset/obd"
_PRIOR = "obp/policy/conf/prior_bts.yaml"
_Z95 = 1.959963984540054


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("wheel", type=Path, help="obp-0.4.1-py3-none-any.whl")
    parser.add_argument("--out", type=Path, required=True, help="directory for the files")
    parser.add_argument("--campaign", default="all", choices=("all", "men", "women"))
    parser.add_argument("--n-sim", type=int, default=100_000, help="Monte Carlo draws")
    parser.add_argument("--seed", type=int, default=12345, help="obp README's random_state")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(args.wheel) as wheel:
        logs = {
            policy: _rows(wheel.read(f"{_ROOT}/{policy}/{args.campaign}/{args.campaign}.csv"))
            for policy in ("random", "bts")
        }
        items = len(_rows(wheel.read(f"{_ROOT}/random/{args.campaign}/item_context.csv")))
        alpha, beta = _prior(wheel.read(_PRIOR).decode(), args.campaign)
    if len(alpha) != items:
        raise SystemExit(f"the prior has {len(alpha)} items, the item context {items}")
    for policy, rows in logs.items():
        path = args.out / f"{policy}.jsonl"
        path.write_text("".join(_log_lines(rows, policy, args.campaign, items)))
        print(f"wrote {path}: {len(rows)} decisions", file=sys.stderr)
    positions = sorted({int(r["position"]) for r in logs["random"]})
    distribution = bts_distribution(alpha, beta, len(positions), args.n_sim, args.seed)
    target = args.out / "bts.json"
    target.write_text(json.dumps(_candidate_file(distribution, positions), indent=1))
    uniform = {f"position_{p}": {f"item_{i}": 1 / items for i in range(items)} for p in positions}
    (args.out / "random.json").write_text(json.dumps(uniform, indent=1))
    print(f"wrote {target} and {args.out / 'random.json'}", file=sys.stderr)
    _report(logs, distribution, positions, args.out)
    return 0


def _rows(data: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(data.decode())))


def _prior(text: str, campaign: str) -> tuple[list[float], list[float]]:
    """The prior_bts.yaml of the wheel: ``campaign: {alpha: [...], beta: [...]}`` (the
    file's only shape; read without a YAML library)."""
    found: dict[str, dict[str, list[float]]] = {}
    section = key = ""
    for line in text.splitlines():
        if not line.strip():
            continue
        if not line.startswith(" "):
            section = line.rstrip(":")
            found[section] = {}
        elif line.startswith("    - "):
            found[section][key].append(float(line[6:]))
        else:
            key = line.strip().rstrip(":")
            found[section][key] = []
    return found[campaign]["alpha"], found[campaign]["beta"]


def _log_lines(rows: list[dict[str, str]], policy: str, campaign: str, items: int) -> list[str]:
    candidates = [f"item_{i}" for i in range(items)]
    lines = []
    for number, row in enumerate(rows):
        ts = datetime.fromisoformat(row["timestamp"]).timestamp()
        decision_id = f"obd-{policy}-{campaign}-{number}"
        slot = {
            "slot": f"position_{int(row['position'])}",
            "variant": f"item_{int(row['item_id'])}",
            "probability": float(row["propensity_score"]),
            "candidates": candidates,
        }
        decision = {
            "type": "decision",
            "id": decision_id,
            "ts": ts,
            "campaign": f"obd_{campaign}",
            "model_version": policy,
            "slots": [slot],
        }
        lines.append(json.dumps(decision) + "\n")
        if row["click"] == "1":
            reward = {"type": "reward", "decision_id": decision_id, "ts": ts + 1.0}
            lines.append(json.dumps({**reward, "event": "click", "value": 0.0}) + "\n")
    return lines


def _candidate_file(
    distribution: list[list[float]], positions: list[int]
) -> dict[str, dict[str, float]]:
    return {
        f"position_{p}": {f"item_{i}": row[k] for i, row in enumerate(distribution) if row[k] > 0}
        for k, p in enumerate(positions)
    }


# -- numpy's legacy RandomState, bit for bit (numpy/random/src/legacy/legacy-distributions.c) --


class LegacyRandomState:
    """``numpy.random.RandomState(seed)``'s ``beta``: MT19937 seeded by ``mt19937_seed``, its
    53-bit doubles (the same as Python's ``random.random``), the polar Gaussian with its cached
    second value, Marsaglia and Tsang's gamma, and beta as a ratio of gammas."""

    def __init__(self, seed: int) -> None:
        state = [seed & 0xFFFFFFFF]
        for i in range(1, 624):
            previous = state[-1]
            state.append((1812433253 * (previous ^ (previous >> 30)) + i) & 0xFFFFFFFF)
        self._random = random.Random()
        self._random.setstate((3, (*state, 624), None))
        self._gauss: float | None = None

    def double(self) -> float:
        return self._random.random()

    def gauss(self) -> float:
        if self._gauss is not None:
            value, self._gauss = self._gauss, None
            return value
        while True:
            x1 = 2.0 * self.double() - 1.0
            x2 = 2.0 * self.double() - 1.0
            r2 = x1 * x1 + x2 * x2
            if 0.0 < r2 < 1.0:
                break
        f = math.sqrt(-2.0 * math.log(r2) / r2)
        self._gauss = f * x1
        return f * x2

    def standard_gamma(self, shape: float) -> float:
        if shape < 1.0:
            raise ValueError("the BTS prior's parameters are all at least 1")
        if shape == 1.0:
            return -math.log(1.0 - self.double())
        b = shape - 1.0 / 3.0
        c = 1.0 / math.sqrt(9.0 * b)
        while True:
            while True:
                x = self.gauss()
                v = 1.0 + c * x
                if v > 0.0:
                    break
            v = v * v * v
            u = self.double()
            if u < 1.0 - 0.0331 * (x * x) * (x * x):
                return b * v
            if math.log(u) < 0.5 * x * x + b * (1.0 - v + math.log(v)):
                return b * v

    def beta(self, a: float, b: float) -> float:
        ga = self.standard_gamma(a)
        gb = self.standard_gamma(b)
        return ga / (ga + gb)


def bts_distribution(
    alpha: list[float], beta: list[float], positions: int, n_sim: int, seed: int
) -> list[list[float]]:
    """obp's ``BernoulliTS.compute_batch_action_dist``: per item and position, the share of
    ``n_sim`` posterior draws in which the item ranked at that position."""
    rng = LegacyRandomState(seed)
    counts = [[0] * positions for _ in alpha]
    order = range(len(alpha))
    for _ in range(n_sim):
        draws = [rng.beta(a, b) for a, b in zip(alpha, beta, strict=True)]
        ranked = sorted(order, key=draws.__getitem__, reverse=True)
        for position in range(positions):
            counts[ranked[position]][position] += 1
    return [[count / n_sim for count in row] for row in counts]


# -- the reference figures -------------------------------------------------------------------


def _wilson(k: int, n: int) -> tuple[float, float]:
    p, z2 = k / n, _Z95 * _Z95
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = _Z95 * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    return centre - half, centre + half


def _ipw(rows: list[dict[str, str]], target: list[list[float]], positions: list[int]) -> float:
    """obp's IPW on a log: mean of click * target(item, position) / propensity."""
    index = {p: k for k, p in enumerate(positions)}
    terms = [
        float(r["click"])
        * target[int(r["item_id"])][index[int(r["position"])]]
        / float(r["propensity_score"])
        for r in rows
    ]
    return math.fsum(terms) / len(terms)


def _report(
    logs: dict[str, list[dict[str, str]]],
    distribution: list[list[float]],
    positions: list[int],
    out: Path,
) -> None:
    for policy, rows in logs.items():
        clicks = sum(int(r["click"]) for r in rows)
        low, high = _wilson(clicks, len(rows))
        print(
            f"on-policy CTR of {policy}: {clicks}/{len(rows)} = {clicks / len(rows):.6f}"
            f" (Wilson 95% {low:.6f} .. {high:.6f})"
        )
    random_rows = logs["random"]
    on_policy = sum(int(r["click"]) for r in random_rows) / len(random_rows)
    ipw = _ipw(random_rows, distribution, positions)
    print(
        f"IPW of BTS on the random log: {ipw:.6f}; relative to random's CTR {ipw / on_policy:.6f}"
        f" (obp README: {README_RELATIVE_IPW})"
    )
    print("reproduce with slotwise:")
    print(
        f"  slotwise evaluate {out / 'random.jsonl'} --candidate probabilities:{out / 'bts.json'}"
    )
    print(f"  slotwise evaluate {out / 'bts.jsonl'} --candidate uniform")


if __name__ == "__main__":
    sys.exit(main())
