"""Instructions of one tree's policy build (``bench match``'s realistic workload), by callgrind.

Usage (from outside the repository; needs valgrind)::

    .venv/bin/python scripts/build_instructions.py TREE [TREE ...] [--rules 10000]
        [--stage build|parse]

For each tree, a child process (``PYTHONPATH`` set to the tree) generates the workload, builds
the grammar and loads a small policy uninstrumented; callgrind counts only the measured block:
``compile_sources`` (parse + check + compile, as ``bench match`` times it: the collector paused
by the loader and back on after, its collections included) or ``parse_policy`` alone (collector
off). Like scripts/bench_instructions.py, the count does not depend on what else runs.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from callgrind_block import count_block

CHILD = """
import gc, sys, time
from pathlib import Path
from slotwise.dsl.loader import compile_sources
from slotwise.dsl.parser import parse_policy, parser
from slotwise.dsl.schema_file import builtin_schema
from slotwise.lab import realistic_workload

shake, stage, rules = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
text = realistic_workload.policy_text(rules, 7)
parser()
schema = builtin_schema()
compile_sources([("warm.sw", realistic_workload.policy_text(200, 7))], schema)


def wait(path):
    while not path.exists():
        time.sleep(0.05)


(shake / "ready").touch()
wait(shake / "go")
if stage == "parse":
    gc.disable()
    parse_policy(text, "bench.sw")
    gc.enable()
else:
    compile_sources([("bench.sw", text)], schema)
(shake / "done").touch()
wait(shake / "exit")
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("trees", nargs="+", type=Path)
    parser.add_argument("--rules", type=int, default=10_000)
    parser.add_argument("--stage", choices=("build", "parse"), default="build")
    args = parser.parse_args()
    for tree in args.trees:
        count = _once(tree.resolve(), args.stage, args.rules)
        print(f"{tree} {args.stage} of {args.rules:,} rules: {count / 1e6:,.1f} M instructions")
    return 0


def _once(tree: Path, stage: str, rules: int) -> int:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    return count_block(lambda shake: ["-c", CHILD, str(shake), stage, str(rules)], env)


if __name__ == "__main__":
    sys.exit(main())
