"""``slotwise audiences list|export NAME``: the users currently in a trigger state or segment.

One audience per trigger of the policies and one per named segment (``segment:NAME``), the
policies being the PATHs given with ``--policies``, else ``proxy.policies``, read from the
state store (``--store URL``, else ``store.url``): ``list`` prints each with its kind (trigger
or segment) and how many users are in it now; ``export NAME`` writes its users as JSON Lines or
CSV (``--format``) to standard output or ``--output FILE`` (written whole or not at all). Only
users whose events came with personal consent are there; erased users never are
(slotwise.proxy.triggers.audiences)."""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import json
import sys
import time
from pathlib import Path

from slotwise.proxy.cli import EXIT_OK, UsageError, add_config_option, read_settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=("list", "export"), help="list audiences or export one")
    parser.add_argument(
        "name", nargs="?", help="the audience (a trigger's name, or segment:NAME), for export"
    )
    parser.add_argument("--format", choices=("jsonl", "csv"), default="jsonl")
    parser.add_argument("--store", metavar="URL", help="state store URL (store.url)")
    parser.add_argument("--policies", metavar="DIR", help="policy folder (proxy.policies)")
    parser.add_argument(
        "--output", "-o", type=Path, metavar="FILE", help="write here (default: standard output)"
    )
    add_config_option(parser)


def run(args: argparse.Namespace) -> int:
    from slotwise.proxy.cli.explain import policies_of
    from slotwise.proxy.learn.export import reading_store
    from slotwise.proxy.triggers.audiences import SEGMENT, audience, fields, names

    settings = read_settings(
        args,
        {"store.url": ("--store", args.store), "proxy.policies": ("--policies", args.policies)},
    )
    policy = policies_of([settings.proxy.policies] if settings.proxy.policies else [])
    known = names(policy)
    if args.action == "export" and args.name not in known:
        given = "no audience named" if args.name else "export needs the audience's name"
        raise UsageError(f"{given} {args.name or ''} (audiences: {', '.join(known) or 'none'})")
    store = reading_store(settings.store.url)
    now = time.time()

    async def read() -> dict[str, list[dict[str, object]]]:
        async with store:
            wanted = known if args.action == "list" else [args.name]
            return {
                name: [m.row() for m in await audience(store, policy, name, now=now)]
                for name in wanted
            }

    found = asyncio.run(read())
    if args.action == "list":
        for name, rows in found.items():
            kind = "segment" if name.startswith(SEGMENT) else "trigger"
            print(f"{name}\t{kind}\t{len(rows)} users")
        return EXIT_OK
    rows = found[args.name]
    text = (
        _csv(rows, fields(args.name))
        if args.format == "csv"
        else "".join(json.dumps(r) + "\n" for r in rows)
    )
    if args.output is None:
        sys.stdout.write(text)
    else:
        partial = args.output.with_name(args.output.name + ".partial")
        partial.write_text(text, encoding="utf-8")
        partial.replace(args.output)
    print(f"slotwise audiences: {len(rows)} users in {args.name}", file=sys.stderr)
    return EXIT_OK


def _csv(rows: list[dict[str, object]], header: tuple[str, ...]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=header, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()
