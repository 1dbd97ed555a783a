"""Redis bytes per dedup id by how many ids a set holds: `python scripts/measure_dedup_sets.py`.

The Redis store keeps dedup ids in integer sets per time slice and shard (16,384 shards;
docs/state.md): how full they are depends on the traffic (a day of 1M users of
scripts/measure_user_memory.py's "day" puts 366 event ids and 61 decision ids in each), which a
run of that script with 20,000 users cannot show. Starts its own redis-server on a free
loopback port, fills sets of several sizes with random 63-bit ids as the store does, and
prints MEMORY USAGE per id, beside used_memory per key of the format before (a key per id).
"""

from __future__ import annotations

import random
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import redis  # noqa: E402

from tests.support.servers import redis_server  # noqa: E402

EXPIRES = 1_796_600_000_000  # ms; any time ahead


def main() -> None:
    rng = random.Random(1)
    with tempfile.TemporaryDirectory() as tmp, redis_server(Path(tmp)) as server:
        raw = redis.Redis(port=server.port)
        version = raw.info("server")["redis_version"]
        print(f"redis {version}")
        for size in (1, 7, 61, 366, 512, 513):
            key = f"log:{{events}}:i:86400000:20792:{size:04x}"
            raw.sadd(key, *[rng.getrandbits(63) for _ in range(size)])
            raw.pexpireat(key, EXPIRES)
            usage = raw.memory_usage(key, samples=0) or 0
            encoding = raw.object("encoding", key).decode()
            print(f"  a set of {size:3} ids ({encoding}): {usage / size:6.1f} B per id")
        before = raw.info("memory")["used_memory"]
        for n in range(1000):
            raw.set(f"log:{{events}}:d:u{n}-e{n % 6}", 1, px=86_400_000)
        per_key = (raw.info("memory")["used_memory"] - before) / 1000
        print(f"  a key per id (before): {per_key:6.1f} B of used_memory per id")


if __name__ == "__main__":
    main()
