"""Interleaved before/after rounds of `slotwise bench offers`.

Usage (from anywhere)::

    .venv/bin/python scripts/bench_offers_interleaved.py BASE_REV [--rounds 9] [--decisions 10000]
        [--realtime] [--carts 500]

Extracts BASE_REV (`git archive`) into a temporary directory, then runs `slotwise bench offers
--format json` from that tree (through PYTHONPATH, started outside the repository) and from
this working tree alternately, one after the other per round, so both see the same machine.
Prints each run and the medians over the rounds of the step's CPU p50 and p99 (of every
decision, and of those no other process interrupted) and the chooser's p50, with the ratio
after / before and the median of the paired ratios (docs/benchmarks.md, "Offers").
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIGURES = (
    "step_cpu_p50_us",
    "step_cpu_p99_us",
    "undisturbed_cpu_p50_us",
    "undisturbed_cpu_p99_us",
    "choose_p50_us",
)


def _run(tree: Path, decisions: int, realtime: bool = False, carts: int = 1) -> dict[str, float]:
    command = [sys.executable, "-m", "slotwise", "bench", "offers", "--format", "json"]
    command += ["--decisions", str(decisions)]
    if carts > 1:  # the same bench over many cart values (scripts/offers_bench_carts.py)
        command = [sys.executable, str(ROOT / "scripts" / "offers_bench_carts.py")]
        command += [str(carts), str(decisions)]
    if realtime:  # SCHED_FIFO: no other process of normal priority preempts the run
        command = ["chrt", "--fifo", "10", *command]
    env = {**os.environ, "PYTHONPATH": str(tree)}
    done = subprocess.run(
        command, env=env, cwd=tempfile.gettempdir(), capture_output=True, text=True, check=True
    )
    figures: dict[str, float] = json.loads(done.stdout)
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("base")
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--decisions", type=int, default=10_000)
    parser.add_argument(
        "--realtime",
        action="store_true",
        help="run each bench under chrt --fifo 10 (needs CAP_SYS_NICE): on a shared machine the"
        " other processes then cannot preempt it, and its p99 is the code's, not the load's",
    )
    parser.add_argument(
        "--carts",
        type=int,
        default=1,
        help="cycle the page's cart through this many values (scripts/offers_bench_carts.py)",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="slotwise-offers-base-") as folder:
        base = Path(folder)
        archive = subprocess.run(
            ["git", "-C", str(ROOT), "archive", args.base], capture_output=True, check=True
        )
        subprocess.run(["tar", "-x", "-C", str(base)], input=archive.stdout, check=True)
        results: dict[str, list[dict[str, float]]] = {"before": [], "after": []}
        for n in range(1, args.rounds + 1):
            for label, tree in (("before", base), ("after", ROOT)):
                figures = _run(tree, args.decisions, args.realtime, args.carts)
                results[label].append(figures)
                shown = ", ".join(f"{k} {figures[k]:.1f}" for k in FIGURES)
                print(f"round {n} {label}: {shown}", flush=True)
    for key in FIGURES:
        before = [r[key] for r in results["before"]]
        after = [r[key] for r in results["after"]]
        paired = statistics.median(a / b for a, b in zip(after, before, strict=True))
        print(
            f"{key}: before {statistics.median(before):.1f}, after {statistics.median(after):.1f}"
            f" ({statistics.median(after) / statistics.median(before):.3f}; paired {paired:.3f})"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
