"""The bandit's costs against another tree, interleaved: ``choose`` and the learner's rate.

    .venv/bin/python scripts/bench_bandit.py --baseline /tmp/base --rounds 5

``--baseline`` is a checkout of the tree to compare with (``git archive REV | tar -x -C DIR``);
each round runs one measuring process per tree (``PYTHONPATH=<tree>``), alternating which goes
first, and the table gives the medians over rounds. One process measures:

- ``choose`` on the 1,000-combination campaign of examples/scenarios/segment-winners.sw, with
  a model trained on 5,000 joined decisions (published and loaded, as a proxy serves it), for
  2,000 requests of distinct users whose 12 signals vary (age, device, country, hour, page),
  the policy's rules applied beforehand (not timed); thread CPU time per call, p50 and p99;
- the same users again in the same order (a second page view of each session);
- learning: 5,000 joined decisions (3 slots each) through ``Learner``, CPU time.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
POLICY = ROOT / "examples" / "scenarios" / "segment-winners.sw"
REQUESTS = 2000
JOINED = 5000


def _signals(rng: random.Random) -> dict[str, Any]:
    hour = rng.randrange(24)
    daypart = "night" if hour < 6 or hour >= 22 else ("morning" if hour < 12 else "evening")
    return {
        "consent.level": "personal" if rng.random() < 0.9 else "contextual",
        "user.is_new": rng.random() < 0.1,
        "user.age": rng.randint(18, 70),
        "user.segments": tuple(rng.sample(["sports", "deals", "fashion", "tech", "home"], 2)),
        "device.type": rng.choice(["mobile", "desktop", "tablet"]),
        "device.os": rng.choice(["ios", "android", "windows", "macos"]),
        "geo.country": rng.choice(["DE", "FR", "US", "GB", "IT"]),
        "geo.region": rng.choice(["BE", "BY", "IDF", "CA", "NY"]),
        "time.hour": hour,
        "time.daypart": daypart,
        "request.path": rng.choice(["/spring", "/", "/sale", "/new", "/cart"]),
        "ad.placement": rng.choice(["top", "side", "bottom"]),
    }


def _percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def measure() -> dict[str, float]:
    """One process's figures for the tree on PYTHONPATH."""
    from slotwise.dsl.loader import load_policy_set
    from slotwise.dsl.schema_file import builtin_schema
    from slotwise.plugins.schema import Context
    from slotwise.proxy.bandit import BanditRuntime, ModelStore, from_compiled
    from slotwise.proxy.decision_log import OutcomeRecord, decision_record
    from slotwise.proxy.learn.learner import Learner
    from slotwise.proxy.learn.log import JoinedRecord

    policy = load_policy_set([POLICY], builtin_schema())
    compiled = policy.campaign("spring_sale")
    campaign = from_compiled(compiled)
    rng = random.Random(7)
    folder = tempfile.mkdtemp(prefix="bench-bandit-")
    store = ModelStore(Path(folder))
    runtime = BanditRuntime(store, rng=random.Random(1))
    runtime.install_policy_set(policy)

    def contexts(n: int) -> list[tuple[str, dict[str, Any], Any]]:
        made = []
        for i in range(n):
            signals = _signals(rng)
            rules = compiled.eligible(Context(signals, 0.0)).slots
            made.append((f"u{rng.getrandbits(40)}-{i}", signals, rules))
        return made

    joined = []
    for user, signals, rules in contexts(3 * JOINED):
        decision = runtime.choose(campaign.name, rules, signals, user)
        if decision is None or decision.holdout:
            continue
        record = decision_record(decision, f"d{len(joined)}", 0.0, "bench")
        clicked = rng.random() < 0.2
        joined.append(JoinedRecord(record, OutcomeRecord(clicks=clicked), float(clicked), True))
        if len(joined) == JOINED:
            break
    learner = Learner([campaign], store)
    learn_many = getattr(learner, "learn_many", None)
    started = time.thread_time()
    if learn_many is not None:
        learn_many(joined)
    else:
        for record in joined:
            learner.learn(record)
    learn_rate = len(joined) / (time.thread_time() - started)
    learner.publish()
    runtime.reload()

    requests = contexts(REQUESTS)
    for user, signals, rules in requests[:200]:  # warm-up
        runtime.choose(campaign.name, rules, signals, user)
    figures: dict[str, float] = {"learn_per_s": learn_rate}
    for case in ("first", "again"):
        cpu = []
        for user, signals, rules in requests:
            began = time.thread_time_ns()
            runtime.choose(campaign.name, rules, signals, user)
            cpu.append((time.thread_time_ns() - began) / 1000)
        figures[f"{case}_p50"] = statistics.median(cpu)
        figures[f"{case}_p99"] = _percentile(cpu, 0.99)
    return figures


def _run(tree: Path) -> dict[str, float]:
    env = dict(os.environ, PYTHONPATH=str(tree))
    done = subprocess.run(
        [sys.executable, __file__, "--measure"], env=env, capture_output=True, text=True
    )
    if done.returncode != 0:
        raise SystemExit(f"{tree}: {done.stderr[-2000:]}")
    figures: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--baseline", type=Path, help="the tree to compare with")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--measure", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure()))
        return
    trees = {"this tree": ROOT}
    if args.baseline is not None:
        trees = {"baseline": args.baseline, **trees}
    results: dict[str, list[dict[str, float]]] = {name: [] for name in trees}
    for round_ in range(args.rounds):
        order = list(trees.items())
        if round_ % 2:
            order.reverse()
        for name, tree in order:
            results[name].append(_run(tree))
            print(f"round {round_ + 1} {name}: {json.dumps(results[name][-1])}", file=sys.stderr)
    keys = ["first_p50", "first_p99", "again_p50", "again_p99", "learn_per_s"]
    print("| tree | choose p50 | choose p99 | same users again p50 | p99 | learning /s |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, rounds in results.items():
        cells = [statistics.median(r[key] for r in rounds) for key in keys]
        shown = [f"{c:.1f} us" for c in cells[:4]] + [f"{cells[4]:,.0f}"]
        print(f"| {name} | " + " | ".join(shown) + " |")


if __name__ == "__main__":
    main()
