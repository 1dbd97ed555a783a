"""Instructions per bandit operation, counted by callgrind: immune to a loaded machine.

    .venv/bin/python scripts/bench_bandit_instructions.py [--baseline DIR]

Each tree (``PYTHONPATH=<tree>``) runs the workload of ``scripts/bench_bandit.py`` under
``valgrind --tool=callgrind`` twice, with N and 2N measured operations, and the difference of
the two runs' instruction counts divided by N is one operation's cost (start-up, compiling the
policy and training the served model cancel out). Operations: ``choose`` at first sight (a
context the model has not seen: three VW predictions) and ``Learner.learn`` of one joined
decision (three slot updates). The counts are deterministic (seeded), so one pair of runs per
tree is enough (``--jobs`` run at a time); instructions are not time (VW's are cheaper per
instruction than the interpreter's), so read them beside ``bench_bandit.py``'s CPU times taken
on a quiet machine.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
N_CHOOSE = 60
N_LEARN = 100
TRAIN = 200


def workload(op: str, n: int) -> None:
    """Set up as bench_bandit does, then run ``n`` operations of kind ``op``."""
    sys.path.insert(0, str(ROOT / "scripts"))
    import bench_bandit as bb

    from slotwise.dsl.loader import load_policy_set
    from slotwise.dsl.schema_file import builtin_schema
    from slotwise.plugins.schema import Context
    from slotwise.proxy.bandit import BanditRuntime, ModelStore, from_compiled
    from slotwise.proxy.decision_log import OutcomeRecord, decision_record
    from slotwise.proxy.learn.learner import Learner
    from slotwise.proxy.learn.log import JoinedRecord

    policy = load_policy_set([bb.POLICY], builtin_schema())
    compiled = policy.campaign("spring_sale")
    campaign = from_compiled(compiled)
    rng = random.Random(7)
    store = ModelStore(Path(tempfile.mkdtemp(prefix="bench-bandit-instr-")))
    runtime = BanditRuntime(store, rng=random.Random(1))
    runtime.install_policy_set(policy)

    def contexts(count: int) -> list[tuple[str, dict[str, Any], Any]]:
        made = []
        for i in range(count):
            signals = bb._signals(rng)
            rules = compiled.eligible(Context(signals, 0.0)).slots
            made.append((f"u{rng.getrandbits(40)}-{i}", signals, rules))
        return made

    joined = []
    for user, signals, rules in contexts(3 * (TRAIN + 2 * N_LEARN)):
        decision = runtime.choose(campaign.name, rules, signals, user)
        if decision is None or decision.holdout:
            continue
        record = decision_record(decision, f"d{len(joined)}", 0.0, "bench")
        clicked = rng.random() < 0.2
        joined.append(JoinedRecord(record, OutcomeRecord(clicks=clicked), float(clicked), True))
        if len(joined) == TRAIN + 2 * N_LEARN:
            break
    learner = Learner([campaign], store)
    for record in joined[:TRAIN]:
        learner.learn(record)
    if op == "learn":
        for record in joined[TRAIN : TRAIN + n]:
            learner.learn(record)
        return
    learner.publish()
    runtime.reload()
    for user, signals, rules in contexts(n):
        runtime.choose(campaign.name, rules, signals, user)


def _instructions(tree: Path, op: str, n: int) -> int:
    out = Path(tempfile.mkdtemp(prefix="bandit-callgrind-")) / "cg.out"
    env = dict(os.environ, PYTHONPATH=str(tree))
    command = [
        "valgrind",
        "--tool=callgrind",
        f"--callgrind-out-file={out}",
        sys.executable,
        __file__,
        "--run",
        op,
        str(n),
    ]
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{tree} {op} {n}: {done.stderr[-2000:]}")
    found = re.search(r"Collected : (\d+)", done.stderr)
    if found is None:
        raise SystemExit(f"no instruction count in callgrind's output: {done.stderr[-500:]}")
    return int(found.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--baseline", type=Path, help="the tree to compare with")
    parser.add_argument("--jobs", type=int, default=4, help="callgrind runs at once")
    parser.add_argument("--run", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run:
        workload(args.run[0], int(args.run[1]))
        return
    trees = {"this tree": ROOT}
    if args.baseline is not None:
        trees = {"baseline": args.baseline, **trees}
    runs = [
        (name, tree, op, n, times)
        for name, tree in trees.items()
        for op, n in (("choose", N_CHOOSE), ("learn", N_LEARN))
        for times in (1, 2)
    ]
    with ThreadPoolExecutor(args.jobs) as pool:
        counts = list(pool.map(lambda r: _instructions(r[1], r[2], r[3] * r[4]), runs))
    found = {(r[0], r[2], r[4]): count for r, count in zip(runs, counts, strict=True)}
    print("| tree | choose, first sight: instructions | learn, one joined decision |")
    print("| --- | --- | --- |")
    for name in trees:
        cells = [
            f"{(found[name, op, 2] - found[name, op, 1]) / n:,.0f}"
            for op, n in (("choose", N_CHOOSE), ("learn", N_LEARN))
        ]
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
