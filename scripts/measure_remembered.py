"""What `bandit.remembered_contexts` buys and costs: `python scripts/measure_remembered.py`.

The campaign of scripts/bench_bandit.py (examples/scenarios/segment-winners.sw: 3 slots, 1,000
combinations, users with 12 varying signals, the policy's rules applied beforehand), its model
trained on 2,000 joined decisions and loaded as a proxy serves it. Traffic: sessions of page
views (1 to 8, 4.5 on average), ACTIVE sessions open at a time, each page view from one of
them at random (a worker serving R requests/s to sessions whose page views are S seconds
apart has about R * S / 4.5 ... R * S open at once). For each size of the memory (the setting),
it reports the share of requests whose distributions were remembered (VW skipped), the thread
CPU per ``choose`` (median of the whole run) and the memory's heap when full (tracemalloc), per
context and in total. Contexts do not repeat across users here (12 signals, most of them
spread), so what is remembered is each session's own context.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_bandit import POLICY, _signals  # noqa: E402

from slotwise.dsl.loader import load_policy_set  # noqa: E402
from slotwise.dsl.schema_file import builtin_schema  # noqa: E402
from slotwise.plugins.schema import Context  # noqa: E402
from slotwise.proxy.bandit import BanditRuntime, ModelStore, from_compiled  # noqa: E402
from slotwise.proxy.decision_log import OutcomeRecord, decision_record  # noqa: E402
from slotwise.proxy.learn.learner import Learner  # noqa: E402
from slotwise.proxy.learn.log import JoinedRecord  # noqa: E402


def _model_folder(policy: Any, compiled: Any) -> str:
    """A model store whose current model learned from 2,000 joined decisions."""
    campaign = from_compiled(compiled)
    folder = tempfile.mkdtemp(prefix="measure-remembered-")
    store = ModelStore(Path(folder))
    runtime = BanditRuntime(store, rng=random.Random(1))
    runtime.install_policy_set(policy)
    rng = random.Random(3)
    learner = Learner([campaign], store)
    for n in range(4000):
        signals = _signals(rng)
        rules = compiled.eligible(Context(signals, 0.0)).slots
        decision = runtime.choose(campaign.name, rules, signals, f"u{n}")
        if decision is None or decision.holdout:
            continue
        record = decision_record(decision, f"d{n}", 0.0, "measure")
        clicked = rng.random() < 0.2
        learner.learn(JoinedRecord(record, OutcomeRecord(clicks=clicked), float(clicked), True))
    learner.publish()
    return folder


def _run(policy: Any, compiled: Any, folder: str, size: int, active: int, requests: int) -> str:
    runtime = BanditRuntime(ModelStore(Path(folder)), rng=random.Random(1), remember=size)
    runtime.install_policy_set(policy)
    name = compiled.name
    rng = random.Random(11)

    def session() -> list[Any]:
        signals = _signals(rng)
        return [signals, compiled.eligible(Context(signals, 0.0)).slots, rng.randint(1, 8)]

    sessions = [session() for _ in range(active)]
    model = runtime.snapshot.models[name]
    cpu: list[float] = []
    remembered = 0
    for n in range(requests):
        at = rng.randrange(active)
        signals, rules, left = sessions[at]
        known = len(model._remembered)
        began = time.thread_time_ns()
        runtime.choose(name, rules, signals, f"s{at}")
        cpu.append((time.thread_time_ns() - began) / 1000)
        remembered += len(model._remembered) == known and size > 0 and n >= 0
        sessions[at][2] = left - 1
        if left <= 1:
            sessions[at] = session()
    # the heap of a full memory: fill a fresh one with distinct contexts
    fresh = BanditRuntime(ModelStore(Path(folder)), rng=random.Random(1), remember=size)
    fresh.install_policy_set(policy)
    contexts = [session() for _ in range(size)]
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    for signals, rules, _ in contexts:
        fresh.choose(name, rules, signals, None)
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    heap = sum(s.size_diff for s in after.compare_to(before, "filename"))
    per = heap / size if size else 0.0
    return (
        f"| {size:,} | {active:,} | {remembered / requests:.1%} | "
        f"{statistics.median(cpu):.1f} us | {heap / 2**20:.1f} MB | {per:,.0f} B |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="0,1024,2048,4096,8192,16384,32768")
    parser.add_argument("--active", default="1000,4000,16000")
    parser.add_argument("--requests", type=int, default=40_000)
    args = parser.parse_args()
    policy = load_policy_set([POLICY], builtin_schema())
    compiled = policy.campaign("spring_sale")
    folder = _model_folder(policy, compiled)
    print(
        "| remembered_contexts | open sessions | remembered | choose CPU p50 | heap when full "
        "| per context |"
    )
    print("| ---: | ---: | ---: | ---: | ---: | ---: |")
    for active in (int(a) for a in args.active.split(",")):
        for size in (int(s) for s in args.sizes.split(",")):
            print(_run(policy, compiled, folder, size, active, args.requests), flush=True)


if __name__ == "__main__":
    main()
