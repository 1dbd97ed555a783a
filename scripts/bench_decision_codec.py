"""Decision records, JSON against the stored form: `python scripts/bench_decision_codec.py`.

CPU time per encode and per decode of the browser-like record of
scripts/measure_user_memory.py, as JSON (``encode_record``, what the proxy stored before issue
22, and what exports write) and in the compact stored form (``encode_stored`` /
``decode_stored``), in interleaved rounds of 20,000 calls; medians of the rounds. With
BASE_TREE naming another tree (e.g. a `git archive` of the tree before a change), that tree's
``encode_stored`` and ``decode_stored`` are timed in the same rounds too:
`BASE_TREE=/tmp/base python scripts/bench_decision_codec.py 15`.
"""

from __future__ import annotations

import importlib.util
import os
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(1, str(ROOT / "scripts"))

from measure_user_memory import _decision  # noqa: E402

from slotwise.proxy.decision_codec import decode_stored, encode_stored  # noqa: E402
from slotwise.proxy.decision_log import encode_record  # noqa: E402

CALLS = 20_000


def main(rounds: int) -> None:
    record = _decision(3, random.Random(1))
    compact, text = encode_stored(record), encode_record(record)
    calls: dict[str, Callable[[], object]] = {
        "encode, JSON": lambda: encode_record(record),
        "encode, stored form": lambda: encode_stored(record),
        "decode, JSON": lambda: decode_stored(text),
        "decode, stored form": lambda: decode_stored(compact),
    }
    base = os.environ.get("BASE_TREE")
    if base:
        path = Path(base) / "proxy" / "decision_codec.py"
        spec = importlib.util.spec_from_file_location("base_decision_codec", path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
        stored = module.encode_stored(record)
        print(f"base tree {base}: record {len(stored):,} B stored")
        calls["encode, base tree"] = lambda: module.encode_stored(record)
        calls["decode, base tree"] = lambda: module.decode_stored(stored)
    spent: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(rounds):
        for name, call in calls.items():
            started = time.process_time()
            for _ in range(CALLS):
                call()
            spent[name].append((time.process_time() - started) / CALLS * 1e6)
    print(f"record: {len(text):,} B as JSON, {len(compact):,} B stored")
    for name, values in spent.items():
        print(f"{name:20s} {statistics.median(values):5.2f} us CPU (median of {rounds} rounds)")
    if base:
        for step in ("encode", "decode"):
            this = statistics.median(spent[f"{step}, stored form"])
            before = statistics.median(spent[f"{step}, base tree"])
            print(f"{step}: {this - before:+.2f} us per record against the base tree")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 7)
