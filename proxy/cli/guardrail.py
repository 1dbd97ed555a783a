"""``slotwise guardrail status|enable``: which campaigns a guardrail reverted, and why; and
re-enabling one (a person's decision: the guardrail never re-enables by itself).

``status`` lists the reverted campaigns with the difference that reverted them (goal per
decision, personalised - control, with its always-valid 95% interval) and exits 1 when any
is reverted (scripts can alert on it); ``enable CAMPAIGN`` removes it from the revert set:
every proxy personalises it again within its refresh interval, and the learner's test of it
starts afresh from that moment. Reads ``--store URL``, else ``store.url``.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import sys
from datetime import UTC, datetime
from typing import Any

from slotwise.proxy.cli import EXIT_FAILED, EXIT_OK, UsageError, add_config_option, read_settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=("status", "enable"), help="what to do")
    parser.add_argument("campaign", nargs="?", help="the campaign to re-enable (enable)")
    parser.add_argument("--store", metavar="URL", help="state store URL (store.url)")
    parser.add_argument("--format", choices=("text", "json"), default="text")
    add_config_option(parser)


def run(args: argparse.Namespace) -> int:
    from slotwise.proxy.learn.export import reading_store

    if args.action == "enable" and not args.campaign:
        raise UsageError("name the campaign to re-enable: slotwise guardrail enable CAMPAIGN")
    if args.action == "status" and args.campaign:
        raise UsageError("status takes no campaign; it lists every reverted one")
    settings = read_settings(args, {"store.url": ("--store", args.store)})
    store = reading_store(settings.store.url)
    return asyncio.run(_run(store, settings.store.url, args))


async def _run(store: Any, url: str, args: argparse.Namespace) -> int:
    from slotwise.proxy.guardrail import state
    from slotwise.proxy.state import StoreUnavailable, redact

    try:
        async with store:
            if args.action == "enable":
                by = _who()
                if not await state.enable(store, args.campaign, by=by):
                    current = sorted(await state.reverted(store))
                    raise UsageError(
                        f"campaign {args.campaign!r} is not reverted; reverted now:"
                        f" {', '.join(current) or 'none'}"
                    )
                print(
                    f"slotwise guardrail: {args.campaign} re-enabled; every proxy personalises it"
                    " again within its refresh interval, and its test starts afresh"
                )
                return EXIT_OK
            names = sorted(await state.reverted(store))
            found = [(name, await state.details(store, name)) for name in names]
    except StoreUnavailable as error:
        raise StoreUnavailable(
            f"--store {redact(url)}: {error.message.rstrip('.')}; check that the store is up"
        ) from error
    _print(found, args.format)
    return EXIT_FAILED if found else EXIT_OK


def _who() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return ""


def _print(found: list[tuple[str, Any]], fmt: str) -> None:
    import msgspec

    if fmt == "json":
        rows = [
            {"campaign": name, "revert": msgspec.to_builtins(record) if record else None}
            for name, record in found
        ]
        print(json.dumps({"reverted": rows}, indent=2))
        return
    if not found:
        print("no campaign is reverted")
        return
    for name, record in found:
        if record is None:
            print(f"{name}: reverted (no details stored)")
            continue
        at = datetime.fromtimestamp(record.at, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        relative = f" ({100 * record.relative:+.1f}%)" if record.relative is not None else ""
        print(
            f"{name}: reverted at {at}: goal per decision {record.difference:+.4g}{relative} vs"
            f" control, always-valid 95% interval [{record.low:.4g}, {record.high:.4g}]"
            f" ({record.personalised} personalised, {record.control} control decisions);"
            f" re-enable: slotwise guardrail enable {name}"
        )
    sys.stdout.flush()
