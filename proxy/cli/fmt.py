"""``slotwise fmt PATH...``: rewrite policy files in canonical form.

``--check`` changes nothing and exits 1 when a file is not formatted; ``--diff`` prints a
unified diff instead of writing. A file that does not parse is reported and left untouched.
"""

from __future__ import annotations

import argparse
import difflib
import sys
from pathlib import Path

from slotwise.proxy.cli import EXIT_FAILED, EXIT_OK


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="+", metavar="PATH", help="policy files or folders")
    parser.add_argument("--check", action="store_true", help="only report unformatted files")
    parser.add_argument("--diff", action="store_true", help="print a diff, do not write")


def run(args: argparse.Namespace) -> int:
    from slotwise.dsl.errors import PolicyError
    from slotwise.dsl.fmt import format_source
    from slotwise.dsl.loader import read_sources
    from slotwise.proxy.files import write_atomically

    sources, problems = read_sources(args.paths)
    failed = bool(problems)
    for problem in problems:
        print(problem.render(), file=sys.stderr)
    for path, text in sources:
        try:
            formatted = format_source(text, path)
        except PolicyError as exc:
            print(exc.render(), file=sys.stderr)
            failed = True
            continue
        if formatted == text:
            continue
        if args.diff:
            sys.stdout.writelines(
                difflib.unified_diff(
                    text.splitlines(keepends=True),
                    formatted.splitlines(keepends=True),
                    f"{path} (original)",
                    f"{path} (formatted)",
                )
            )
        if args.check:
            print(f"{path}: not formatted (run: slotwise fmt {path})", file=sys.stderr)
            failed = True
        elif not args.diff:
            # whole or not at all: a full disk must not leave half a policy behind; through a
            # symbolic link, the file it points to is formatted (the link stays a link)
            try:
                target = Path(path).resolve()
                write_atomically(target, formatted.encode(), mode=target.stat().st_mode & 0o7777)
            except OSError as exc:
                print(f"slotwise fmt: cannot write {path}: {exc.strerror or exc}", file=sys.stderr)
                failed = True
                continue
            print(f"formatted {path}", file=sys.stderr)
    return EXIT_FAILED if failed else EXIT_OK
