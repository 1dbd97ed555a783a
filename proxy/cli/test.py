"""``slotwise test PATH...``: run the policy tests written beside the policies.

Prints FAIL lines (and PASS lines with ``-v``), what was expected and what came out, then
``N passed, M failed``. Exit 1 when a test fails or the policy does not load.
"""

from __future__ import annotations

import argparse
import re
import sys

from slotwise.proxy.cli import EXIT_FAILED, EXIT_OK, UsageError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="+", metavar="PATH", help="policy files or folders")
    parser.add_argument("-v", "--verbose", action="store_true", help="list passing tests too")
    parser.add_argument("--run", metavar="REGEX", help="only tests whose name matches")
    parser.add_argument(
        "--builtin-schema", action="store_true", help="use the built-in signal schema"
    )


def run(args: argparse.Namespace) -> int:
    from slotwise.dsl.loader import load_policy_set
    from slotwise.dsl.schema_file import builtin_schema
    from slotwise.dsl.testing import run_tests
    from slotwise.plugins.registry import default_schema

    if args.run is not None:
        try:
            re.compile(args.run)
        except re.error as exc:
            raise UsageError(f"--run {args.run!r} is not a regular expression: {exc}") from None
    schema = builtin_schema() if args.builtin_schema else default_schema()
    policy = load_policy_set(args.paths, schema)
    results = run_tests(policy, args.run)
    if args.run is not None and not results:  # a typo in the filter must not pass as green
        print(f"slotwise test: no test name matches --run {args.run!r}", file=sys.stderr)
        return EXIT_FAILED
    for result in results:
        where = f"{result.path}:{result.line}"
        if result.passed:
            if args.verbose:
                print(f"PASS {result.name} ({where})")
                for line in result.checked:
                    print(f"    ok: {line}")
            continue
        print(f"FAIL {result.name} ({where})")
        for failure in result.failures:
            print(f"    {failure}")
    passed = sum(r.passed for r in results)
    failed = len(results) - passed
    print(f"{passed} passed, {failed} failed")
    return EXIT_FAILED if failed else EXIT_OK
