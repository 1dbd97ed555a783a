"""Reading a log from Redis's log archive against reading it from Redis: `python
scripts/bench_archive_read.py [ENTRIES] [--rounds N]`.

Starts its own redis-server on a free loopback port, appends ENTRIES (default 200,000) event
records of about 300 bytes (JSON, as the collector stores them) for 20,000 subjects, then
reads the whole log in pages of 1,000 (as `slotwise export` and the reports do) from Redis,
moves it to the archive (``log_archive``, timed), and reads it again from the archive;
interleaved rounds, medians of wall time (docs/benchmarks.md, "The log archive").
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from slotwise.proxy.state import LogRecord, Store, open_store  # noqa: E402
from tests.support.servers import redis_server  # noqa: E402


def _record(n: int) -> LogRecord:
    data = (
        f'{{"event":{{"type":"page_view","id":"u{n % 20000}-e{n}","user_id":"u{n % 20000}",'
        f'"url":"https://shop.example/category/{n % 97}/item-{n % 1000}","time":{1.7e9 + n},'
        f'"properties":{{"referrer":"https://search.example/?q=item+{n % 1000}"}}}},'
        f'"received":{1.7e9 + n:.3f},"consent":"personal"}}'
    ).encode()
    return LogRecord(data, f"u{n % 20000}")


async def _read_all(store: Store) -> tuple[float, int]:
    started, read, after = time.perf_counter(), 0, "0"
    while page := await store.log_read("events", after=after, count=1000):
        read += len(page)
        after = page[-1].position
    return time.perf_counter() - started, read


async def _round(url: str, entries: int) -> tuple[float, float, float, float, float]:
    async with open_store(url) as store:
        for first in range(0, entries, 1000):
            await store.log_append("events", [_record(n) for n in range(first, first + 1000)])
        from_redis, read = await _read_all(store)
        assert read == entries
        started = time.perf_counter()
        assert await store.log_archive("events") == entries
        moved = time.perf_counter() - started
        from_archive, read = await _read_all(store)
        assert read == entries
        started = time.perf_counter()
        assert await store.log_erase("events", "u7") == entries // 20000
        erased = time.perf_counter() - started
        started = time.perf_counter()
        assert await store.log_erase("events", "absent") == 0
        skipped = time.perf_counter() - started
        await store.log_trim("events", before=time.time() + 1)  # the next round starts empty
    return from_redis, moved, from_archive, erased, skipped


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("entries", nargs="?", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as tmp, redis_server(Path(tmp)) as server:
        url = f"{server.url}?timeout=5&write_timeout=60&archive={tmp}/archive&archive_after=0"
        for _ in range(args.rounds):
            results.append(asyncio.run(_round(url, args.entries)))
    medians = (statistics.median(r[i] for r in results) for i in range(5))
    redis_s, move_s, archive_s, erase_s, skip_s = medians
    n = args.entries
    print(
        f"{n:,} entries, medians of {args.rounds} rounds: read from Redis {redis_s:.2f} s"
        f" ({n / redis_s:,.0f}/s); archived in {move_s:.2f} s ({n / move_s:,.0f}/s); read"
        f" from the archive {archive_s:.2f} s ({n / archive_s:,.0f}/s, {archive_s / redis_s:.2f}x);"
        f" one subject erased (every segment rewritten) in {erase_s:.2f} s ({n / erase_s:,.0f}"
        f" entries/s); a subject in no segment: {skip_s:.3f} s (Redis's scan and the indexes)"
    )


if __name__ == "__main__":
    main()
