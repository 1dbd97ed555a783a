"""Redis memory per user under the event store: `python scripts/measure_user_memory.py [USERS]`.

Starts its own redis-server on a free loopback port, then stores, for USERS users (default
20,000), what a typical browsing user leaves in 30 days: 10 page views, 2 product views, an
add-to-cart and a purchase, with personal consent (so each user has a history), through the
real EventCollector. Prints Redis's used_memory before and after, per user and per 1M users
(docs/operations.md, "Sizing"). The events log is counted apart: events.event_retention trims it.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import redis  # noqa: E402

from slotwise.proxy.events import EventCollector  # noqa: E402
from slotwise.proxy.events.schema import Rejection, convert_event  # noqa: E402
from slotwise.proxy.state import open_store  # noqa: E402
from tests.support.servers import redis_server  # noqa: E402

KINDS = ["page_view"] * 10 + ["product_view"] * 2 + ["add_to_cart", "purchase"]


def _events(user: int) -> list[object]:
    out = []
    for i, kind in enumerate(KINDS):
        raw: dict[str, object] = {"type": kind, "id": f"u{user}-e{i}", "user_id": f"user-{user}"}
        if kind in ("product_view", "add_to_cart"):
            raw["properties"] = {
                "product_id": f"sku-{(user * 7 + i) % 5000}",
                "price": 19.9,
                "currency": "EUR",
            }
        if kind == "purchase":
            items = [{"product_id": f"sku-{user % 5000}", "quantity": 3, "price": 19.9}]
            raw["properties"] = {
                "order_id": f"o{user}",
                "items": items,
                "value": 59.7,
                "currency": "EUR",
            }
        if kind == "page_view":
            raw["properties"] = {"url": f"https://shop.example/c/{i}"}
        event = convert_event(raw)
        assert not isinstance(event, Rejection), event
        out.append(event)
    return out


async def main(users: int) -> None:
    with tempfile.TemporaryDirectory() as tmp, redis_server(Path(tmp)) as server:
        raw = redis.Redis(port=server.port)
        before = raw.info("memory")["used_memory"]
        async with open_store(f"redis://127.0.0.1:{server.port}/0") as store:
            async with EventCollector(store) as collector:
                for first in range(0, users, 200):
                    batch = [e for u in range(first, min(users, first + 200)) for e in _events(u)]
                    await collector.collect(batch, consent="personal")  # type: ignore[arg-type]
        after = raw.info("memory")["used_memory"]
        stream = sum(raw.memory_usage(key) or 0 for key in raw.scan_iter(_type="stream"))
        per_user = (after - before - stream) / users
        print(
            f"{users:,} users, {len(KINDS)} events each: used_memory {before:,} -> {after:,} B; "
            f"logs (streams) {stream:,} B; per-user state {per_user:,.0f} B, "
            f"{per_user * 1e6 / 2**30:.2f} GiB per 1M users (+ logs: "
            f"{stream / users:,.0f} B per user while retained)"
        )


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 20_000))
