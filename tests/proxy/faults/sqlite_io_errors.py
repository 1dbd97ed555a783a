"""SQLite writer I/O errors, for real: run as its own process (``python sqlite_io_errors.py DB``).

The process limits the size of the files it may write (``RLIMIT_FSIZE``, SIGXFSZ ignored), so
the writer's WAL writes fail with the kernel's EFBIG, as on a full disk; then lifts the limit.
Prints one JSON line: how many appends were acknowledged and refused while the limit held,
whether appends succeed again afterwards (and how soon), and whether every acknowledged
record is in the log.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import signal
import sys
import time

from slotwise.proxy.state import LogRecord, StoreUnavailable, open_store


async def main(path: str) -> dict[str, object]:
    acked: list[str] = []
    refused = 0
    errors: set[str] = set()
    async with open_store(f"sqlite://{path}?write_timeout=2") as store:
        for i in range(20):
            await store.log_append("events", [LogRecord(b"x" * 512, id=f"before-{i}")])
            acked.append(f"before-{i}")
        soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
        sizes = [os.path.getsize(p) for p in (path, path + "-wal") if os.path.exists(p)]
        resource.setrlimit(resource.RLIMIT_FSIZE, (max(sizes) + 16 * 1024, hard))
        for i in range(300):
            try:
                await store.log_append("events", [LogRecord(b"y" * 4096, id=f"during-{i}")])
                acked.append(f"during-{i}")
            except StoreUnavailable as exc:
                refused += 1
                errors.add(str(exc)[:120])
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        lifted = time.monotonic()
        recovered = None
        for i in range(200):
            try:
                await store.log_append("events", [LogRecord(b"z" * 512, id=f"after-{i}")])
                acked.append(f"after-{i}")
                recovered = time.monotonic() - lifted if recovered is None else recovered
            except StoreUnavailable:
                await asyncio.sleep(0.01)
        stored = set()
        after = "0"
        while entries := await store.log_read("events", after=after, count=1000):
            after = entries[-1].position
            stored.update(e.data[:1] for e in entries)
        count = await store.log_length("events")
    return {
        "acked": len(acked),
        "refused": refused,
        "errors": sorted(errors),
        "recovered_after": recovered,
        "stored": count,
        "after_ok": sum(1 for a in acked if a.startswith("after")),
    }


if __name__ == "__main__":
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    print(json.dumps(asyncio.run(main(sys.argv[1]))))
