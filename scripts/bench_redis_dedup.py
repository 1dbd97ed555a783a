"""Redis server CPU per appended record with an id: `python scripts/bench_redis_dedup.py
[--baseline TREE] [--rounds 5]`.

Starts its own redis-server on a free loopback port; each round runs, per tree (this one and
the baseline, a checkout made with ``git archive REV | tar -x -C DIR``, in alternating order),
one process that appends 20,000 event records of 140 bytes with distinct ids (batches of 50,
``dedup_window`` 24 h) through that tree's RedisStore, and reads the redis-server's CPU time
(/proc/PID/stat) before and after: the server's CPU per record, medians over rounds. The
dedup ids of the tree measure after the first round in their steady state (the sets exist).
``--steady`` marks the store's switch to its dedup sets as a window old first, so the ids of
the format before (one key each) are no longer looked up, as a day after an upgrade.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(HERE))

from tests.support.servers import redis_server  # noqa: E402

_APPEND = r"""
import asyncio, sys
sys.path.insert(0, sys.argv[1])
from slotwise.proxy.state import LogRecord, open_store
import slotwise.proxy.state.redis as measured
assert measured.__file__.startswith(sys.argv[1]), measured.__file__
EVENT = (b'{"received":1796514881.917,"consent":"personal","event":{"type":"page_view",'
         b'"properties":{"url":"https://shop.example/c/1"},"id":"x","user_id":"user-7"}}')
async def main():
    async with open_store(sys.argv[2]) as store:
        for batch in range(400):
            records = [LogRecord(EVENT, subject="user-7", id=f"{sys.argv[3]}-{batch}-{i}")
                       for i in range(50)]
            await store.log_append("events", records, dedup_ttl=86400)
asyncio.run(main())
"""
RECORDS = 400 * 50


def _cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", type=Path)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steady", action="store_true")
    args = parser.parse_args()
    trees = {"this tree": HERE}
    if args.baseline is not None:
        trees = {"baseline": args.baseline.resolve(), **trees}
    results: dict[str, list[float]] = {name: [] for name in trees}
    with tempfile.TemporaryDirectory() as tmp, redis_server(Path(tmp)) as server:
        url = f"redis://127.0.0.1:{server.port}/0?timeout=5"
        if args.steady:
            marker = ["redis-cli", "-p", str(server.port), "set", "log:{events}:i", "0"]
            subprocess.run(marker, check=True, capture_output=True)
        for round_ in range(args.rounds):
            order = list(trees.items())
            if round_ % 2:
                order.reverse()
            for name, tree in order:
                before = _cpu(server.process.pid)
                run = [sys.executable, "-c", _APPEND, str(tree), url, f"{name}{round_}"]
                subprocess.run(run, check=True, stderr=subprocess.DEVNULL)
                results[name].append((_cpu(server.process.pid) - before) / RECORDS * 1e6)
    for name, values in results.items():
        shown = ", ".join(f"{v:.1f}" for v in values)
        print(f"{name}: redis-server CPU per record {statistics.median(values):.1f} us ({shown})")


if __name__ == "__main__":
    main()
