"""``slotwise export decisions|events``: the store's logs as the decision log ``evaluate`` reads.

Reads the ``decisions`` or ``events`` log of the state store (``--store URL``, else
``store.url`` of the configuration) page by page and writes JSON Lines in the documented log
format, or CSV (``--format csv``), to ``--output FILE`` (written whole or not at all) or
standard output; a summary goes to standard error. ``--since`` (inclusive) and ``--until``
(exclusive) bound the records' times; ``--campaign`` picks one campaign's decisions.
slotwise.proxy.learn.export does the work and documents what is exported.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

from slotwise.proxy.cli import EXIT_OK, UsageError, add_config_option, read_settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("kind", choices=("decisions", "events"), help="which log to export")
    parser.add_argument("--store", metavar="URL", help="state store URL (store.url)")
    parser.add_argument(
        "--since", metavar="TIME", help="from this time on (epoch seconds or ISO 8601, UTC)"
    )
    parser.add_argument("--until", metavar="TIME", help="before this time (exclusive)")
    parser.add_argument("--campaign", help="only this campaign's decisions")
    parser.add_argument("--format", choices=("jsonl", "csv"), default="jsonl")
    parser.add_argument(
        "--output", "-o", type=Path, metavar="FILE", help="write here (default: standard output)"
    )
    add_config_option(parser)


def run(args: argparse.Namespace) -> int:
    from slotwise.proxy.learn.export import check_output, reading_store, selection_of

    if args.campaign is not None and args.kind == "events":
        raise UsageError(
            "--campaign selects decisions: events carry no campaign. Export all events;"
            " evaluate joins them to the decisions by id and counts the others as unmatched"
        )
    selection = selection_of(args.since, args.until, args.campaign)
    settings = read_settings(args, {"store.url": ("--store", args.store)})
    if args.output is not None:
        check_output(args.output)  # before the store is read: a typo costs nothing
    from slotwise.proxy.offers_config import offers_config

    args.offers = offers_config(settings.offers)  # purchases' amounts, as the learner reads them
    store = reading_store(settings.store.url)
    stats = asyncio.run(_export(store, settings.store.url, args, selection))
    _summary(args, stats)
    return EXIT_OK


async def _export(store: Any, url: str, args: argparse.Namespace, selection: Any) -> Any:
    from slotwise.proxy.learn.export import export_log, output
    from slotwise.proxy.state import StoreUnavailable, redact

    try:
        async with store:
            with output(args.output) as stream:
                return await export_log(
                    store, args.kind, stream, selection, args.format, offers=args.offers
                )
    except StoreUnavailable as error:
        kept = " (nothing was written to --output)" if args.output is not None else ""
        raise StoreUnavailable(
            f"--store {redact(url)}: {error.message.rstrip('.')}; check that the store is up"
            f" and reachable from here{kept}"
        ) from error


def _summary(args: argparse.Namespace, stats: Any) -> None:
    target = args.output or "standard output"
    skipped = [f"{stats.outside} outside --since/--until"]
    if args.kind == "decisions":
        skipped.append(f"{stats.other_campaigns} of other campaigns")
        skipped.append(f"{stats.unreadable} unreadable")
    else:
        skipped.append(f"{stats.not_rewards} not rewards")
    print(
        f"slotwise export: {stats.written} {args.kind} written to {target}"
        f" ({stats.read} read; skipped: {', '.join(skipped)})",
        file=sys.stderr,
    )
    if stats.unreadable:
        print(
            f"slotwise export: warning: {stats.unreadable} decision records do not decode"
            f" (the first at position {stats.first_unreadable}); they were skipped, as the"
            " learner skips them",
            file=sys.stderr,
        )
