"""CPU time of parsing the realistic `bench match` workload, two trees alternating
(docs/benchmarks.md, "The matcher's targets, second pass").

Each round runs one process per tree (``PYTHONPATH`` set to it) that parses the generated
policy three times with the collector off, as loading does, and prints the median; the
ratio of each round is the second tree's median over the first's.

    .venv/bin/python scripts/parse_cost.py BASE_TREE OTHER_TREE [--rules 10000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys

CHILD = """
import gc, statistics, sys, time
from slotwise.dsl.parser import parse_policy, parser
from slotwise.lab import realistic_workload
text = realistic_workload.policy_text(int(sys.argv[1]), 7)
parser()
parse_policy(text)
gc.disable()
times = []
for _ in range(3):
    started = time.process_time()
    parse_policy(text, "bench.sw")
    times.append(time.process_time() - started)
print(statistics.median(times))
"""


def _parse_seconds(tree: str, rules: int) -> float:
    env = {**os.environ, "PYTHONPATH": os.path.abspath(tree)}
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(rules)], env=env, check=True, capture_output=True
    )
    return float(out.stdout.decode().strip())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("base")
    parser.add_argument("other")
    parser.add_argument("--rules", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    ratios = []
    for number in range(1, args.rounds + 1):
        base = _parse_seconds(args.base, args.rules)
        other = _parse_seconds(args.other, args.rules)
        ratios.append(other / base)
        print(f"round {number}: base {base:.3f} s, other {other:.3f} s, ratio {other / base:.2f}")
    print(f"median ratio {statistics.median(ratios):.2f}")


if __name__ == "__main__":
    main()
