"""CPU time of ``CompiledCampaign.eligible()`` for two trees in one process, alternating
(docs/benchmarks.md, "The matcher's targets, third pass").

The base tree's ``slotwise`` package is copied to a temporary directory as ``slotwise_base``
(its imports rewritten), so both trees' compiled policies live in one process and their
requests alternate in blocks of 50 (``--block``): a time slice lost to another process, or a
busy moment of the machine, falls on both. Prints each tree's build CPU time, the CPU time
per call of each round and the median of the per-round ratios (this tree over the base).

    .venv/bin/python scripts/match_pair.py BASE_TREE [--rules 10000] [--rounds 9]

BASE_TREE is a checkout of the tree to compare with (``git worktree add /tmp/base main``).
"""

from __future__ import annotations

import argparse
import gc
import importlib
import re
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BLOCK = 50
IMPORTS = re.compile(r"\bslotwise(?=[. ]|$)")


def _renamed_copy(tree: Path, into: Path) -> None:
    """``tree``'s slotwise package as ``into/slotwise_base``, every import pointing at it."""
    target = into / "slotwise_base"
    shutil.copytree(tree / "slotwise", target, symlinks=False)
    for path in target.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        path.write_text(
            "\n".join(
                IMPORTS.sub("slotwise_base", line)
                if line.lstrip().startswith(("from ", "import "))
                else line
                for line in text.split("\n")
            ),
            encoding="utf-8",
        )


def _build(package: str, rules: int) -> tuple[list[tuple[Any, Any]], float]:
    workload = importlib.import_module(f"{package}.lab.realistic_workload")
    schema = importlib.import_module(f"{package}.dsl.schema_file").builtin_schema()
    loader = importlib.import_module(f"{package}.dsl.loader")
    importlib.import_module(f"{package}.dsl.parser").parser()
    text = workload.policy_text(rules, 7)
    started = time.process_time()
    policy, _ = loader.compile_sources([("bench.sw", text)], schema)
    build = time.process_time() - started
    selected = [(ctx, policy.select(ctx)) for ctx in workload.contexts(1000, 11)]
    return [(ctx, campaign) for ctx, campaign in selected if campaign is not None], build


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("base", help="a checkout of the tree to compare with")
    parser.add_argument("--rules", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument(
        "--block",
        type=int,
        default=BLOCK,
        help="requests per tree before switching (1000: whole passes, warmer caches)",
    )
    args = parser.parse_args()
    here = Path(__file__).resolve().parent.parent
    with tempfile.TemporaryDirectory() as scratch:
        _renamed_copy(Path(args.base).resolve(), Path(scratch))
        sys.path[:0] = [scratch, str(here)]
        base, base_build = _build("slotwise_base", args.rules)
        this, this_build = _build("slotwise", args.rules)
        print(f"build CPU: base {base_build:.3f} s, this tree {this_build:.3f} s")
        gc.collect()
        gc.freeze()  # as a server does after loading
        clock = time.process_time
        base_us: list[float] = []
        this_us: list[float] = []
        for _ in range(args.rounds):
            spent = [0.0, 0.0]
            for start in range(0, len(base), args.block):
                for side, requests in enumerate((base, this)):
                    started = clock()
                    for ctx, campaign in requests[start : start + args.block]:
                        campaign.eligible(ctx)
                    spent[side] += clock() - started
            base_us.append(spent[0] / len(base) * 1e6)
            this_us.append(spent[1] / len(this) * 1e6)
    ratios = [b / a for a, b in zip(base_us, this_us, strict=True)]
    print("eligible() CPU us per call, base:", " ".join(f"{t:.1f}" for t in base_us))
    print("eligible() CPU us per call, this:", " ".join(f"{t:.1f}" for t in this_us))
    print(
        f"medians: base {statistics.median(base_us):.2f} us, this tree "
        f"{statistics.median(this_us):.2f} us; ratio (median of rounds) "
        f"{statistics.median(ratios):.3f} (rounds {min(ratios):.3f}-{max(ratios):.3f})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
