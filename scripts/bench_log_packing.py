"""CPU cost of packing log entries on Redis: `python scripts/bench_log_packing.py [ROUNDS]`.

Starts its own redis-server, then appends batches of 50 event records (the JSON the event
collector writes: the day of events of scripts/measure_user_memory.py) with
``RedisStore.log_append``, in interleaved rounds with packing on and off (``pack_entry``
replaced by one that never packs), and prints the client's CPU time per record (medians over
the rounds) and the stream's MEMORY USAGE per record for each.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(1, str(ROOT / "scripts"))

import msgspec  # noqa: E402
import redis  # noqa: E402
from measure_user_memory import DAY, _events  # noqa: E402

import slotwise.proxy.state.redis as redis_store  # noqa: E402
from slotwise.proxy.events.collector import StoredEvent  # noqa: E402
from slotwise.proxy.state import LogRecord, open_store  # noqa: E402
from tests.support.servers import redis_server  # noqa: E402

BATCHES = 40
_packing = redis_store.pack_entry


def _records(first: int) -> list[list[LogRecord]]:
    encoder = msgspec.json.Encoder()
    batches = []
    for b in range(BATCHES):
        batch = []
        for user in range(first + b * 9, first + b * 9 + 9):
            for event in _events(user, DAY, "c2ce6f447ed4d57b")[:6]:
                at = 1_796_504_236.8 + user
                stored = StoredEvent(
                    received=at,
                    consent="personal",
                    event=msgspec.structs.replace(event, time=at),  # type: ignore[type-var]
                )
                batch.append(LogRecord(encoder.encode(stored), f"user-{user}", event.id))  # type: ignore[attr-defined]
        batches.append(batch[:50])
    return batches


async def _round(url: str, log: str, packing: bool, first: int) -> float:
    never = lambda data: None  # noqa: E731
    redis_store.pack_entry = _packing if packing else never  # type: ignore[assignment]
    batches = _records(first)
    async with open_store(url) as store:
        started = time.process_time()
        for batch in batches:
            await store.log_append(log, batch, dedup_ttl=86_400.0)
        spent = time.process_time() - started
    return spent / sum(len(b) for b in batches) * 1e6


def main(rounds: int) -> None:
    with tempfile.TemporaryDirectory() as tmp, redis_server(Path(tmp)) as server:
        url = f"redis://127.0.0.1:{server.port}/0?timeout=5"
        cpu: dict[bool, list[float]] = {True: [], False: []}
        for r in range(rounds):
            for packing in (False, True) if r % 2 else (True, False):
                log = "packed" if packing else "plain"
                cpu[packing].append(asyncio.run(_round(url, log, packing, r * 10_000)))
        raw = redis.Redis(port=server.port)
        for packing, log in ((False, "plain"), (True, "packed")):
            key = f"log:{{{log}}}"
            usage = (raw.memory_usage(key, samples=0) or 0) / raw.xlen(key)
            print(
                f"packing {'on ' if packing else 'off'}: {statistics.median(cpu[packing]):.1f} us"
                f" CPU per record appended (median of {rounds}), {usage:.0f} B per stream entry"
            )


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 7)
