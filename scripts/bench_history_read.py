"""CPU per read of a user's history on Redis, the request path's behaviour read, and per
append to a full one: `python scripts/bench_history_read.py [ROUNDS]`.

Starts its own redis-server, and in each round runs this tree and the one named by
BASE_TREE (e.g. a `git archive` of the tree before a change) one after the other, each in
its own process against that server: it writes histories of 6 and of 200 items (a day's
events as scripts/measure_user_memory.py sends them, with the collector's default
properties; 200 is events.history_max_len) through the tree's own store and reads them with
``StoreProfileSource.events`` (what the ``profile`` provider calls per request) 2,000 times,
timing process CPU; then appends one item at a time to the history of 200 (at its bound) 1,000
times, timing the Redis server's CPU (INFO cpu; the server runs nothing else). Prints the
medians of the rounds per tree and their ratio.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]
READS = 2_000
# a day's events (scripts/measure_user_memory.py), properties as the collector keeps them
DAY = [
    ("impression", b""),
    ("page_view", b""),
    ("page_view", b""),
    ("page_view", b""),
    ("product_view", b'{"product_id":"sku-865","price":19.9,"currency":"EUR"}'),
    ("add_to_cart", b'{"product_id":"sku-866","price":19.9,"currency":"EUR"}'),
]

_CHILD = """
import asyncio, json, sys, time
import redis
sys.path.insert(0, sys.argv[1])
from slotwise.plugins.profile_source import StoreProfileSource
from slotwise.proxy.state import HistoryItem, open_store, subject_key

DAY = [(k, bytes.fromhex(d)) for k, d in json.loads(sys.argv[3])]
READS = int(sys.argv[4])


async def main() -> None:
    out = {}
    async with open_store(sys.argv[2]) as store:
        source = StoreProfileSource(store, subject_key)
        for size in (6, 200):
            user = f"bench-{size}-{time.monotonic_ns()}"
            items = [
                HistoryItem(DAY[i % 6][0], 1_796_500_000.0 + i * 7.31, DAY[i % 6][1])
                for i in range(size)
            ]
            await store.history_append(subject_key(user, "history"), items, max_len=200)
            assert len(await source.events(user, 0.0)) == size
            started = time.process_time()
            for _ in range(READS):
                await source.events(user, 0.0)
            out[size] = (time.process_time() - started) / READS * 1e6
            if size == 200:
                raw = redis.Redis.from_url(sys.argv[2].split("?")[0])
                def server() -> float:
                    cpu = raw.info("cpu")
                    return float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"])
                key, item = subject_key(user, "history"), [items[4]]
                started = server()
                for _ in range(READS // 2):
                    await store.history_append(key, item, max_len=200, ttl=86400)
                out["append"] = (server() - started) / (READS // 2) * 1e6
            await store.delete(subject_key(user, "history"))
    print(json.dumps(out))


asyncio.run(main())
"""


def main(rounds: int) -> None:
    sys.path.insert(0, str(HERE))
    from tests.support.servers import redis_server

    base = os.environ.get("BASE_TREE")
    trees = {"this tree": str(HERE)} | ({"base": base} if base else {})
    day = json.dumps([(k, d.hex()) for k, d in DAY])
    spent: dict[str, dict[str, list[float]]] = {
        t: {"6": [], "200": [], "append": []} for t in trees
    }
    with tempfile.TemporaryDirectory() as tmp, redis_server(Path(tmp)) as server:
        url = f"redis://127.0.0.1:{server.port}/0?timeout=5"
        for _ in range(rounds):
            for name, tree in trees.items():
                reply = subprocess.run(
                    [sys.executable, "-c", _CHILD, tree, url, day, str(READS)],
                    capture_output=True,
                    text=True,
                    check=True,
                )
                for size, us in json.loads(reply.stdout.splitlines()[-1]).items():
                    spent[name][size].append(us)
    for size in ("6", "200", "append"):
        medians = {name: statistics.median(spent[name][size]) for name in trees}
        line = ", ".join(f"{name} {us:.1f} us" for name, us in medians.items())
        if base:
            line += f"; ratio {medians['this tree'] / medians['base']:.3f}"
        what = "server CPU per append to 200" if size == "append" else f"CPU per read of {size}"
        print(f"history, {what} items (median of {rounds}): {line}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 7)
