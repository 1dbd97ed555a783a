"""CPU and peak memory of `slotwise report` in two trees over the same generated logs,
interleaved (docs/benchmarks.md, "Recommended lists by arm and storefront KPIs by arm").

The logs are tests/benchmarks/test_report_scale.py's (one campaign, an impression per
decision, clicks for about 6%), generated once per size into a folder and reused:

    .venv/bin/python scripts/bench_report_compare.py BASE_TREE 250000 2 store
    .venv/bin/python scripts/bench_report_compare.py BASE_TREE 1000000 1 files

BASE_TREE: a checkout of the tree to compare with (``git worktree add /tmp/base main``); each
report runs with this interpreter in its tree's directory, so it imports that tree's code.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.benchmarks.test_report_scale import _fill, _traffic  # noqa: E402

CHILD = (
    "import sys\nfrom slotwise.proxy.cli import main\ncode = main(sys.argv[1:])\n"
    "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1]\n"
    "print('peak_kb', hwm, file=sys.stderr)\nsys.exit(code)\n"
)


def _logs(folder: Path, n: int, store: bool) -> list[str]:
    db = folder / "state.db"
    done = folder / f"done-{'store' if store else 'files'}"
    if not done.exists():
        decisions, events, rewards = _traffic(n)
        if store:
            asyncio.run(_fill(f"sqlite:///{db}", decisions, events))
        else:
            (folder / "decisions.jsonl").write_bytes(b"\n".join(decisions) + b"\n")
            (folder / "rewards.jsonl").write_bytes(b"\n".join(rewards) + b"\n")
        done.touch()
    if store:
        return ["--store", f"sqlite:///{db}"]
    return [str(folder / "decisions.jsonl"), str(folder / "rewards.jsonl")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("base", type=Path)
    parser.add_argument("n", type=int)
    parser.add_argument("rounds", type=int)
    parser.add_argument("source", choices=("store", "files"))
    parser.add_argument("--folder", type=Path, default=Path("/tmp/bench-report-compare"))
    args = parser.parse_args()
    folder = args.folder / str(args.n)
    folder.mkdir(parents=True, exist_ok=True)
    logs = _logs(folder, args.n, args.source == "store")
    for r in range(args.rounds):
        trees = [args.base.resolve(), REPO] if r % 2 == 0 else [REPO, args.base.resolve()]
        for tree in trees:
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            started = time.perf_counter()
            done = subprocess.run(
                [sys.executable, "-c", CHILD, "report", *logs, "--segment-by", "device.type",
                 "--format", "json"],
                cwd=tree, capture_output=True, check=False,
            )  # fmt: skip
            wall = time.perf_counter() - started
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
            if done.returncode != 0:
                sys.exit(done.stderr.decode()[-2000:])
            peak = int(done.stderr.decode().rsplit("peak_kb", 1)[1].split()[0]) / 1024
            print(
                f"{args.source} n={args.n} round {r} {tree}: CPU {cpu:.1f} s, wall {wall:.1f} s,"
                f" peak {peak:.0f} MB, load {os.getloadavg()[0]:.1f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
