"""Pages a batch of the trigger workload writes to SQLite's WAL, by table and index.

Usage::

    .venv/bin/python scripts/sqlite_wal_pages.py [--batches 50] [--warm 200] [--no-engine]

Runs ``slotwise bench triggers``' workload (lab/trigger_bench.py: half ``add_to_cart`` of new
users, half ``purchase`` of earlier ones, 50 events a batch) one batch at a time through
``EventCollector.collect`` on a fresh SQLite file with automatic checkpoints off, then reads
the page number of every WAL frame the measured batches wrote and names its table or index
(SQLite's ``dbstat``). What a commit costs the writer is mostly these pages: each one is
written to the WAL (4 KB), copied to the database file at the next checkpoint, and synced.
Counts do not depend on the machine's load.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import sqlite3
import struct
import tempfile
import time
from pathlib import Path
from typing import Any

_FRAME = 24 + 4096  # a WAL frame: its header, then the page (the default page size)
_WAL_HEADER = 32


async def _run(batches: int, warm: int, engine: bool) -> dict[str, Any]:
    from msgspec.json import encode

    from slotwise.lab.trigger_bench import _policy
    from slotwise.proxy.events import EventCollector, EventsConfig
    from slotwise.proxy.events.schema import decode_event
    from slotwise.proxy.state import open_store
    from slotwise.proxy.state.sqlite import SQLiteStore
    from slotwise.proxy.triggers import TriggerEngine

    policy = _policy(True)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "state.db"
        async with open_store(f"sqlite://{path}") as store:
            assert isinstance(store, SQLiteStore)
            await store._write(lambda c: c.execute("PRAGMA wal_autocheckpoint=0"))
            async with EventCollector(store, EventsConfig(history_max_len=100)) as collector:
                if engine:
                    collector.triggers = TriggerEngine(store, lambda: policy)
                carts: list[str] = []
                serial = 0

                async def batch() -> None:
                    nonlocal serial
                    buying = carts[:25]
                    del carts[: len(buying)]
                    events: list[dict[str, Any]] = []
                    new = []
                    for user in buying:
                        serial += 1
                        events.append({"type": "purchase", "user_id": user, "properties": {
                            "order_id": f"o{serial}", "value": 70.0, "currency": "EUR",
                            "items": [{"product_id": "sku-1"}]}})  # fmt: skip
                    while len(events) < 50:
                        serial += 1
                        new.append(f"r-{serial}")
                        events.append({"type": "add_to_cart", "user_id": new[-1], "properties": {
                            "product_id": "sku-1", "price": 35.0, "quantity": 2}})  # fmt: skip
                    for i, fields in enumerate(events):
                        fields.update(id=f"r-e{serial}-{i}", time=time.time())
                    decoded = [decode_event(encode(f)) for f in events]
                    await collector.collect(decoded, consent="personal")
                    carts.extend(new)

                for _ in range(warm):
                    await batch()
                wal = Path(f"{path}-wal")
                start, commits = wal.stat().st_size, store.commits
                for _ in range(batches):
                    await batch()
                commits = store.commits - commits
                data = wal.read_bytes()  # before the store closes (closing checkpoints it)
        pages = [
            struct.unpack(">I", data[offset : offset + 4])[0]
            for offset in range(max(start, _WAL_HEADER), len(data), _FRAME)
        ]
        with sqlite3.connect(path) as conn:
            owner = dict(
                (page, name) for name, page in conn.execute("SELECT name, pageno FROM dbstat")
            )
    by_table = collections.Counter(owner.get(page, "?") for page in pages)
    return {
        "frames_per_batch": round(len(pages) / batches, 1),
        "commits_per_batch": round(commits / batches, 2),
        "by_table": {name: round(n / batches, 1) for name, n in by_table.most_common()},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=50)
    parser.add_argument("--warm", type=int, default=200)
    parser.add_argument("--no-engine", action="store_true", help="without a trigger engine")
    args = parser.parse_args()
    print(asyncio.run(_run(args.batches, args.warm, not args.no_engine)))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    raise SystemExit(main())
