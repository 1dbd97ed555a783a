"""Redis memory per user: `python scripts/measure_user_memory.py [USERS] [--scenario day|month]`.

Starts its own redis-server on a free loopback port and stores, for USERS users (default
20,000), what one user leaves, through the real components (EventCollector with personal
consent, DecisionLog), with the default settings (events.dedup_window 24 h, history bound,
retention):

- ``day`` (default; issue 22's acceptance scenario): a CRM profile imported with
  ``set_profile`` as the admin endpoint stores it (age, gender, two segments, visits, first
  seen, e-mail address and time zone: about 165 bytes as JSON), a day of events (an
  impression of the decision, three page views, a product view, an add-to-cart) and one
  decision record of the example adserver campaign with the signals a browser-like request
  logs (22 signals, 3 slots);
- ``--sdk-events``: the same events as the browser SDK sends them, each with a random UUID
  id, the visitor's anonymous id (a UUID) and the browser's clock (the default scenario's
  events have short ids, no anonymous id and the collector's time);
- ``month``: the older scenario, 30 days of browsing (10 page views, 2 product views, an
  add-to-cart and a purchase), no profile, no decision.
- ``--archive``: the store archives its logs (``archive=DIR``, issue 22): after the fill,
  one retention pass of the real collector (``apply_retention``) moves every log entry to the
  archive (``archive_after=0`` here, so that one pass moves the whole day); the script prints
  Redis's memory before and after the pass, the archive's bytes on disk, and Redis's memory
  in steady state under the defaults (``archive_after`` 1 h, ``events.retention_interval``
  1 h: Redis holds at most the last two hours of a day's log entries).

Prints Redis's used_memory before and after, per user and per 1M users (extrapolated
linearly: per-user keys and stream entries grow in proportion), and MEMORY USAGE summed per
kind of key (docs/operations.md, "Sizing"; docs/benchmarks.md has the figures). The slotwise
tree measured is this script's own, or the one named by MEASURE_TREE (to measure a tree
before a change in the same run).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]
ROOT = Path(os.environ.get("MEASURE_TREE", HERE))
sys.path.insert(0, str(ROOT))
sys.path.insert(1, str(HERE))  # tests.support, if the measured tree is older

import redis  # noqa: E402

from slotwise.proxy.decision_log import DecisionRecord, SlotRecord  # noqa: E402
from slotwise.proxy.events import EventCollector  # noqa: E402
from slotwise.proxy.events.decisions import DecisionLog  # noqa: E402
from slotwise.proxy.events.profiles import decode_profile, encode_profile  # noqa: E402
from slotwise.proxy.events.schema import Rejection, convert_event  # noqa: E402
from slotwise.proxy.state import open_store  # noqa: E402
from tests.support.servers import redis_server  # noqa: E402

try:  # decision records as the measured tree's proxy stores them: compact (issue 22) or JSON
    from slotwise.proxy.decision_codec import encode_stored as encode_decision
except ImportError:
    from slotwise.proxy.decision_log import encode_record as encode_decision

MONTH = ["page_view"] * 10 + ["product_view"] * 2 + ["add_to_cart", "purchase"]
DAY = ["impression", "page_view", "page_view", "page_view", "product_view", "add_to_cart"]
# what `GET /ad` with browser-like headers (lab/proxy_bench.py row e) logs for the example
# adserver campaign (examples/adserver/policies)
SIGNALS: dict[str, object] = {
    "consent.level": "personal",
    "consent.reason": "granted",
    "request.path": "/ad",
    "request.page_type": "other",
    "request.referrer": "google.com",
    "request.language": "de",
    "device.os": "ios",
    "device.browser": "safari",
    "device.type": "mobile",
    "geo.country": "DE",
    "time.hour": 20,
    "time.weekday": "sat",
    "time.daypart": "evening",
    "user.visits": 0,
    "user.is_new": True,
    "user.segments": (),
    "cart.value": 0.0,
    "cart.count": 0,
    "cart.items": (),
    "ad.format": "json",
    "ad.campaign_id": "cmp-spring",
    "ad.placement": "home-top",
}
SLOTS = [("headline", ("h_de",)), ("image", ("beach", "city")), ("cta", ("shop", "see"))]


def _decision(user: int, rng: random.Random) -> DecisionRecord:
    slots = [SlotRecord(name, rng.choice(cands), 1.0 / len(cands), cands) for name, cands in SLOTS]
    return DecisionRecord(
        id=f"{rng.getrandbits(96):024x}"[:16],
        ts=1_796_504_236.8 + user * 0.01,
        campaign="spring_sale",
        policy_version="2d85bd5b05f2f420",
        model_version="rules",
        holdout_share=0.1,
        signals=dict(SIGNALS),  # type: ignore[arg-type]
        slots=slots,
        eligible={name: cands for name, cands in SLOTS},
        format="json",
    )


def _profile(user: int) -> bytes:
    """What `PUT /_sw/admin/profiles/{id}` stores for a CRM record with every field the
    profile provider and the notifications read (encoded by the measured tree's endpoint)."""
    record = decode_profile(
        json.dumps(
            {
                "age": 18 + user % 60,
                "gender": ("f", "m", "d")[user % 3],
                "segments": ["newsletter", "deal-hunter"],
                "visits": user % 40,
                "first_seen": 1_741_910_400.0 + user * 37,
                "email": f"customer{user}@example.com",
                "time_zone": "Europe/Berlin",
            }
        ).encode()
    )
    assert not isinstance(record, Rejection), record
    return encode_profile(record)


def _events(
    user: int, kinds: list[str], decision_id: str, sdk: random.Random | None = None
) -> list[object]:
    out = []
    # as the browser SDK sends them (slotwise/proxy/events/sdk.js): a random UUID per event,
    # the visitor's anonymous id (a UUID) beside the user id, the browser's clock in ms
    anonymous = str(uuid.UUID(int=sdk.getrandbits(128), version=4)) if sdk else ""
    for i, kind in enumerate(kinds):
        raw: dict[str, object] = {"type": kind, "id": f"u{user}-e{i}", "user_id": f"user-{user}"}
        if sdk is not None:
            raw["id"] = str(uuid.UUID(int=sdk.getrandbits(128), version=4))
            raw["anonymous_id"] = anonymous
            raw["time"] = round(1_796_500_000 + user * 0.01 - 3600 * (len(kinds) - i), 3)
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
        if kind == "impression":
            raw["decision_id"] = decision_id
            raw["properties"] = {"campaign": "spring_sale", "slot": "image", "variant": "city"}
        event = convert_event(raw)
        assert not isinstance(event, Rejection), event
        out.append(event)
    return out


_KINDS = (
    (re.compile(rb"^log:\{[^}]*\}:d:"), "dedup ids (one key per record id)"),
    (re.compile(rb"^log:\{[^}]*\}:i"), "dedup ids (integer sets by time slice and shard)"),
    (re.compile(rb"^user:\{[^}]*\}:profile$"), "user profile"),
    (re.compile(rb"^user:\{[^}]*\}:history$"), "user history"),
    (re.compile(rb"^user:"), "other per-user keys"),
)


def _kind(key: bytes, kind: bytes) -> str:
    if kind == b"stream":
        return f"log {key.decode()} (%d entries)"
    return next((name for pattern, name in _KINDS if pattern.match(key)), "other keys")


def _usage_by_kind(raw: redis.Redis) -> Counter[str]:
    usage: Counter[str] = Counter()
    keys = list(raw.scan_iter(count=5000))
    for first in range(0, len(keys), 2000):
        chunk = keys[first : first + 2000]
        pipe = raw.pipeline(transaction=False)
        for key in chunk:
            pipe.type(key)
            pipe.memory_usage(key, samples=0)
        replies = pipe.execute()
        for key, kind, size in zip(chunk, replies[::2], replies[1::2], strict=True):
            name = _kind(key, kind)
            if kind == b"stream":
                name = name % raw.xlen(key)
            usage[name] += size or 0
    return usage


async def _archive_pass(url: str) -> None:
    async with open_store(url) as store, EventCollector(store) as collector:
        await collector.apply_retention()


async def _fill(url: str, users: int, scenario: str, sdk: bool) -> None:
    rng = random.Random(7)
    sdk_rng = random.Random(11) if sdk else None
    async with open_store(url) as store:
        async with EventCollector(store) as collector, DecisionLog(store) as decisions:
            for first in range(0, users, 200):
                batch: list[object] = []
                for user in range(first, min(users, first + 200)):
                    subject = f"user-{user}"
                    decision_id = ""
                    if scenario == "day":
                        await collector.set_profile(subject, _profile(user), actor="measure")
                        record = _decision(user, rng)
                        decision_id = record.id
                        decisions.record(
                            encode_decision(record), decision_id=record.id, subject=subject
                        )
                    kinds = DAY if scenario == "day" else MONTH
                    batch += _events(user, kinds, decision_id, sdk_rng)
                await collector.collect(batch, consent="personal")  # type: ignore[arg-type]
                await decisions.flush()
            await asyncio.sleep(0.5)  # the collector's derived state (histories) lands


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("users", nargs="?", type=int, default=20_000)
    parser.add_argument("--scenario", choices=("day", "month"), default="day")
    parser.add_argument(
        "--sdk-events",
        action="store_true",
        help="events as the browser SDK sends them (UUID ids, anonymous id, the browser's time)",
    )
    parser.add_argument(
        "--archive",
        action="store_true",
        help="the store archives its logs; one retention pass moves them out of Redis",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, redis_server(Path(tmp)) as server:
        raw = redis.Redis(port=server.port)
        before = raw.info("memory")["used_memory"]
        # a loaded machine: the request-path timeout (50 ms) would fail a measurement
        url = f"redis://127.0.0.1:{server.port}/0?timeout=5&write_timeout=60"
        archive = Path(tmp) / "archive"
        if args.archive:
            url += f"&archive={archive}&archive_after=0"
        asyncio.run(_fill(url, args.users, args.scenario, args.sdk_events))
        after = raw.info("memory")["used_memory"]
        if args.archive:
            logs = _usage_by_kind(raw)
            wall, cpu = time.perf_counter(), time.process_time()
            asyncio.run(_archive_pass(url))
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            archived = raw.info("memory")["used_memory"]
            on_disk = sum(f.stat().st_size for f in archive.glob("*/*.seg"))
        usage = _usage_by_kind(raw)
        version = raw.info("server")["redis_version"]
    per_user = (after - before) / args.users
    print(
        f"tree {ROOT}; redis {version}; scenario {args.scenario}"
        f"{', SDK events' if args.sdk_events else ''}; {args.users:,} users: "
        f"used_memory {before:,} -> {after:,} B = {per_user:,.0f} B per user, "
        f"{per_user * 1e6 / 2**30:.2f} GiB per 1M users (linear extrapolation)"
    )
    print("MEMORY USAGE per user, by kind of key:")
    for name, size in usage.most_common():
        print(f"  {size / args.users:8,.0f} B  {name}")
    print(f"  {sum(usage.values()) / args.users:8,.0f} B  all keys")
    if args.archive:
        moved = sum(size for name, size in logs.items() if name.startswith("log ")) / args.users
        held = (archived - before) / args.users
        # defaults: entries stay an hour, and the pass runs hourly: at most two hours of the
        # day's entries are in Redis at any time
        steady = held + moved * 2 / 24
        print(
            f"after one retention pass: used_memory {archived:,} B = {held:,.0f} B per user"
            f" ({held * 1e6 / 2**30:.2f} GiB per 1M users); the logs' keys held {moved:,.0f} B"
            f" per user before it; the archive holds {on_disk:,} B on disk,"
            f" {on_disk / args.users:,.0f} B per user; the pass took {wall:.2f} s"
            f" ({cpu:.2f} s of this process's CPU, Redis's own not counted)"
        )
        print(
            f"steady state with the default archive_after (1 h) and retention_interval (1 h):"
            f" {held:,.0f} + 2/24 x {moved:,.0f} = {steady:,.0f} B per user,"
            f" {steady * 1e6 / 2**30:.2f} GiB per 1M users"
        )


if __name__ == "__main__":
    main()
