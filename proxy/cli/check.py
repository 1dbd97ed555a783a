"""``slotwise check PATH...``: parse and check policy files; silent when clean.

Exit 0 when there are no errors (warnings are printed but do not fail the check unless
``--strict``), 1 when there are errors, 2 on bad usage. ``--format json`` prints one JSON
document: ``{"ok": bool, "files": [...], "diagnostics": [...]}``.
"""

from __future__ import annotations

import argparse
import json
import sys

from slotwise.proxy.cli import EXIT_FAILED, EXIT_OK


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="+", metavar="PATH", help="policy files or folders")
    parser.add_argument("--format", choices=("text", "json"), default="text")
    parser.add_argument("--strict", action="store_true", help="fail on warnings too")
    parser.add_argument(
        "--builtin-schema",
        action="store_true",
        help="check against the built-in signal schema instead of the installed providers'",
    )


def run(args: argparse.Namespace) -> int:
    from slotwise.dsl.errors import Severity
    from slotwise.dsl.loader import check_sources, read_sources
    from slotwise.dsl.schema_file import builtin_schema
    from slotwise.plugins.registry import default_schema

    schema = builtin_schema() if args.builtin_schema else default_schema(_note)
    sources, problems = read_sources(args.paths)
    loaded = check_sources(sources, schema)
    diagnostics = sorted(problems + loaded.diagnostics, key=lambda d: d.sort_key)
    failed = any(d.severity is Severity.ERROR or args.strict for d in diagnostics)
    if args.format == "json":
        document = {
            "ok": not failed,
            "files": [path for path, _ in sources],
            "diagnostics": [d.to_json() for d in diagnostics],
        }
        print(json.dumps(document, indent=2))
    elif diagnostics:
        print("\n".join(d.render() for d in diagnostics), file=sys.stderr)
    return EXIT_FAILED if failed else EXIT_OK


def _note(message: str) -> None:
    print(f"slotwise check: note: {message}", file=sys.stderr)
