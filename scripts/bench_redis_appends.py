"""The client's CPU for the two combined Redis appends of one batch of trigger events.

Usage::

    .venv/bin/python scripts/bench_redis_appends.py redis://127.0.0.1:PORT/0 [--batches 300]

Per batch, as the event collector and the trigger engine of ``slotwise bench triggers`` call
them: ``log_append_with_history`` of 50 events (each with its history item) and
``log_append_and_set`` of 25 notifications, 50 trigger records and two audience sets. Prints
the medians of this process's CPU time per call and the Redis server's CPU per batch (INFO
cpu: a server shared with other clients counts their work too). Run it under
``valgrind --tool=callgrind`` with ``--instructions`` to count instructions of the timed
calls only (callgrind_control zeroes the counters before them and dumps after), which a
loaded machine disturbs far less than CPU time.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time

import msgspec

from slotwise.proxy.state import open_store
from slotwise.proxy.state.base import HistoryItem, LogRecord


def _event(user: str, serial: int, at: float) -> bytes:
    event = {"type": "add_to_cart", "properties": {"product_id": "sku-1", "price": 35.0,
             "quantity": 2}, "id": f"{user}-e{serial}", "time": at, "user_id": user}  # fmt: skip
    return msgspec.json.encode({"received": at, "consent": "personal", "event": event})


def _notification(user: str, at: float) -> bytes:
    # the shape of an outbox record (slotwise.proxy.notify.outbox), about 550 bytes
    return msgspec.json.encode({
        "key": f"{user}:cart_abandon:{int(at * 1000)}", "subject": user,
        "trigger": "cart_abandon", "channel": "email", "template": "cart-reminder",
        "due": at + 3600, "created": at, "quiet_start": 1320, "quiet_end": 480,
        "time_zone": None, "traits": {"user_id": user, "cart.value": 70.0, "cart.count": 2,
        "cart.items": ["sku-1"]}, "offer": {"id": f"{user}-10", "code": "CART10",
        "percent": 10.0, "label": "10% off your cart"}, "attempt": 0, "episode": 1,
        "signature_id": f"msg_{user}", "campaign": "cart-reminder", "slot": "banner",
    })  # fmt: skip


async def _run(url: str, batches: int, instructions: bool) -> None:
    def callgrind(command: str) -> None:
        if instructions:
            subprocess.run(["callgrind_control", command, str(os.getpid())], capture_output=True)

    import redis.asyncio as aioredis

    info = aioredis.Redis.from_url(url.split("?", 1)[0])

    async def server_cpu() -> float:
        cpu = await info.info("cpu")
        return float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"])

    async with open_store(url) as store:
        tag = f"{time.time_ns():x}"
        history_us: list[float] = []
        set_us: list[float] = []
        callgrind("-z")
        server = await server_cpu()
        for j in range(batches):
            at = time.time()
            users = [f"{tag}-{j}-{i}" for i in range(50)]
            records = [LogRecord(_event(u, i, at), subject=u, id=f"{u}-e") for i, u in
                       enumerate(users)]  # fmt: skip
            item = HistoryItem("add_to_cart", at, b'{"product_id":"sku-1","price":35.0}')
            history = [(f"u:{{{u}}}:events", item) for u in users]
            notes = [LogRecord(_notification(u, at), subject=u, id=f"{u}-n") for u in users[:25]]
            values = [(f"u:{{{u}}}:triggers", b"x" * 120) for u in users]
            members = [
                ("audience:{cart}", [u.encode() for u in users[:25]]),
                ("audience:{browse}", [u.encode() for u in users[25:]]),
            ]
            cpu = time.process_time()
            await store.log_append_with_history(
                "events", records, history, dedup_ttl=3600, max_len=100, ttl=86400
            )
            history_us.append((time.process_time() - cpu) * 1e6)
            cpu = time.process_time()
            await store.log_append_and_set(
                "notify:outbox", notes, dedup_ttl=3600, values=values, ttl=86400, members=members
            )
            set_us.append((time.process_time() - cpu) * 1e6)
        server = await server_cpu() - server
        callgrind("-d")
    await info.aclose()
    print(
        f"per batch of 50 events, medians of {batches}: log_append_with_history"
        f" {statistics.median(history_us):,.0f} us, log_append_and_set"
        f" {statistics.median(set_us):,.0f} us of this process's CPU; the Redis server"
        f" {server / batches * 1e6:,.0f} us"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url", help="redis://host:port/db (not a cluster)")
    parser.add_argument("--batches", type=int, default=300)
    parser.add_argument(
        "--instructions", action="store_true", help="zero/dump callgrind's counters around"
    )
    args = parser.parse_args()
    asyncio.run(_run(args.url, args.batches, args.instructions))
    return 0


if __name__ == "__main__":
    sys.exit(main())
