"""Engine time of recommendations and re-ranks on a 100,000-item catalogue, and replay speed.

Measures the request path's own work, as ``_decide`` times it (engine time: the steps and the
rewrite of the document), for:

- (r) a 12-item ``recommend ... use hybrid(cart.items)`` list on a product page, with 3 cart
  items as seeds and 50 neighbours each (co-views and co-purchases, as the one store read of
  ``RecsRuntime.prepare`` returns them), ``at most 3 per category``, excluding unavailable and
  in-cart items, written in the storefront's item shape with trackers;
- (t) a 12-item ``trending(24h)`` home list for a new visitor;
- (p) a 48-item listing re-ranked ``by affinity(clicks: category, brand)`` for a visitor with
  200 past events.

Each case runs ``--rounds`` times on a fresh copy of its document (the copy is not timed);
medians and p99 in microseconds. With ``--replay EVENTS`` it also replays that file (all
strategies) and prints events per second (wall and CPU).

    .venv/bin/python scripts/bench_recs.py [--rounds 5000] [--replay var/diginetica/events.jsonl
        --catalogue var/diginetica/catalogue.jsonl]
"""

from __future__ import annotations

import argparse
import copy
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from slotwise.dsl.loader import compile_sources  # noqa: E402
from slotwise.dsl.schema_file import builtin_schema  # noqa: E402
from slotwise.plugins.gather import Gathered  # noqa: E402
from slotwise.proxy.adapters.json import DEFAULT_JSON_FIELDS, JsonDocument  # noqa: E402
from slotwise.proxy.catalogue import CatalogueSnapshot, Item, LiveCatalogue  # noqa: E402
from slotwise.proxy.decide import Engine, personalise  # noqa: E402
from slotwise.proxy.exchange import Exchange  # noqa: E402
from slotwise.proxy.metrics import ProxyMetrics  # noqa: E402
from slotwise.proxy.recommend.config import RecsConfig  # noqa: E402
from slotwise.proxy.recommend.runtime import Prepared, RecsRuntime  # noqa: E402
from slotwise.proxy.recommend.state import co_buy_key, co_view_key  # noqa: E402
from slotwise.proxy.recommend.trending import TrendingSnapshot  # noqa: E402
from slotwise.proxy.recommend.visitor import visitor_of  # noqa: E402
from slotwise.proxy.state.memory import MemoryStore  # noqa: E402
from slotwise.proxy.tracking import ClickSigner  # noqa: E402

POLICY = """policy "bench" version 1
recommend similar_items at "$.product.similar" {
  use hybrid(cart.items)
  limit 12
  at most 3 per category
  exclude unavailable, in_cart
}
recommend home at "$.sections.for_you.items" use trending(24h) limit 12 exclude unavailable
rerank listing at "$.products" by affinity(clicks: category, brand) limit 48
"""
ITEMS = 100_000


def catalogue() -> CatalogueSnapshot:
    rng = random.Random(7)
    return CatalogueSnapshot.of(
        Item(
            id=f"sku-{n:06d}",
            title=f"Product {n}",
            category=f"category-{n % 400}",
            brand=f"brand-{n % 900}",
            price=5.0 + n % 200,
            currency="EUR",
            available=rng.random() > 0.05,
            url=f"https://shop.example/p/sku-{n:06d}",
            attributes={"colour": ("red", "blue", "green")[n % 3]},
        )
        for n in range(ITEMS)
    )


def card(item_id: str) -> dict[str, Any]:
    return {"id": item_id, "title": "x", "price": 1.0, "url": "https://shop.example/p"}


def measure(engine: Engine, policy: Any, document: dict[str, Any], prepared: Prepared,
            gathered: Gathered, rounds: int) -> tuple[list[float], list[float]]:  # fmt: skip
    times, cpu = [], []
    for _ in range(rounds):
        x = Exchange({"type": "http", "headers": []}, 0.0, policy=policy, gathered=gathered)
        x.document = JsonDocument(copy.deepcopy(document), DEFAULT_JSON_FIELDS)
        x.prepared = prepared
        started, on_cpu = time.perf_counter(), time.thread_time()
        personalise(engine, x)
        times.append(time.perf_counter() - started)
        cpu.append(time.thread_time() - on_cpu)
        assert x.changed, "nothing was written"
    return times, cpu


def row(name: str, measured: tuple[list[float], list[float]]) -> str:
    cells = []
    for times in measured:
        times = sorted(times)
        p99 = times[int(0.99 * (len(times) - 1))]
        cells.append(f"{statistics.median(times) * 1e6:6.0f} / {p99 * 1e6:6.0f}")
    return f"{name:<48} wall {cells[0]} us   CPU {cells[1]} us"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5000)
    parser.add_argument("--replay", type=Path)
    parser.add_argument("--catalogue", type=Path)
    args = parser.parse_args()
    snapshot = catalogue()
    rng = random.Random(11)
    ids = list(snapshot.items)
    config = RecsConfig()
    runtime = RecsRuntime(LiveCatalogue.of(snapshot), MemoryStore(), config)
    trending = tuple((ids[rng.randrange(ITEMS)], 1000.0 - i) for i in range(200))
    runtime.trending.current = TrendingSnapshot(
        0.0,
        {86400.0: trending, config.trending_max_window: trending},
        {config.trending_max_window: {i: s / 1000.0 for i, s in trending}},
    )
    compiled, _ = compile_sources([("bench.sw", POLICY)], builtin_schema())
    engine = Engine(
        upstream=None,  # type: ignore[arg-type]
        policies=None,  # type: ignore[arg-type]
        chooser=None,  # type: ignore[arg-type]
        decision_log=None,  # type: ignore[arg-type]
        metrics=ProxyMetrics(),
        signer=ClickSigner(b"bench-secret-0123456789"),
        recs=runtime,
    )
    cart = tuple(ids[rng.randrange(ITEMS)] for _ in range(3))
    neighbours = {
        key(seed): [(ids[rng.randrange(ITEMS)], 50.0 - n) for n in range(50)]
        for seed in cart
        for key in (co_view_key, co_buy_key)
    }
    history = [
        ("product_view", 1.7e9 + n, f'{{"product_id":"{ids[rng.randrange(ITEMS)]}"}}'.encode())
        for n in range(200)
    ]
    visitor = visitor_of(history, cart)
    personal = Gathered(signals={"cart.items": cart, "user.is_new": False}, personal=True,
                        user_id="u1")  # fmt: skip
    new = Gathered(signals={"user.is_new": True}, personal=True, user_id="u2")
    product = {"product": {"id": ids[5], "similar": [card(ids[1])]}}
    home = {"sections": {"for_you": {"items": [card(ids[2])]}}}
    listing = {"products": [card(ids[rng.randrange(ITEMS)]) for _ in range(48)]}
    print(f"catalogue: {ITEMS} items; {args.rounds} rounds each; engine time (personalise),")
    print("median / p99, wall clock and this thread's CPU time (immune to other processes)")
    cases = [
        ("(r) 12-item hybrid list, 3 seeds, product page", product, personal),
        ("(t) 12-item trending list, new visitor, home", home, new),
        ("(p) 48-item listing re-ranked by affinity", listing, personal),
    ]
    for name, document, gathered in cases:
        prepared = Prepared(visitor if gathered is personal else visitor_of([], ()),
                            ids[5] if document is product else None, neighbours, cart)  # fmt: skip
        measure(engine, compiled, document, prepared, gathered, 200)  # warm up
        print(row(name, measure(engine, compiled, document, prepared, gathered, args.rounds)))
    if args.replay is not None:
        from slotwise.lab.recs_replay import DEFAULT_STRATEGIES, parse_strategy, replay

        result = replay(args.replay, [parse_strategy(s) for s in DEFAULT_STRATEGIES],
                        catalogue=args.catalogue)  # fmt: skip
        print(
            f"replay: {result.events} events, {result.scored} views scored by "
            f"{len(result.results)} strategies: {result.events_per_second:,.0f} events/s wall, "
            f"{result.events / result.cpu_seconds:,.0f} events/s of CPU"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
