"""``slotwise bench triggers``: what triggers cost per accepted event and per request.

Three measurements, each against a baseline taken in the same run:

1. **evaluation per accepted event** (microseconds, p50/p99): the engine's work for one user
   once their records are read: the history indexed, the stored signals built, every trigger
   of ``policies/cart.sw`` plus a browse-abandonment trigger derived and its ``when``
   evaluated (no store I/O: that is measured in 2);
2. **events per second that arm or cancel triggers**, through ``EventCollector.collect`` on a
   real store (SQLite file; Redis when ``--redis URL`` is given): each batch half
   ``add_to_cart`` of new users (arming the cart trigger, enqueueing its notification) and
   half ``purchase`` of users whose cart went in an earlier batch (cancelling it),
   ``--concurrency`` batches in flight, for ``--seconds``; beside it the same workload with no
   trigger engine (the baseline). Each event is decoded from its JSON as the batch endpoint
   does (``decode_event``); the CPU time of the whole process per event (every thread: the
   SQLite writer and readers too) is reported beside the rate, since on a shared machine it
   is the steadier reading;
3. **a request without an armed trigger**: ``personalise`` on a JSON ad for a consenting user
   with a history, the policy with the trigger vs the same policy without it (microseconds,
   medians of rounds, and their ratio).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from slotwise.lab.match_bench import _percentile

POLICY = """policy "bench" version 1
campaign spring {
  applies when ad.campaign_id == "cmp-spring"
  slot headline at "$.creative.headline" { variant a "A" variant b "B" }
}
"""
# what the triggers add: the campaign they show (served only through them) and the triggers
TRIGGERS = """
campaign cart_reminder {
  applies when ad.campaign_id == "cmp-spring"
  slot headline at "$.creative.headline" { variant back "Your cart is waiting" }
}
trigger cart_abandon {
  on event add_to_cart
  unless event purchase within 2h
  wait 1h
  window 7d
  when consent.level == "personal"
  offer by cart.value {
    0..<50 => free_shipping
    50..<100 => discount 10%
    100.. => discount 15%
  }
  show campaign cart_reminder
  notify email "cart-reminder" quiet 22:00..08:00
}
trigger browse_abandon {
  on event product_view
  unless event add_to_cart within 1h
  wait 30m
  window 1d
}
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seconds", type=float, default=5.0, help="per throughput run")
    parser.add_argument("--concurrency", type=int, default=8, help="batches in flight")
    parser.add_argument("--batch", type=int, default=50, help="events per batch")
    parser.add_argument("--history", type=int, default=50, help="events in a user's history")
    parser.add_argument("--redis", metavar="URL", help="also measure on this Redis")
    parser.add_argument("--json", action="store_true", help="print JSON")


def run(args: argparse.Namespace) -> int:
    from slotwise.proxy.cli import UsageError

    if args.seconds <= 0 or args.concurrency < 1 or args.batch < 1 or args.history < 1:
        raise UsageError("--seconds, --concurrency, --batch and --history must be positive")
    report: dict[str, Any] = {"evaluation": evaluation(args.history)}
    report["request"] = request_cost(args.history)
    stores = {"sqlite": None}
    if args.redis:
        stores["redis"] = args.redis
    report["throughput"] = {
        name: asyncio.run(throughput(url, args.seconds, args.concurrency, args.batch))
        for name, url in stores.items()
    }
    print(json.dumps(report, indent=2) if args.json else _text(report))
    return 0


def _policy(with_triggers: bool) -> Any:
    from slotwise.dsl.loader import compile_sources
    from slotwise.plugins.registry import load_schema

    text = POLICY + (TRIGGERS if with_triggers else "")
    policy, _ = compile_sources([("bench.sw", text)], load_schema())
    return policy


_SCOPE: dict[str, Any] = {"headers": [(b"host", b"proxy.test")], "scheme": "http"}


def _engine() -> Any:
    """The request path's engine without a server: rule chooser, real metrics and signer."""
    import random

    from slotwise.plugins.registry import load_schema
    from slotwise.proxy.chooser import RuleChooser
    from slotwise.proxy.decide import Engine
    from slotwise.proxy.events.decisions import DecisionLog
    from slotwise.proxy.metrics import ProxyMetrics
    from slotwise.proxy.policy_snapshot import PolicySnapshot
    from slotwise.proxy.state.memory import MemoryStore
    from slotwise.proxy.tracking import ClickSigner

    metrics = ProxyMetrics()
    return Engine(
        upstream=None,  # type: ignore[arg-type]
        policies=PolicySnapshot(None, load_schema(), metrics),
        chooser=RuleChooser(random.Random(7)),
        # nothing here records decisions; the compiled Engine takes a real (unstarted) log
        decision_log=DecisionLog(MemoryStore()),
        metrics=metrics,
        signer=ClickSigner(b"k" * 32, "https://proxy.example"),
    )


def _history(size: int, now: float) -> list[Any]:
    from slotwise.proxy.state import HistoryItem

    kinds = ("page_view", "product_view", "page_view", "search", "product_view")
    items = [
        HistoryItem(kinds[i % len(kinds)], now - 3600 * (size - i), b'{"product_id":"sku-1"}')
        for i in range(size - 1)
    ]
    items.append(HistoryItem("add_to_cart", now - 7200, b'{"product_id":"sku-1","price":35.0}'))
    return items


def evaluation(history_size: int, samples: int = 20_000) -> dict[str, float]:
    """Microseconds of the engine's per-event work on one user (no store I/O)."""
    from slotwise.proxy.triggers.engine import _Profile, evaluate_states, stored_signals
    from slotwise.proxy.triggers.state import Times
    from slotwise.types import Context

    policy = _policy(True)
    now = time.time()
    history = _history(history_size, now)
    profile = _Profile(segments=("loyal",), visits=3, email="a@example.org")
    wall, cpu = [], []
    gc.collect()
    for _ in range(samples):
        start, start_cpu = time.perf_counter_ns(), time.thread_time_ns()
        ctx = Context(stored_signals(profile, None, history), now, Times(history))
        states = list(evaluate_states(policy, ctx))
        cpu.append((time.thread_time_ns() - start_cpu) / 1000)
        wall.append((time.perf_counter_ns() - start) / 1000)
    assert len(states) == 2
    return {
        "p50_us": round(_percentile(wall, 0.5), 1),
        "p99_us": round(_percentile(wall, 0.99), 1),
        # CPU time of this thread: what the evaluation costs, without the time other
        # processes of a shared machine held the core
        "cpu_p50_us": round(_percentile(cpu, 0.5), 1),
        "cpu_p99_us": round(_percentile(cpu, 0.99), 1),
        "history": history_size,
        "samples": samples,
    }


def request_cost(history_size: int, rounds: int = 15, per_round: int = 3000) -> dict[str, float]:
    """personalise() for a consenting user with no armed trigger: with vs without triggers."""
    from slotwise.plugins.gather import Gathered
    from slotwise.proxy.adapters import parse_response
    from slotwise.proxy.decide import personalise
    from slotwise.proxy.exchange import Exchange
    from slotwise.proxy.state.history import StoredHistory

    now = time.time()
    # a history without an `on` event inside the window: nothing armed
    items = [i for i in _history(history_size, now) if i.event != "add_to_cart"]
    history = StoredHistory(items)
    body = json.dumps(
        {"campaign_id": "cmp-spring", "creative": {"headline": "Spring"}, "tracking": {}}
    ).encode()
    signals: dict[str, Any] = {"consent.level": "personal", "cart.value": 0.0}
    gathered = Gathered(signals, True, "u1", history)
    policies = {"without": _policy(False), "with": _policy(True)}
    proxy = _engine()
    medians: dict[str, list[float]] = {"without": [], "with": []}
    for round_ in range(rounds):
        order = ("without", "with") if round_ % 2 == 0 else ("with", "without")
        for name in order:
            policy = policies[name]
            start = time.thread_time_ns()  # CPU time: robust to a shared machine's load
            for _ in range(per_round):
                exchange = Exchange(_SCOPE, 0.0, policy=policy, gathered=gathered)
                exchange.document = parse_response(b"application/json", body, b"")
                exchange.codings = []
                personalise(proxy, exchange)
            medians[name].append((time.thread_time_ns() - start) / per_round / 1000)
    without, with_ = statistics.median(medians["without"]), statistics.median(medians["with"])
    # the triggered-campaigns step alone, on the same request (what the trigger adds)
    from slotwise.proxy.personalisers.triggered import TriggeredCampaigns

    step = TriggeredCampaigns()
    exchange = Exchange(_SCOPE, 0.0, policy=policies["with"], gathered=gathered)
    exchange.document = parse_response(b"application/json", body, b"")
    exchange.now = time.time()
    start = time.thread_time_ns()
    for _ in range(per_round * 5):
        step.personalise(proxy, exchange)
    step_us = (time.thread_time_ns() - start) / (per_round * 5) / 1000
    assert exchange.records is None  # nothing armed: nothing decided
    return {
        "without_us": round(without, 2),
        "with_us": round(with_, 2),
        "ratio": round(with_ / without, 3),
        "step_us": round(step_us, 2),
        "rounds": rounds,
    }


async def throughput(
    url: str | None, seconds: float, concurrency: int, batch: int
) -> dict[str, float]:
    """Events/s through collect() that arm or cancel triggers, and without an engine."""
    out = {}
    for name, with_engine in (("baseline", False), ("triggers", True)):
        with tempfile.TemporaryDirectory() as tmp:
            store_url = url or f"sqlite://{Path(tmp) / 'state.db'}"
            rate, cpu_us, server_us, threads = await _throughput(
                store_url, seconds, concurrency, batch, with_engine
            )
        out[name], out[f"{name}_cpu_us"] = rate, cpu_us
        if server_us is not None:
            out[f"{name}_server_cpu_us"] = server_us
        if threads:  # Linux: where the CPU per event went, thread by thread
            out[f"{name}_threads_us"] = threads  # type: ignore[assignment]
    out["ratio"] = round(out["triggers"] / out["baseline"], 3) if out["baseline"] else 0.0
    return out


async def _server_cpu(url: str) -> float | None:
    """The Redis server's CPU seconds so far (INFO cpu, every thread of it), None for another
    store or a server that does not say."""
    if not url.startswith("redis://"):
        return None
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(url.split("?", 1)[0])
    try:
        info = await client.info("cpu")
    finally:
        await client.aclose()
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


async def _throughput(
    url: str, seconds: float, concurrency: int, batch: int, with_engine: bool
) -> tuple[float, float, float | None, dict[str, list[float]]]:
    """(events/s, CPU microseconds of this process per event: every thread, the store's
    writer and readers included, over the timed run only; on Redis the server's CPU
    microseconds per event over the same run, else None: a server shared with other clients
    counts their work too; and per thread: name -> [user, system] microseconds per event,
    where /proc says it)."""
    from msgspec.json import encode

    from slotwise.proxy.events import EventCollector, EventsConfig
    from slotwise.proxy.events.schema import decode_event
    from slotwise.proxy.state import StoreUnavailable, open_store
    from slotwise.proxy.triggers import TriggerEngine

    policy = _policy(True)
    run_id = f"{time.time_ns():x}"
    async with open_store(url) as store:
        async with EventCollector(store, EventsConfig(history_max_len=100)) as collector:
            if with_engine:
                collector.triggers = TriggerEngine(store, lambda: policy)
            sent = failed = 0
            stop = time.perf_counter() + seconds
            serial = 0
            carts: list[str] = []  # users whose add_to_cart an earlier batch stored

            def next_batch() -> tuple[list[Any], list[str]]:
                """Half add_to_cart of new users (each arms the trigger and enqueues its
                notification), half purchases of users whose cart went in an earlier batch
                (each cancels that user's armed trigger)."""
                nonlocal serial
                buying = carts[: batch // 2]
                del carts[: len(buying)]
                events: list[Any] = []
                new: list[str] = []
                for user in buying:
                    serial += 1
                    fields: dict[str, Any] = {"type": "purchase", "user_id": user,
                        "properties": {"order_id": f"o{serial}", "value": 70.0,
                        "items": [{"product_id": "sku-1"}], "currency": "EUR"}}  # fmt: skip
                    events.append(fields)
                while len(events) < batch:
                    serial += 1
                    user = f"{run_id}-{serial}"
                    new.append(user)
                    events.append({"type": "add_to_cart", "user_id": user, "properties": {
                        "product_id": "sku-1", "price": 35.0, "quantity": 2}})  # fmt: skip
                at = time.time()
                for i, fields in enumerate(events):
                    fields.update(id=f"{run_id}-e{serial}-{i}", time=at)
                # as the batch endpoint decodes them: each event's JSON (decode_event)
                return [decode_event(encode(fields)) for fields in events], new

            async def worker() -> None:
                nonlocal sent, failed
                while time.perf_counter() < stop:
                    events, new = next_batch()
                    try:
                        await collector.collect(events, consent="personal")
                    except StoreUnavailable:  # answered 503 in production: not counted
                        failed += 1
                        continue
                    sent += len(events)
                    carts.extend(new)  # acknowledged: their purchase may come now

            # what a server does once loaded (proxy/app.py): long-lived objects leave the
            # collector's scans, which otherwise cost several us per event here
            gc.collect()
            gc.freeze()
            server = await _server_cpu(url)
            started, cpu = time.perf_counter(), time.process_time()
            at_start = _thread_times()
            await asyncio.gather(*(worker() for _ in range(concurrency)))
            elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
            threads = {
                name: [round((after - before) / max(sent, 1) * 1e6, 1) for after, before
                       in zip(times, at_start.get(name, (0.0, 0.0)), strict=True)]
                for name, times in _thread_times().items()
            }  # fmt: skip
            after = await _server_cpu(url)
            gc.unfreeze()
    server_us = None
    if server is not None and after is not None and sent:
        server_us = round((after - server) / sent * 1e6, 1)
    cpu_us = round(cpu / sent * 1e6, 1) if sent else 0.0
    threads = {k: v for k, v in threads.items() if any(v)}
    return round(sent / elapsed, 1), cpu_us, server_us, threads


def _thread_times() -> dict[str, tuple[float, float]]:
    """Thread name (pools' threads together) -> (user, system) CPU seconds so far, from
    /proc (empty where there is none)."""
    import os
    import re
    import threading

    names = {t.native_id: t.name for t in threading.enumerate()}
    tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    out: dict[str, tuple[float, float]] = {}
    try:
        tids = os.listdir("/proc/self/task")
    except OSError:
        return out
    for tid in tids:
        try:
            with open(f"/proc/self/task/{tid}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:  # the thread ended meanwhile
            continue
        name = re.sub(r"_\d+$", "", names.get(int(tid), "other"))
        user, system = out.get(name, (0.0, 0.0))
        out[name] = (user + int(fields[11]) / tick, system + int(fields[12]) / tick)
    return out


def _text(report: dict[str, Any]) -> str:
    e, r = report["evaluation"], report["request"]
    lines = [
        f"trigger evaluation per accepted event (history {e['history']}, {e['samples']} samples):"
        f" p50 {e['p50_us']} us, p99 {e['p99_us']} us wall clock; CPU time p50"
        f" {e['cpu_p50_us']} us, p99 {e['cpu_p99_us']} us",
        f"request without an armed trigger (CPU time): {r['without_us']} us without triggers, "
        f"{r['with_us']} us with (ratio {r['ratio']}, medians of {r['rounds']} rounds); the"
        f" triggered-campaigns step itself {r['step_us']} us",
    ]
    for name, t in report["throughput"].items():
        lines.append(
            f"{name}: {t['triggers']} events/s arming/cancelling triggers, "
            f"{t['baseline']} events/s without a trigger engine (ratio {t['ratio']}); CPU per"
            f" event {t['triggers_cpu_us']} us with triggers, {t['baseline_cpu_us']} us without"
        )
        if "triggers_server_cpu_us" in t:
            lines[-1] += (
                f"; the Redis server's CPU per event {t['triggers_server_cpu_us']} us with"
                f" triggers, {t['baseline_server_cpu_us']} us without"
            )
    return "\n".join(lines)
