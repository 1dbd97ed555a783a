"""``slotwise recs replay EVENTS.jsonl``: replay events through the recommenders and score them.

The same recommender code as the proxy (slotwise.lab.recs_replay): at each product view it
asks every strategy for its top K and scores the next product viewed in the session; HR@K,
MRR@K, NDCG@K with 95% intervals and catalogue coverage per strategy, beside a most-popular
baseline. ``--score-from`` (seconds since the epoch, an ISO date, or a share of the events
like 70%) scores only the views at or after it, learning from every event (default: 70%, after
the time by which 70% of the events happened); ``--score-until`` only those before it (a
tuning period: scripts/tune_hybrid.py). ``hybrid(co_buy=0, similar=0.5, scan=100)`` names a
hybrid with other weights than production's.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from slotwise.proxy.cli import EXIT_OK, UsageError, add_config_option, read_settings

if TYPE_CHECKING:
    from slotwise.lab.recs_replay import Share


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="recs_command", metavar="SUBCOMMAND", required=True)
    replay = sub.add_parser(
        "replay",
        help="replay an events file through the recommenders and score the next item viewed",
        description=__doc__,
    )
    replay.add_argument("events", type=Path, help="events, JSON Lines, /_sw/events schema")
    replay.add_argument(
        "--strategies",
        default=None,
        help="comma-separated: most_popular, trending(7d), last_visit(20), also_viewed, "
        "also_bought, similar, hybrid, hybrid(co_view=1, co_buy=1, similar=0.35, "
        "popular=0.15, scan=40) (default: all of them, hybrid with production's weights)",
    )
    replay.add_argument("--k", type=int, default=10, help="list length scored (default 10)")
    replay.add_argument(
        "--score-from",
        default=None,
        metavar="TIME",
        help="score only views at or after TIME (epoch seconds, ISO date, UTC, or a share of "
        "the events like 50%%); default: 70%% (after the time by which 70%% of them happened)",
    )
    replay.add_argument(
        "--score-until",
        default=None,
        metavar="TIME",
        help="score only views before TIME (as --score-from; default: to the end): a tuning "
        "period that ends where the test period starts",
    )
    replay.add_argument(
        "--catalogue", type=Path, default=None, help="catalogue feed (else the events' products)"
    )
    replay.add_argument(
        "--session-gap",
        type=float,
        default=1800.0,
        help="seconds of inactivity that end a session (default 1800)",
    )
    replay.add_argument(
        "--refresh",
        type=float,
        default=3600.0,
        help="seconds of event time between trending recomputations (default 3600)",
    )
    replay.add_argument("--format", choices=("text", "json"), default="text")
    report = sub.add_parser(
        "report",
        help="impressions, clicks, add-to-carts and purchases of each list and position",
        description="Section KPIs of recommendations and re-ranks from the store's decisions and "
        "events logs (slotwise.lab.recs_report).",
    )
    report.add_argument("--store", metavar="URL", help="state store URL (store.url)")
    report.add_argument("--format", choices=("text", "json"), default="text")
    add_config_option(report)
    rebuild = sub.add_parser(
        "rebuild",
        help="learn the recommenders' state again from the store's events log (backfill)",
        description="Read the store's events log from its start through the recommenders' "
        "learning (slotwise.proxy.recommend.rebuild). It adds to the state there is: run it "
        "on a store without recommender state.",
    )
    rebuild.add_argument("--store", metavar="URL", help="state store URL (store.url)")
    add_config_option(rebuild)


def _time(option: str, text: str) -> float | Share:
    from slotwise.lab.recs_replay import Share

    if text.endswith("%"):
        try:
            percent = float(text[:-1])
        except ValueError:
            percent = -1.0
        if not 0.0 <= percent <= 100.0:
            raise UsageError(f"{option}: {text!r} is not a share of the events from 0% to 100%")
        return Share(percent / 100.0)
    try:
        return float(text)
    except ValueError:
        pass
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(
            f"{option}: {text!r} is neither epoch seconds, an ISO date (2016-05-01) nor a "
            "share of the events (70%)"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.timestamp()


def run(args: argparse.Namespace) -> int:
    if args.recs_command == "report":
        return _report(args)
    if args.recs_command == "rebuild":
        return _rebuild(args)
    return _replay(args)


def _rebuild(args: argparse.Namespace) -> int:
    import asyncio

    from slotwise.proxy.learn.export import reading_store
    from slotwise.proxy.recommend.rebuild import Rebuilt, rebuild

    settings = read_settings(args, {"store.url": ("--store", args.store)})
    store = reading_store(settings.store.url)

    async def run_it() -> Rebuilt:
        async with store:
            return await rebuild(store, settings.recommendations, settings.events.events_log)

    done = asyncio.run(run_it())
    print(
        f"slotwise recs rebuild: {done.events} events read, {done.learned} learned from, "
        f"{done.sets} scored-set additions"
    )
    return EXIT_OK


def _report(args: argparse.Namespace) -> int:
    import asyncio
    import dataclasses

    from slotwise.lab.recs_report import ListKpis, report
    from slotwise.proxy.learn.export import reading_store

    settings = read_settings(args, {"store.url": ("--store", args.store)})
    store = reading_store(settings.store.url)

    async def read() -> list[ListKpis]:
        async with store:
            return await report(store)

    lists = asyncio.run(read())
    if args.format == "json":
        json.dump([dataclasses.asdict(k) for k in lists], sys.stdout, indent=2)
        print()
        return EXIT_OK
    print(
        f"{'list':<24} {'decisions':>9} {'shown':>7} {'clicks':>7} {'CTR':>7} {'carts':>6}"
        f" {'orders':>6} {'revenue':>9}"
    )
    for k in lists:
        print(
            f"{k.name:<24} {k.decisions:>9} {k.impressions:>7} {k.clicks:>7} {k.ctr:>7.2%}"
            f" {k.carts:>6} {k.purchases:>6} {k.revenue:>9.2f}"
        )
        shown = ", ".join(f"{p}: {c[1]}/{c[0]}" for p, c in sorted(k.positions.items()))
        if shown:
            print(f"  clicks/impressions by position: {shown}")
    return EXIT_OK


def _replay(args: argparse.Namespace) -> int:
    from slotwise.lab.recs_replay import (
        DEFAULT_STRATEGIES,
        parse_strategy,
        replay,
        split_strategies,
    )

    if not args.events.is_file():
        raise UsageError(f"{args.events}: no such file")
    if args.k < 1:
        raise UsageError("--k must be 1 or more")
    names = split_strategies(args.strategies) if args.strategies else list(DEFAULT_STRATEGIES)
    try:
        strategies = [parse_strategy(name) for name in names if name.strip()]
    except ValueError as exc:
        raise UsageError(f"--strategies: {exc}") from None
    score_from = _time("--score-from", args.score_from) if args.score_from is not None else None
    until = args.score_until
    score_until = _time("--score-until", until) if until is not None else None
    result = replay(
        args.events,
        strategies,
        catalogue=args.catalogue,
        k=args.k,
        score_from=score_from,
        score_until=score_until,
        session_gap=args.session_gap,
        refresh=args.refresh,
    )
    if args.format == "json":
        json.dump(_json(result), sys.stdout, indent=2)
        print()
    else:
        print(_text(result))
    return EXIT_OK


def _json(result: object) -> object:
    import dataclasses

    out = dataclasses.asdict(result)  # type: ignore[call-overload]
    out["events_per_second"] = round(result.events_per_second)  # type: ignore[attr-defined]
    return out


def _text(result: object) -> str:
    from slotwise.lab.recs_replay import ReplayResult

    assert isinstance(result, ReplayResult)
    k = result.k
    w = max([16, *(len(r.strategy) for r in result.results)])
    start = dt.datetime.fromtimestamp(result.score_from, dt.UTC).strftime("%Y-%m-%d %H:%M")
    if result.score_until is not None:
        end = dt.datetime.fromtimestamp(result.score_until, dt.UTC).strftime("%Y-%m-%d %H:%M")
        start = f"{start} UTC to {end}"
    lines = [
        f"{result.events} events, {result.sessions} sessions, {result.scored} views scored "
        f"(from {start} UTC), catalogue {result.catalogue} products; "
        f"{result.seconds:.1f} s, {result.events_per_second:,.0f} events/s "
        f"({result.cpu_seconds:.1f} s of CPU)",
        "",
        f"{'strategy':<{w}} {'HR@' + str(k):>22} {'MRR@' + str(k):>22} {'NDCG@' + str(k):>22}"
        f" {'coverage':>9}",
    ]
    for r in result.results:
        cells = [f"{i.value:.4f} [{i.low:.4f}, {i.high:.4f}]" for i in (r.hr, r.mrr, r.ndcg)]
        lines.append(
            f"{r.strategy:<{w}} {cells[0]:>22} {cells[1]:>22} {cells[2]:>22} {r.coverage:>9.2%}"
        )
    lines.append("")
    lines.append("95% intervals: Wilson for HR, normal for MRR and NDCG")
    return "\n".join(lines)
