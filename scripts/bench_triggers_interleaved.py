"""Interleaved before/after rounds of `slotwise bench triggers`' events-per-second measurement.

Usage (from anywhere)::

    .venv/bin/python scripts/bench_triggers_interleaved.py BASE_REV [--rounds 3] [--seconds 4]
        [--redis redis://127.0.0.1:PORT/0] [--stores redis]

Extracts BASE_REV (``git archive``) into a temporary directory and runs, round after round,
the events/s measurement of ``slotwise.lab.trigger_bench.throughput`` in a fresh process of
each tree (BASE_REV through PYTHONPATH, then this working tree; which goes first alternates),
on a fresh SQLite file and, with ``--redis``, on that Redis: with a trigger engine and without
one (the baseline). Both trees run this tree's workload (``lab/trigger_bench.py`` is copied
over BASE_REV's). Prints each round and the medians per tree, store and workload, so both
trees see the same machine.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

_MEASURE = """
import asyncio, json, sys
from slotwise.lab.trigger_bench import throughput
url = sys.argv[1] or None
print(json.dumps(asyncio.run(throughput(url, float(sys.argv[2]), int(sys.argv[3]), 50))))
"""


def _measure(tree: Path | None, url: str, seconds: float, concurrency: int) -> dict[str, float]:
    env = dict(os.environ)
    if tree is not None:
        env["PYTHONPATH"] = str(tree)
    out = subprocess.run(
        [sys.executable, "-c", _MEASURE, url, str(seconds), str(concurrency)],
        env=env,
        cwd=tempfile.gettempdir(),  # not this tree: PYTHONPATH alone decides which one runs
        check=True,
        capture_output=True,
        text=True,
    )
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("base", help="the git revision to compare against")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--redis", metavar="URL", help="also measure on this Redis")
    parser.add_argument(
        "--stores", default="sqlite,redis", help="which of sqlite,redis to measure (default both)"
    )
    args = parser.parse_args()
    wanted = args.stores.split(",")
    stores = {"sqlite": ""} if "sqlite" in wanted else {}
    if args.redis and "redis" in wanted:
        stores["redis"] = args.redis
    runs: dict[tuple[str, str, str], list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "base"
        base.mkdir()
        archive = subprocess.run(
            ["git", "-C", str(ROOT), "archive", args.base], check=True, capture_output=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(base)], input=archive, check=True)
        # the same workload in both trees: this tree's bench (it uses only APIs both have)
        shutil.copy(ROOT / "lab" / "trigger_bench.py", base / "lab" / "trigger_bench.py")
        trees = {"before": base, "after": ROOT}
        for round_ in range(args.rounds):
            order = ["before", "after"] if round_ % 2 == 0 else ["after", "before"]
            for store, url in stores.items():
                for tree in order:
                    got = _measure(trees[tree], url, args.seconds, args.concurrency)
                    print(f"round {round_ + 1} {store} {tree}: {got}", flush=True)
                    for workload in ("triggers", "baseline"):
                        runs.setdefault((store, workload, tree), []).append(got[workload])
                        # CPU per event (every thread of the process): what the load of a
                        # shared machine disturbs least
                        for kind in ("cpu", "server_cpu"):
                            cpu = got.get(f"{workload}_{kind}_us")
                            if cpu is not None:
                                key = (store, f"{workload} {kind.replace('_', ' ')}", tree)
                                runs.setdefault(key, []).append(cpu)
    print(f"medians of {args.rounds} rounds (events/s, or CPU us per event; after/before):")
    for store in stores:
        for workload in (
            "triggers",
            "baseline",
            "triggers cpu",
            "baseline cpu",
            "triggers server cpu",
            "baseline server cpu",
        ):
            if (store, workload, "before") not in runs:
                continue
            before = statistics.median(runs[(store, workload, "before")])
            after = statistics.median(runs[(store, workload, "after")])
            print(
                f"  {store:6} {workload:19} before {before:9,.1f}  after {after:9,.1f}"
                f"  ratio {after / before:.2f}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
