"""Instructions per request of one tree's ProxyApp in process, counted by callgrind.

Usage (from outside the repository; needs valgrind, nginx, scripts/bench-deps)::

    .venv/bin/python scripts/bench_instructions.py TREE ROW [--n 1000] [--repeat 1]

Runs ``scripts/bench_inprocess.py TREE ROW --rounds 1 --n N`` under ``valgrind
--tool=callgrind --instr-atstart=no``: start-up, seeding and the warm-up run uninstrumented;
instrumentation is switched on (``callgrind_control -i on``) for the one measured block of N
requests only, then off. Prints the instructions the proxy's process executed per request
(user space: the interpreter's work, not the kernel's; nginx is another process and is not
counted). Unlike CPU time on a shared machine, the count does not depend on what else runs,
so two trees compare to a fraction of a percent: run each tree in turn and compare.
Under valgrind a request is ~50x slower; the decision deadline (10 ms of engine time) still
holds at these rates, and a fail-open would be printed by the child.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from callgrind_block import count_block

HERE = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tree", type=Path)
    parser.add_argument("row")
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    for _ in range(args.repeat):
        per_request = _once(args.tree, args.row, args.n)
        print(f"{args.tree} row {args.row}: {per_request:,.0f} instructions/request (n={args.n})")
    return 0


def _once(tree: Path, row: str, n: int) -> float:
    script = str(HERE / "scripts" / "bench_inprocess.py")

    def child(shake: Path) -> list[str]:
        return [script, str(tree), row, "--rounds", "1", "--n", str(n), "--handshake", str(shake)]

    return count_block(child) / n


if __name__ == "__main__":
    sys.exit(main())
