"""``slotwise report``: personalised vs control by segment, variants and combinations, learning
over time, from the state store (``--store URL``, else ``store.url``) or exported JSONL logs
(``slotwise export``), as text, JSON (a documented schema: ``--schema``) or one
self-contained HTML file. slotwise.proxy.report does the work; docs/reports.md explains it.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

from slotwise.proxy.cli import EXIT_OK, UsageError, add_config_option, read_settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "logs", nargs="*", type=Path, metavar="LOG",
        help="exported JSONL logs (decisions and events); none: read the store",
    )  # fmt: skip
    parser.add_argument("--store", metavar="URL", help="state store URL (store.url)")
    parser.add_argument(
        "--since", metavar="TIME", help="decisions from this time on (epoch seconds or ISO 8601)"
    )
    parser.add_argument("--until", metavar="TIME", help="decisions before this time (exclusive)")
    parser.add_argument(
        "--campaign", action="append", default=[], help="only this campaign (repeatable)"
    )
    parser.add_argument(
        "--segment-by", action="append", default=[], metavar="SIGNAL",
        help="break results down by this logged signal (repeatable: by their combination)",
    )  # fmt: skip
    parser.add_argument(
        "--policies", nargs="+", metavar="PATH",
        help="policy files or folders: the campaigns' goals (proxy.policies; else clicks)",
    )  # fmt: skip
    parser.add_argument(
        "--window", type=float, default=3600.0, metavar="SECONDS",
        help="the join window: events up to this long after their decision count (3600)",
    )  # fmt: skip
    parser.add_argument("--format", choices=("text", "json", "html"), default="text")
    parser.add_argument(
        "--output", "-o", type=Path, metavar="FILE", help="write here (default: standard output)"
    )
    parser.add_argument(
        "--schema", action="store_true", help="print the JSON report's JSON Schema and exit"
    )
    add_config_option(parser)


def run(args: argparse.Namespace) -> int:
    import msgspec

    from slotwise.proxy.learn.export import check_output, output, reading_store, selection_of
    from slotwise.proxy.offers_config import offers_config
    from slotwise.proxy.report.document import build, schema
    from slotwise.proxy.report.sources import Selection, read_files
    from slotwise.proxy.report.tally import ReportTally

    if args.schema:
        sys.stdout.write(msgspec.json.format(msgspec.json.encode(schema()).decode()) + "\n")
        return EXIT_OK
    if not (args.window > 0 and args.window < float("inf")):
        raise UsageError(f"--window {args.window:g}: give a positive number of seconds")
    bounds = selection_of(args.since, args.until, None)
    selection = Selection(bounds.since, bounds.until, frozenset(args.campaign))
    settings = read_settings(
        args,
        {
            "store.url": ("--store", args.store),
            "proxy.policies": ("--policies", args.policies[0] if args.policies else None),
        },
    )
    goals = _goals(args.policies, settings)
    for path in args.logs:
        if not path.is_file():
            raise UsageError(f"{path}: no such log file; name files `slotwise export` wrote")
    if args.output is not None:
        check_output(args.output)
    tally = ReportTally(lambda name: goals.get(name, _default()), args.segment_by, args.window)
    tally.offers_config = offers_config(settings.offers)  # purchases, as the learner reads them
    if args.logs:
        source = ", ".join(str(p) for p in args.logs)
        read_files(tally, args.logs, selection)
    else:
        from slotwise.proxy.report.storefront import SessionTally
        from slotwise.proxy.state import redact

        source = f"store {redact(settings.store.url)}"
        tally.storefront = SessionTally()
        store = reading_store(settings.store.url)
        asyncio.run(_read(store, settings.store.url, tally, selection))
    report = build(tally, source=source, since=selection.since, until=selection.until)
    with output(args.output) as stream:
        stream.write(_render(report, args.format))
    return EXIT_OK


def _default() -> Any:
    from slotwise.types import DEFAULT_GOAL

    return DEFAULT_GOAL


def _goals(paths: list[str] | None, settings: Any) -> dict[str, Any]:
    """The campaigns' goals from the policy files, when there are any to read."""
    from slotwise.dsl.loader import load_policy_set
    from slotwise.plugins.registry import default_schema

    chosen = paths or ([settings.proxy.policies] if settings.proxy.policies else [])
    chosen = [p for p in chosen if Path(p).exists()] if not paths else chosen
    if not chosen:
        return {}
    policy = load_policy_set(chosen, default_schema())
    return {c.name: c.goal for c in policy.campaigns}


async def _read(store: Any, url: str, tally: Any, selection: Any) -> None:
    """Feed the tally from the store (the recommended lists are counted in the same pass)."""
    from slotwise.proxy.report.sources import read_store
    from slotwise.proxy.state import StoreUnavailable, redact

    try:
        async with store:
            await read_store(store, tally, selection)
    except StoreUnavailable as error:
        raise StoreUnavailable(
            f"--store {redact(url)}: {error.message.rstrip('.')}; check that the store is up"
            " and reachable from here"
        ) from error


def _render(report: Any, fmt: str) -> bytes:
    import msgspec

    if fmt == "json":
        return msgspec.json.format(msgspec.json.encode(report)) + b"\n"
    if fmt == "html":
        from slotwise.proxy.report.html import render as html

        return html(report).encode()
    from slotwise.proxy.report.text import render as text

    return text(report).encode()
